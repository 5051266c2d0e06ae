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
  - Selects disks only by by-id name. A selected disk is C(blank) (format it), C(managed)
    (it carries what the nvme_storage role made, so keep it), C(forced) (O(force) names it) or
    C(refused) (mounted, system disk, partitions, a signature, too small, read-only, unreadable).
  - Mounted, read-only, unreadable and system disks stay refused even when O(force) names them.
  - Optionally describes block devices after they were formatted (O(volumes)) and checks that
    LVM logical volumes fit the volume group over the selected disks (O(lvm_volumes)).
  - Changes nothing.
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
      - Exact by-id names of disks to format even though they carry partitions, a signature or are
        below O(min_size_bytes). Every entry must match an O(allowlist) pattern.
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
  - Runs C(lsblk), C(blkid) and, in LVM mode, C(pvs). Supports check mode (it only reads).
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
      C(fstype), C(uuid) and C(pttype) come from the blkid probe.
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
unmatched_allowlist:
  description: Allowlist patterns that match no by-id name on this machine.
  returned: always
  type: list
  elements: str
force_outside_allowlist:
  description: O(force) entries that no allowlist pattern matches.
  returned: always
  type: list
  elements: str
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

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvme_disks import (
    NvmeDisksError, blkid_command, by_id_index, classify, describe_volume, force_outside_allowlist,
    lsblk_command, parse_blkid_export, parse_fstab, parse_lsblk, parse_pvs_json, plan_lvm, pvs_command,
    unmatched_patterns, whole_disks, candidates)


def read_by_id_links(directory):
    if not os.path.isdir(directory):
        return {}
    return dict((name, os.path.realpath(os.path.join(directory, name))) for name in os.listdir(directory))


def run(module, cmd, ok_rcs=(0,)):
    rc, out, err = module.run_command(cmd)
    if rc not in ok_rcs:
        module.fail_json(msg='%s failed (rc=%s): %s' % (' '.join(cmd), rc, (err or out).strip()), rc=rc)
    return rc, out, err


def probe(module, blkid_bin, device):
    rc, out, err = module.run_command(blkid_command(blkid_bin, device))
    try:
        return parse_blkid_export(rc, out, err)
    except NvmeDisksError as error:
        return error


def main():
    module = AnsibleModule(
        argument_spec=dict(
            allowlist=dict(type='list', elements='str', default=[]),
            force=dict(type='list', elements='str', default=[]),
            min_size_bytes=dict(type='int', default=0),
            by_id_dir=dict(type='path', default='/dev/disk/by-id'),
            fstype=dict(type='str', default='xfs'),
            mount_root=dict(type='path', default='/mnt/fast-disks'),
            fstab=dict(type='path', default='/etc/fstab'),
            lvm_vg=dict(type='str'),
            lvm_volumes=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                size=dict(type='str', required=True))),
            volumes=dict(type='list', elements='path', default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    blkid_bin = module.get_bin_path('blkid', required=True)
    try:
        _rc, out, _err = run(module, lsblk_command(module.get_bin_path('lsblk', required=True)))
        devices = parse_lsblk(out)
        disks = whole_disks(devices, by_id_index(read_by_id_links(params['by_id_dir'])))
        allowed = candidates(disks, params['allowlist'])
        probes = dict((disk['path'], probe(module, blkid_bin, disk['path'])) for disk in allowed)
        fstab = []
        if os.path.exists(params['fstab']):
            with open(params['fstab']) as handle:
                fstab = parse_fstab(handle.read())
        pv_owners = {}
        pvs_bin = module.get_bin_path('pvs')
        if params['lvm_vg'] and pvs_bin:
            pv_owners = parse_pvs_json(run(module, pvs_command(pvs_bin))[1])
        selection = classify(disks, probes, params['allowlist'], params['force'], params['min_size_bytes'],
                             params['mount_root'], params['fstype'], fstab, params['lvm_vg'], pv_owners)
        volumes = []
        for requested in params['volumes']:
            real = os.path.realpath(requested)
            device = next((d for d in devices.values() if real in (d['path'], '/dev/' + d['kname'])), None)
            if device is None:
                volumes.append({'requested': requested, 'exists': False})
                continue
            signature = probe(module, blkid_bin, requested)
            if isinstance(signature, Exception):
                raise signature
            volumes.append(dict(describe_volume(device, signature), requested=requested, exists=True))
    except NvmeDisksError as error:
        module.fail_json(msg=str(error))

    for disk in selection['refused']:
        module.warn('refusing %s (%s): %s' % (disk['by_id'][0], disk['path'], ', '.join(disk['reasons'])))
    result = dict(
        changed=False,
        disks=disks,
        selected=selection['selected'],
        refused=selection['refused'],
        unmatched_allowlist=unmatched_patterns(disks, params['allowlist']),
        force_outside_allowlist=force_outside_allowlist(params['force'], params['allowlist']),
        volumes=volumes,
        ansible_facts={'nvme_disks': disks},
    )
    if params['lvm_vg']:
        result['lvm_plan'] = plan_lvm([disk['size_bytes'] for disk in selection['selected']], params['lvm_volumes'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
