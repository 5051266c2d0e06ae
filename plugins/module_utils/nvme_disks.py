# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the nvme_disks module: parse lsblk/blkid/pvs/dmsetup/fstab
output, join /dev/disk/by-id names, judge sampled disk contents, and decide
which disks may be formatted.

Nothing here runs a command or touches a file: nvme_disks_host.py declares
the commands, reads the host and hands the raw output in, so every rule is
unit-tested on recorded output.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fnmatch
import json
import re

LSBLK_COLUMNS = ('NAME', 'KNAME', 'PATH', 'PKNAME', 'TYPE', 'SIZE', 'RO', 'RM', 'MODEL', 'SERIAL',
                 'WWN', 'FSTYPE', 'UUID', 'PTTYPE', 'MOUNTPOINTS')
# Whole devices a node can hand to the role; partitions, LVs and RAID sets never are.
WHOLE_DISK_TYPES = ('disk', 'loop')
# A disk holding one of these (itself or through a partition/LV) runs the machine.
SYSTEM_MOUNTPOINTS = ('/', '/boot', '/boot/efi', '/efi', '/usr', '/var')
# blkid -p exit codes: 0 = a signature was found, 2 = nothing was found.
BLKID_FOUND, BLKID_NOTHING = 0, 2
# LVM defaults (lvm.conf): 4 MiB extents; pvcreate starts data at 1 MiB.
LVM_EXTENT_BYTES = 4 * 1024 * 1024
LVM_PV_DATA_OFFSET_BYTES = 1024 * 1024
SIZE_UNITS = {'': 1, 'b': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4, 'p': 1024 ** 5}

# Refusal reasons. Absolute ones stand even when `force` names the disk:
# mkfs on a mounted or system disk destroys a running system.
REASON_SYSTEM = 'holds a system filesystem'
REASON_MOUNTED = 'is mounted'
REASON_READ_ONLY = 'is read-only'
REASON_PROBE_FAILED = 'could not be probed'
REASON_CHILDREN = 'has partitions or holders'
REASON_PARTITION_TABLE = 'has a partition table'
REASON_SIGNATURE = 'carries a signature'
REASON_TOO_SMALL = 'is below the minimum size'
# blkid knows signatures only; these come from reading the disk itself.
REASON_GPT_BACKUP = 'has a GPT backup header at its end'
REASON_DATA = 'holds data (non-zero bytes where a blank disk reads zeros)'
REASON_UNREADABLE = 'could not be read'
ABSOLUTE_REASONS = (REASON_SYSTEM, REASON_MOUNTED, REASON_READ_ONLY, REASON_PROBE_FAILED, REASON_UNREADABLE)

# Content sampling: a factory-new or discarded NVMe disk reads zeros
# everywhere. The first and last MiB hold every partition table, superblock
# and RAID/LVM/LUKS header; 4 KiB samples every 128 MiB (ext4's block group
# with 4 KiB blocks, so its backup superblocks are hit) and at every power of
# two MiB (1 KiB-block ext4 groups, xfs allocation groups) find the rest.
EDGE_BYTES = 1024 * 1024
SAMPLE_BYTES = 4096
SPREAD_STRIDE_BYTES = 128 * 1024 * 1024
MAX_SPREAD_SAMPLES = 32768  # 128 MiB read at most, however large the disk
# The GPT backup header is the last logical block: 512 or 4096 bytes.
GPT_SIGNATURE = b'EFI PART'
LOGICAL_BLOCK_SIZES = (512, 4096)
# Where a filesystem's exact name is asked for, never a pattern.
PATTERN_CHARACTERS = '*?['
# mkfs label marking a filesystem the role made (xfs labels hold 12 bytes).
MAX_LABEL_BYTES = 12


class NvmeDisksError(Exception):
    """Output that cannot be trusted: the module fails instead of guessing."""


def _flag(value):
    # util-linux 2.38 gives JSON booleans; older releases gave "0"/"1".
    if isinstance(value, bool):
        return value
    return str(value).strip() in ('1', 'true')


def _size(value):
    if value in (None, ''):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NvmeDisksError('lsblk size %r is not a number of bytes (was --bytes given?)' % (value,))


def _mountpoints(entry):
    points = entry.get('mountpoints')
    if points is None:  # lsblk before 2.37 has only MOUNTPOINT
        points = [entry.get('mountpoint')]
    return [point for point in points if point]


