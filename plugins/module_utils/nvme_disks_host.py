# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the nvme_disks module reads from the host, and how it ties it together.

The commands are declared once here (COMMANDS, run through command_runner);
the files it reads (by-id links, fstab, sampled device contents) are read
here too. Every judgement is made by the pure functions of nvme_disks.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.command_runner import (
    Command, CommandRunner, from_stdout)
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvme_disks import (
    LSBLK_COLUMNS, MAX_LABEL_BYTES, NvmeDisksError, by_id_index, candidates, classify, describe_volume,
    force_patterns, force_unmatched, inspect_contents, needs_contents, parse_blkid_export,
    parse_dmsetup_version, parse_fstab, parse_lsblk, parse_pvs_json, plan_lvm, sample_regions,
    unmatched_patterns, whole_disks)

# Large enough for mkfs.xfs (300 MiB minimum); sparse, so it costs no space.
SCRATCH_IMAGE_BYTES = 512 * 1024 * 1024

COMMANDS = {
    # Sizes in bytes, children nested: what parse_lsblk reads.
    'lsblk': Command('lsblk', ['--json', '--bytes', '--tree', '--output', ','.join(LSBLK_COLUMNS)],
                     parse=from_stdout(parse_lsblk)),
    # Low-level probe: reads the superblocks, not udev or the blkid cache. Its exit code is the answer.
    'blkid': Command('blkid', lambda device: ['--probe', '--output', 'export', device], ok_rcs=None,
                     parse=lambda result: parse_blkid_export(result.rc, result.stdout, result.stderr)),
    'pvs': Command('pvs', ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'pv_name,vg_name,pv_size'],
                   parse=from_stdout(parse_pvs_json)),
    # Whether the kernel can activate logical volumes (lvcreate needs it).
    'dmsetup': Command('dmsetup', ['version'], ok_rcs=None,
                       parse=lambda result: parse_dmsetup_version(result.rc, result.stdout, result.stderr)),
    # The scratch filesystem the mount options are tried on.
    'mkfs.xfs': Command('mkfs.xfs', lambda image: ['-q', '-f', image]),
    'mkfs.ext4': Command('mkfs.ext4', lambda image: ['-q', '-F', image]),
    'mount': Command('mount', lambda fstype, options, image, target: [
        '-t', fstype, '-o', ','.join(['loop'] + ([options] if options else [])), image, target], ok_rcs=None),
    'umount': Command('umount', lambda target: [target]),
}


def read_by_id_links(directory):
    if not os.path.isdir(directory):
        return {}
    return dict((name, os.path.realpath(os.path.join(directory, name))) for name in os.listdir(directory))


def read_text(path):
    if not os.path.exists(path):
        return ''
    with open(path) as handle:
        return handle.read()


def read_samples(path, size_bytes):
    """The bytes of sample_regions(size_bytes) of a device, {offset: bytes}; OSError when it cannot be read."""
    samples = {}
    with open(path, 'rb') as device:
        for offset, length in sample_regions(size_bytes):
            device.seek(offset)
            data = device.read(length)
            if len(data) != length:
                raise OSError('short read at offset %d of %s' % (offset, path))
            samples[offset] = data
    return samples


def read_contents(disk):
    """inspect_contents' verdict for a disk, or the NvmeDisksError reading it raised."""
    try:
        return inspect_contents(disk['size_bytes'], read_samples(disk['path'], disk['size_bytes']))
    except (IOError, OSError) as error:
        return NvmeDisksError('reading %s failed: %s' % (disk['path'], error))


def probe(runner, device):
    try:
        return runner.run('blkid', device=device)
    except NvmeDisksError as error:
        return error


