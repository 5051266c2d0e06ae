#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: nvme_disks
short_description: Discover local disks and decide which ones may be formatted
version_added: 0.1.0
description:
  - Reads the block devices with C(lsblk --json), joins their C(/dev/disk/by-id) names,
    and probes every disk an allowlist pattern matches with C(blkid --probe), which reads the
    superblocks themselves (lsblk alone reports no filesystem where udev does not run).
  - A disk blkid finds nothing on is read as well, and counts as blank only when it has no GPT
    backup header in its last logical block (C(EFI PART)) and reads zeros in its first and last MiB
    and in 4 KiB samples every 128 MiB and at every power of two MiB (a factory-new or discarded
    NVMe disk reads zeros). An ext4 whose first MiB was zeroed, a raw tar stream or a GPT whose
    primary header is gone are refused.
  - Selects disks only by by-id name. A selected disk is C(blank) (format it), C(managed)
    (it carries what the nvme_storage role made, so keep it), C(forced) (O(force) names it) or
    C(refused) (mounted, system disk, partitions, a signature, a GPT backup header, data, too small,
    read-only, unreadable).
  - A filesystem of type O(fstype) with label O(label), neither mounted nor in O(fstab), is
    C(managed), since the role made it and was interrupted before mounting it; the run resumes.
  - Mounted, read-only, unreadable and system disks stay refused even when O(force) names them.
  - Optionally describes block devices after they were formatted (O(volumes)), checks that
    LVM logical volumes fit the volume group over the selected disks (O(lvm_volumes)) and that the
    kernel has device-mapper, and tries mount options on a scratch filesystem (O(test_mount_options)).
  - Changes nothing that lasts.
author:
  - llmscale platform team (@llmscale)