def parse_lsblk(text):
    """lsblk --json --tree output -> {kname: device}, every device once.

    Each device: kname, name, path, pkname, type, size_bytes, read_only,
    removable, model, serial, wwn, fstype, uuid, pttype, mountpoints,
    children (knames), and descendant_mountpoints (its own and those of
    every partition/LV/RAID set below it).
    """
    try:
        tree = json.loads(text)
        roots = tree['blockdevices']
    except (ValueError, TypeError, KeyError) as error:
        raise NvmeDisksError('lsblk output is not the expected JSON: %s' % error)
    devices = {}

    def walk(entry, parent):
        kname = entry.get('kname') or entry.get('name')
        if not kname:
            raise NvmeDisksError('lsblk entry without a name: %r' % (entry,))
        children = entry.get('children') or []
        device = devices.get(kname) or {
            'kname': kname,
            'name': entry.get('name') or kname,
            'path': entry.get('path') or '/dev/' + kname,
            'pkname': entry.get('pkname') or parent,
            'type': entry.get('type') or '',
            'size_bytes': _size(entry.get('size')),
            'read_only': _flag(entry.get('ro', False)),
            'removable': _flag(entry.get('rm', False)),
            'model': (entry.get('model') or '').strip() or None,
            'serial': (entry.get('serial') or '').strip() or None,
            'wwn': entry.get('wwn') or None,
            'fstype': entry.get('fstype') or None,
            'uuid': entry.get('uuid') or None,
            'pttype': entry.get('pttype') or None,
            'mountpoints': _mountpoints(entry),
            'children': [],
        }
        devices[kname] = device
        mounts = list(device['mountpoints'])
        for child in children:
            child_kname, child_mounts = walk(child, kname)
            if child_kname not in device['children']:
                device['children'].append(child_kname)
            mounts.extend(child_mounts)
        # An LV spanning two disks appears under both: merge, keep order.
        known = device.get('descendant_mountpoints', [])
        device['descendant_mountpoints'] = known + [m for m in mounts if m not in known]
        return kname, device['descendant_mountpoints']

    for root in roots:
        walk(root, None)
    return devices


def parse_blkid_export(rc, stdout, stderr=''):
    """blkid -p -o export -> {'TYPE': 'xfs', 'UUID': ..., 'PTTYPE': ...}; {} for a blank device."""
    # rc 2 also means "could not open": only a silent rc 2 is a blank device.
    if rc == BLKID_NOTHING and not stderr.strip():
        return {}
    if rc != BLKID_FOUND:
        raise NvmeDisksError('blkid failed (rc=%s): %s' % (rc, (stderr or stdout).strip()))
    values = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition('=')
        if sep:
            # export format escapes spaces and specials with a backslash.
            values[key.strip()] = re.sub(r'\\(.)', r'\1', value)
    return values


def parse_pvs_json(text):
    """pvs --reportformat json -> {pv path: vg name ('' when in no VG)}."""
    try:
        report = json.loads(text)['report']
    except (ValueError, TypeError, KeyError) as error:
        raise NvmeDisksError('pvs output is not the expected JSON: %s' % error)
    owners = {}
    for section in report:
        for pv in section.get('pv', []):
            owners[pv['pv_name']] = pv.get('vg_name', '')
    return owners


def parse_fstab(text):
    """fstab text -> list of {'src', 'path', 'fstype', 'opts'} (comments skipped)."""
    entries = []
    for line in text.splitlines():
        fields = line.split('#', 1)[0].split()
        if len(fields) >= 2:
            entries.append({'src': fields[0], 'path': fields[1].replace('\\040', ' '),
                            'fstype': fields[2] if len(fields) > 2 else '',
                            'opts': fields[3] if len(fields) > 3 else 'defaults'})
    return entries


def parse_dmsetup_version(rc, stdout, stderr=''):
    """dmsetup version -> True when the kernel's device-mapper answers (LVM can activate volumes)."""
    return rc == 0 and any(line.startswith('Driver version:') for line in stdout.splitlines())


def sample_regions(size_bytes):
    """Byte ranges (offset, length) to read to tell a blank disk from one holding data, in order."""
    if size_bytes <= 0:
        return []
    regions = {0: min(EDGE_BYTES, size_bytes)}
    end_start = max(size_bytes - EDGE_BYTES, 0)
    regions[end_start] = size_bytes - end_start
    stride = SPREAD_STRIDE_BYTES
    while size_bytes // stride > MAX_SPREAD_SAMPLES:
        stride += SPREAD_STRIDE_BYTES
    offsets = set(range(stride, end_start, stride))
    power = 2 * EDGE_BYTES
    while power < end_start:
        offsets.add(power)
        power *= 2
    for offset in offsets:
        regions.setdefault(offset, min(SAMPLE_BYTES, end_start - offset))
    return sorted(regions.items())