def try_mount_options(runner, fstype, options, workdir):
    """Mount a scratch filesystem of `fstype` with `options`: None when the kernel takes them, else why not.

    Returns (checked, error); checked is False when the tools are not installed yet
    (check mode on a fresh host), so nothing could be tried.
    """
    mkfs = 'mkfs.' + fstype
    if not (runner.available(mkfs) and runner.available('mount') and runner.available('umount')):
        return False, None
    scratch = tempfile.mkdtemp(prefix='nvme-mount-options-', dir=workdir)
    image, target = os.path.join(scratch, 'scratch.img'), os.path.join(scratch, 'mnt')
    mounted = False
    try:
        os.mkdir(target)
        with open(image, 'wb') as handle:
            handle.truncate(SCRATCH_IMAGE_BYTES)
        runner.run(mkfs, image=image)
        result = runner.run('mount', fstype=fstype, options=options, image=image, target=target)
        if result.rc != 0:
            return True, result.last_line() or 'mount exited with %s' % result.rc
        mounted = True
        return True, None
    finally:
        if mounted:
            runner.run('umount', target=target)  # -o loop sets autoclear: this detaches the loop device too
        shutil.rmtree(scratch, ignore_errors=True)


def check_params(params):
    """Problems with the options themselves, before anything is read."""
    errors = []
    patterns = force_patterns(params['force'])
    if patterns:
        errors.append('force entries must be exact by-id names or serials, not patterns: %s' % ', '.join(patterns))
    label = params.get('label') or ''
    if len(label.encode('utf-8')) > MAX_LABEL_BYTES or ' ' in label:
        errors.append('label %r must be at most %d bytes without spaces (xfs labels hold 12)' % (label, MAX_LABEL_BYTES))
    return errors


def inspect_host(module, params):
    """Read the host and decide; returns the module's result keys (changed excluded)."""
    runner = CommandRunner(module, COMMANDS)
    devices = runner.run('lsblk')
    disks = whole_disks(devices, by_id_index(read_by_id_links(params['by_id_dir'])))
    allowed = candidates(disks, params['allowlist'])
    probes = dict((disk['path'], probe(runner, disk['path'])) for disk in allowed)
    contents = dict((disk['path'], read_contents(disk)) for disk in allowed
                    if needs_contents(disk, probes[disk['path']]))
    lvm = None
    pv_owners = {}
    if params['lvm_vg']:
        if runner.available('pvs'):
            pv_owners = runner.run('pvs')
        lvm = {
            'tools': runner.available('pvs'),
            'vg_exists': params['lvm_vg'] in pv_owners.values(),
            # None: dmsetup is not installed yet, so nobody can tell.
            'device_mapper': runner.run('dmsetup') if runner.available('dmsetup') else None,
        }
    selection = classify(disks, probes, params['allowlist'], params['force'], params['min_size_bytes'],
                         params['mount_root'], params['fstype'], parse_fstab(read_text(params['fstab'])),
                         params['lvm_vg'], pv_owners, contents, params['label'])
    volumes = []
    for requested in params['volumes']:
        real = os.path.realpath(requested)
        device = next((d for d in devices.values() if real in (d['path'], '/dev/' + d['kname'])), None)
        if device is None:
            volumes.append({'requested': requested, 'exists': False})
            continue
        signature = probe(runner, requested)
        if isinstance(signature, Exception):
            raise signature
        volumes.append(dict(describe_volume(device, signature), requested=requested, exists=True))
    result = dict(
        disks=disks,
        selected=selection['selected'],
        refused=selection['refused'],
        unmatched_allowlist=unmatched_patterns(disks, params['allowlist']),
        force_unmatched=force_unmatched(params['force'], disks, params['allowlist']),
        volumes=volumes,
        ansible_facts={'nvme_disks': disks},
    )
    if lvm is not None:
        lvm['plan'] = plan_lvm([disk['size_bytes'] for disk in selection['selected']], params['lvm_volumes'])
        result['lvm'] = lvm
        result['lvm_plan'] = lvm['plan']
    if params['test_mount_options'] is not None:
        checked, error = try_mount_options(runner, params['fstype'], params['test_mount_options'], module.tmpdir)
        result['mount_options'] = {'tried': params['test_mount_options'], 'checked': checked, 'error': error}
    return result
