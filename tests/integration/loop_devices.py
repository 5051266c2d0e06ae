"""Loop devices over sparse files: the one helper the integration tests use for real block devices.

`LoopDevices` attaches images and, on cleanup, unmounts whatever was mounted
from them, detaches them and deletes the images. `loop_filesystem` is a
mounted ext4 on one of them. `probe`, `mounts_of` and `sha256_of` read a
device the way the tests compare it before and after a run.
"""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess

import pytest

NEEDS = 'needs root and loop devices (/dev/loop-control) to attach sparse files'


def have_loop_devices():
    return os.geteuid() == 0 and os.path.exists('/dev/loop-control') and bool(shutil.which('losetup'))


def sh(*cmd, check=True, stdin=None):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, input=stdin)


def probe(device):
    """blkid's low-level view of a device: {} when blank."""
    proc = sh('blkid', '--probe', '--output', 'export', device, check=False)
    assert proc.returncode in (0, 2) and not proc.stderr, proc.stderr
    return dict(line.split('=', 1) for line in proc.stdout.splitlines() if '=' in line)


def mounts_of(device):
    proc = sh('findmnt', '--json', '--source', device, '--output', 'TARGET,FSTYPE,OPTIONS', check=False)
    return json.loads(proc.stdout)['filesystems'] if proc.stdout.strip() else []


def sha256_of(device):
    """Digest of every byte of a device: what "left byte for byte intact" is checked with."""
    digest = hashlib.sha256()
    with open(device, 'rb') as handle:
        for block in iter(lambda: handle.read(8 * 1024 * 1024), b''):
            digest.update(block)
    return digest.hexdigest()


class LoopDevices:
    """Loop devices over sparse images in one directory; cleanup() undoes everything, pass or fail."""

    def __init__(self, directory):
        self.directory = str(directory)
        self.devices = {}  # label -> /dev/loopN
        self.images = {}

    def attach(self, label, size):
        image = os.path.join(self.directory, label + '.img')
        with open(image, 'wb') as handle:
            handle.truncate(size)  # sparse: reads zeros, as a new or discarded disk does
        device = sh('losetup', '--find', '--show', image).stdout.strip()
        self.devices[label] = device
        self.images[label] = image
        return device

    def cleanup(self):
        errors = []
        for label, device in self.devices.items():
            for mount in mounts_of(device):
                proc = sh('umount', mount['target'], check=False)
                if proc.returncode:
                    errors.append(proc.stderr)
            proc = sh('losetup', '--detach', device, check=False)
            if proc.returncode:
                errors.append(proc.stderr)
            os.unlink(self.images[label])
        self.devices.clear()
        assert not errors, errors


@contextlib.contextmanager
def loop_filesystem(mount, size):
    """An ext4 filesystem on a loop device over a sparse file, mounted at `mount`; always unmounted and detached."""
    if not have_loop_devices() or not shutil.which('mkfs.ext4'):
        pytest.fail('needs root, losetup and mkfs.ext4 (util-linux, e2fsprogs: scripts/setup.sh installs them)')
    os.makedirs(mount, exist_ok=True)
    # The image lies beside the mount point, never inside it.
    loops = LoopDevices(os.path.dirname(mount.rstrip('/')))
    try:
        device = loops.attach(os.path.basename(mount.rstrip('/')), size)
        sh('mkfs.ext4', '-q', '-F', device)
        sh('mount', device, mount)
        yield mount
    finally:
        loops.cleanup()