def inspect_contents(size_bytes, samples):
    """Judge what was read: samples {offset: bytes} as read from sample_regions(size_bytes).

    Returns {'gpt_backup': bool, 'nonzero_offsets': [...], 'regions': n, 'bytes_read': n}.
    """
    nonzero, gpt_backup, bytes_read = [], False, 0
    for offset, data in sorted(samples.items()):
        bytes_read += len(data)
        if data.count(b'\0') != len(data):
            nonzero.append(offset)
        for block in LOGICAL_BLOCK_SIZES:
            start = size_bytes - block - offset
            if 0 <= start and data[start:start + len(GPT_SIGNATURE)] == GPT_SIGNATURE:
                gpt_backup = True
    return {'gpt_backup': gpt_backup, 'nonzero_offsets': nonzero, 'regions': len(samples), 'bytes_read': bytes_read}


def content_reasons(contents):
    """Refusal reasons from inspect_contents' verdict; an exception (read failed) refuses too."""
    if contents is None:
        return []
    if isinstance(contents, Exception):
        return [REASON_UNREADABLE]
    reasons = []
    if contents['gpt_backup']:
        reasons.append(REASON_GPT_BACKUP)
    if contents['nonzero_offsets']:
        reasons.append(REASON_DATA)
    return reasons


def by_id_index(links):
    """{by-id name: resolved device path} -> {device path: sorted by-id names}."""
    index = {}
    for name, target in links.items():
        index.setdefault(target, []).append(name)
    return dict((path, sorted(names)) for path, names in index.items())


def whole_disks(devices, by_id):
    """Top-level disk/loop devices, each with its by-id names."""
    disks = []
    for device in devices.values():
        if device['type'] in WHOLE_DISK_TYPES and not device['pkname']:
            disks.append(dict(device, by_id=by_id.get(device['path'], [])))
    return sorted(disks, key=lambda disk: disk['kname'])


def matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def candidates(disks, allowlist):
    """Disks with at least one by-id name matching the allowlist; only these are ever probed."""
    return [disk for disk in disks if any(matches(name, allowlist) for name in disk['by_id'])]


def unmatched_patterns(disks, allowlist):
    names = [name for disk in disks for name in disk['by_id']]
    return [pattern for pattern in allowlist if not any(fnmatch.fnmatchcase(name, pattern) for name in names)]


def disk_names(disk):
    """The exact names `force` may use for a disk: its by-id names and its serial."""
    return list(disk['by_id']) + ([disk['serial']] if disk.get('serial') else [])


def force_patterns(force):
    """`force` entries that look like patterns: forcing names one disk exactly, never a group."""
    return [entry for entry in force if any(char in entry for char in PATTERN_CHARACTERS)]


def force_unmatched(force, disks, allowlist):
    """`force` entries that name no allowlisted disk (by-id name or serial): force never widens the selection."""
    names = set(name for disk in candidates(disks, allowlist) for name in disk_names(disk))
    return [entry for entry in force if entry not in names]


def _managed(disk, signature, fstab, mount_root, fstype, lvm_vg, pv_owners, label):
    """Whether this disk already carries what the role made: re-runs keep it, never reformat it.

    The role's filesystems carry its mkfs label: one that is neither mounted
    nor in fstab is a preparation interrupted between mkfs and mount, which
    the run resumes.
    """
    if lvm_vg:
        return signature.get('TYPE') == 'LVM2_member' and pv_owners.get(disk['path']) == lvm_vg
    uuid = signature.get('UUID')
    if signature.get('TYPE') != fstype or not uuid:
        return False
    path = mount_root.rstrip('/') + '/' + uuid
    mounts = disk['descendant_mountpoints']
    if mounts:
        return set(mounts) == {path}
    in_fstab = any(entry['path'] == path and entry['src'] == 'UUID=' + uuid for entry in fstab)
    return in_fstab or bool(label and signature.get('LABEL') == label)


def refusal_reasons(disk, signature, probe_error, min_size_bytes, contents=None):
    """Why a disk must not be formatted, most serious first; [] for a blank disk.

    contents: inspect_contents' verdict (or the read error) for a disk blkid found nothing on.
    """
    reasons = []
    mounts = disk['descendant_mountpoints']
    if any(point in SYSTEM_MOUNTPOINTS for point in mounts):
        reasons.append(REASON_SYSTEM)
    if mounts:
        reasons.append(REASON_MOUNTED)
    if disk['read_only']:
        reasons.append(REASON_READ_ONLY)
    if probe_error:
        reasons.append(REASON_PROBE_FAILED)
    if disk['children']:
        reasons.append(REASON_CHILDREN)
    if disk['pttype'] or signature.get('PTTYPE'):
        reasons.append(REASON_PARTITION_TABLE)
    if disk['fstype'] or signature.get('TYPE'):
        reasons.append(REASON_SIGNATURE)
    reasons.extend(content_reasons(contents))
    if disk['size_bytes'] < min_size_bytes:
        reasons.append(REASON_TOO_SMALL)
    return reasons


def needs_contents(disk, probe):
    """Whether a disk's contents must be read: blkid found nothing on it (and could read it)."""
    return probe == {} and not disk['fstype'] and not disk['pttype']