options:
  allowlist:
    description:
      - Shell-style patterns (C(fnmatch), case-sensitive) on the names in O(by_id_dir). Only whole disks
        with a matching name are considered; nothing else is even probed.
    type: list
    elements: str
    default: []
  force:
    description:
      - Disks to format even though they carry partitions, a signature, a GPT backup header or data,
        or are below O(min_size_bytes), each named exactly by one of its by-id names or its serial.
        Patterns (C(*), C(?), C([)) are rejected; forcing names one disk, never a group.
      - An entry naming no disk the O(allowlist) selects is listed in RV(force_unmatched).
    type: list
    elements: str
    default: []
  min_size_bytes:
    description: Disks smaller than this are refused.
    type: int
    default: 0
  by_id_dir:
    description:
      - Directory of by-id symbolic links. Tests point it at a directory of links to loop devices,
        which have no by-id names.
    type: path
    default: /dev/disk/by-id
  fstype:
    description: The filesystem the role makes; a disk carrying it, mounted or listed in O(fstab) under O(mount_root), is C(managed).
    type: str
    default: xfs
  label:
    description:
      - The filesystem label the nvme_storage role gives its filesystems at mkfs (at most 12 bytes,
        the xfs limit). A disk carrying it is the role's own and is never refused nor reformatted.
    type: str
    default: llmscale
  test_mount_options:
    description:
      - Mount options to try on a scratch O(fstype) filesystem (a sparse 512 MiB file under the
        module's temporary directory, loop-mounted, unmounted and deleted at once), so that a typo
        fails before any disk is formatted. The result is in RV(mount_options).
      - Runs in check mode too; needs C(mkfs.<fstype>) and C(mount), else RV(mount_options.checked) is false.
    type: str
  mount_root:
    description: Where the role mounts volumes, each at C(<mount_root>/<filesystem UUID>).
    type: path
    default: /mnt/fast-disks
  fstab:
    description: The fstab file the role writes.
    type: path
    default: /etc/fstab
  lvm_vg:
    description:
      - LVM mode. Disks that are physical volumes of this volume group are C(managed), and
        O(lvm_volumes) is checked against the volume group over the selected disks.
    type: str
  lvm_volumes:
    description: Logical volumes to plan, as the nvme_storage role takes them.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Logical volume name.
        type: str
        required: true
      size:
        description: Size with a binary unit (C(500G), C(2T)), or C(N%VG), C(N%FREE).
        type: str
        required: true
  volumes:
    description: Block device paths (disks or logical volumes) to describe in RV(volumes).
    type: list
    elements: path
    default: []
notes:
  - Runs C(lsblk), C(blkid) and, in LVM mode, C(pvs) and C(dmsetup version), through the collection's
    command runner; reads sampled regions of every candidate disk blkid finds nothing on.
  - Supports check mode; it only reads (and mounts a scratch file for O(test_mount_options)).
seealso:
  - module: community.general.filesystem
  - module: ansible.posix.mount
'''

EXAMPLES = r'''
- name: Pick the Samsung NVMe disks of at least 1 TiB
  llmscale.gpu_serving.nvme_disks:
    allowlist:
      - nvme-SAMSUNG_MZWLO3T8HCLS-*
    min_size_bytes: 1099511627776
  register: nvme

- name: Show what would be refused, and why
  ansible.builtin.debug:
    msg: "{{ nvme.refused | map(attribute='by_id') | zip(nvme.refused | map(attribute='reasons')) }}"

- name: UUIDs of formatted disks
  llmscale.gpu_serving.nvme_disks:
    volumes: "{{ nvme.selected | map(attribute='path') }}"
  register: formatted
'''

RETURN = r'''
disks:
  description: Every whole disk (type disk or loop) of the machine, from lsblk.
  returned: always
  type: list
  elements: dict
  sample:
    - kname: nvme0n1
      path: /dev/nvme0n1
      type: disk
      size_bytes: 3840755982336
      model: SAMSUNG MZWLO3T8HCLS-00A07
      serial: S6UENA0W700001
      by_id: [nvme-SAMSUNG_MZWLO3T8HCLS-00A07_S6UENA0W700001]
      mountpoints: []
      descendant_mountpoints: []
      children: []
selected:
  description:
    - Allowlisted disks the role may use, with C(status) C(blank), C(forced) or C(managed);
      C(fstype), C(uuid) and C(pttype) come from the blkid probe; C(contents) (what was read of a disk
      blkid found nothing on) has C(gpt_backup), C(nonzero_offsets), C(regions) and C(bytes_read).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /dev/nvme1n1
      by_id: [nvme-SAMSUNG_MZWLO3T8HCLS-00A07_S6UENA0W700002]
      size_bytes: 3840755982336
      status: blank
      reasons: []
refused:
  description: Allowlisted disks left alone, with C(status=refused) and the C(reasons).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /dev/nvme0n1
      by_id: [nvme-SAMSUNG_MZWLO3T8HCLS-00A07_S6UENA0W700001]
      status: refused
      reasons: [holds a system filesystem, is mounted, has partitions or holders]
    - path: /dev/nvme2n1
      by_id: [nvme-SAMSUNG_MZWLO3T8HCLS-00A07_S6UENA0W700003]
      status: refused
      reasons: [has a GPT backup header at its end, holds data (non-zero bytes where a blank disk reads zeros)]
      contents: {gpt_backup: true, nonzero_offsets: [3840754933760], regions: 28644, bytes_read: 119365632}
unmatched_allowlist:
  description: Allowlist patterns that match no by-id name on this machine.
  returned: always
  type: list
  elements: str
force_unmatched:
  description: O(force) entries that are neither a by-id name nor the serial of a disk the O(allowlist) selects.
  returned: always
  type: list
  elements: str
lvm:
  description: LVM mode facts.
  returned: when O(lvm_vg) is set
  type: dict
  contains:
    tools:
      description: Whether the LVM tools are installed.
      type: bool
    vg_exists:
      description: Whether the volume group O(lvm_vg) exists (false on a fresh host).
      type: bool
    device_mapper:
      description: Whether the kernel's device-mapper answers C(dmsetup version); null when dmsetup is not installed.
      type: bool
    plan:
      description: Same as RV(lvm_plan).
      type: dict
mount_options:
  description: The result of trying O(test_mount_options) on a scratch filesystem.
  returned: when O(test_mount_options) is set
  type: dict
  contains:
    tried:
      description: The mount options tried.
      type: str
    checked:
      description: Whether they could be tried (false when mkfs or mount is not installed).
      type: bool
    error:
      description: What mount said when it refused them; null when they work.
      type: str
lvm_plan:
  description: Whether O(lvm_volumes) fit the volume group over the selected disks.
  returned: when O(lvm_vg) is set
  type: dict
  sample:
    capacity_bytes: 6434062336
    requested_bytes: 8589934592
    fits: false
    errors: [the logical volumes need 8589934592 bytes, the volume group over the selected disks holds 6434062336]
volumes:
  description: One entry per O(volumes) path; C(exists=false) when the device is not there (yet).
  returned: always
  type: list
  elements: dict
  sample:
    - requested: /dev/fastdisks/cache
      exists: true
      path: /dev/mapper/fastdisks-cache
      size_bytes: 107374182400
      fstype: xfs
      uuid: 7c1f3b2e-8a55-4c1e-9d43-1f0a5c2b9e10
      mountpoints: [/mnt/fast-disks/7c1f3b2e-8a55-4c1e-9d43-1f0a5c2b9e10]
ansible_facts:
  description: Facts set on the host.
  returned: always
  type: dict
  contains:
    nvme_disks:
      description: Same as RV(disks).
      type: list
      elements: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.command_runner import CommandError
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvme_disks import NvmeDisksError
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvme_disks_host import check_params, inspect_host


def main():
    module = AnsibleModule(
        argument_spec=dict(
            allowlist=dict(type='list', elements='str', default=[]),
            force=dict(type='list', elements='str', default=[]),
            min_size_bytes=dict(type='int', default=0),
            by_id_dir=dict(type='path', default='/dev/disk/by-id'),
            fstype=dict(type='str', default='xfs'),
            label=dict(type='str', default='llmscale'),
            mount_root=dict(type='path', default='/mnt/fast-disks'),
            fstab=dict(type='path', default='/etc/fstab'),
            lvm_vg=dict(type='str'),
            lvm_volumes=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                size=dict(type='str', required=True))),
            volumes=dict(type='list', elements='path', default=[]),
            test_mount_options=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    errors = check_params(module.params)
    if errors:
        module.fail_json(msg='Invalid parameters: %s' % '; '.join(errors))
    try:
        result = inspect_host(module, module.params)
    except (CommandError, NvmeDisksError) as error:
        module.fail_json(msg=str(error))
    for disk in result['refused']:
        module.warn('refusing %s (%s): %s' % (disk['by_id'][0], disk['path'], ', '.join(disk['reasons'])))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