def classify(disks, probes, allowlist, force, min_size_bytes, mount_root, fstype,
             fstab=None, lvm_vg=None, pv_owners=None, contents=None, label=None):
    """Decide, for every allowlisted disk, what the role may do with it.

    probes: {device path: blkid values, or an NvmeDisksError when blkid failed}.
    contents: {device path: inspect_contents() verdict, or the exception
    reading raised}, for the disks needs_contents() named; a disk blkid found
    nothing on and whose contents were not read is refused as unreadable.
    label: the mkfs label the role marks its filesystems with.
    force: exact by-id names or serials.
    Returns {'selected': [...], 'refused': [...]}; each disk gets
    `status` (blank: format it; forced: format over what is there, `force`
    named it; managed: made by this role, keep it; refused: leave it alone)
    and `reasons`.
    """
    contents = contents or {}
    selected, refused = [], []
    for disk in candidates(disks, allowlist):
        probe = probes.get(disk['path'], {})
        probe_error = str(probe) if isinstance(probe, Exception) else None
        signature = {} if probe_error else probe
        result = dict(disk, fstype=signature.get('TYPE') or disk['fstype'],
                      uuid=signature.get('UUID') or disk['uuid'],
                      pttype=signature.get('PTTYPE') or disk['pttype'],
                      probe_error=probe_error)
        verdict = None
        if needs_contents(disk, probe):
            verdict = contents.get(disk['path'], NvmeDisksError('contents were not read'))
        if verdict is not None and not isinstance(verdict, Exception):
            result['contents'] = verdict
        reasons = refusal_reasons(disk, signature, probe_error, min_size_bytes, verdict)
        if not probe_error and _managed(disk, signature, fstab or [], mount_root, fstype, lvm_vg, pv_owners or {},
                                        label):
            result.update(status='managed', reasons=[])
        elif not reasons:
            result.update(status='blank', reasons=[])
        elif any(name in force for name in disk_names(disk)) and not set(reasons) & set(ABSOLUTE_REASONS):
            result.update(status='forced', reasons=reasons)
        else:
            result.update(status='refused', reasons=reasons)
        (refused if result['status'] == 'refused' else selected).append(result)
    return {'selected': selected, 'refused': refused}


def parse_size(text):
    """'512M', '2g', 1073741824 -> bytes: lvol's absolute sizes (binary units)."""
    match = re.match(r'^(\d+)([bkmgtp]?)$', str(text).strip(), re.IGNORECASE)
    if not match:
        raise NvmeDisksError('%r is not a size (a whole number with an optional unit b, k, m, g, t or p)' % (text,))
    return int(match.group(1)) * SIZE_UNITS[match.group(2).lower()]


def pv_usable_bytes(size_bytes):
    """What one PV adds to a VG with LVM's defaults: whole extents after the 1 MiB data offset."""
    extents = max(size_bytes - LVM_PV_DATA_OFFSET_BYTES, 0) // LVM_EXTENT_BYTES
    return extents * LVM_EXTENT_BYTES


def plan_lvm(pv_sizes, volumes):
    """Check that the logical volumes fit the volume group over the selected disks.

    volumes: [{'name', 'size'}] with sizes like '100G' or 'N%VG' / 'N%FREE'
    (lvol's forms). Absolute sizes round up to whole extents.
    """
    capacity = sum(pv_usable_bytes(size) for size in pv_sizes)
    requested, percent_of_vg, errors = 0, 0, []
    for volume in volumes:
        size = str(volume['size']).strip()
        percent = re.match(r'^(\d+)%(VG|FREE|PVS)$', size, re.IGNORECASE)
        if percent:
            if not 0 < int(percent.group(1)) <= 100:
                errors.append('%s: %s is not between 1%% and 100%%' % (volume['name'], size))
            elif percent.group(2).upper() != 'FREE':
                percent_of_vg += int(percent.group(1))
            continue
        try:
            bytes_ = parse_size(size)
        except NvmeDisksError as error:
            errors.append('%s: %s' % (volume['name'], error))
            continue
        requested += -(-bytes_ // LVM_EXTENT_BYTES) * LVM_EXTENT_BYTES
    requested += capacity * percent_of_vg // 100
    if requested > capacity:
        errors.append('the logical volumes need %d bytes, the volume group over the selected disks holds %d'
                      % (requested, capacity))
    return {'capacity_bytes': capacity, 'requested_bytes': requested, 'fits': not errors, 'errors': errors}


def describe_volume(device, signature):
    """A block device the role mounts (a disk or an LV): what the mount and PV need."""
    return {'path': device['path'], 'kname': device['kname'], 'size_bytes': device['size_bytes'],
            'fstype': signature.get('TYPE') or device['fstype'], 'uuid': signature.get('UUID') or device['uuid'],
            'mountpoints': device['mountpoints']}
