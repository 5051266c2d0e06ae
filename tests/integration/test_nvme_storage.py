"""The nvme_storage role on real block devices: loop devices over sparse files.

Each test attaches its own loop devices and points the role at a directory of
by-id-like links to them (nvme-TEST_LOOP_<test id>_<label>); the machine's
real disks are never in that directory, so they can never be selected. mkfs,
mount, fstab (a scratch file: /etc/fstab is never touched) and, with the
`kubeconfig` fixture, the StorageClass and PersistentVolumes are all real.
Finalizers unmount, detach and delete whatever a test made, pass or fail.
"""
import json
import os
import subprocess
import uuid

import pytest
from kubernetes import client, config

from helpers import run_playbook  # pylint: disable=import-error

GIB = 1024 ** 3
MIN_SIZE = GIB  # loop devices are small: 3 GiB sparse files
PLAYBOOK = """---
- name: Apply the nvme_storage role
  hosts: all
  gather_facts: false
  module_defaults:
    group/kubernetes.core.k8s:
      kubeconfig: "{{ llmscale_kubeconfig | default(omit) }}"
  roles:
    - role: llmscale.gpu_serving.nvme_storage
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists('/dev/loop-control'),
    reason='needs root and loop devices (/dev/loop-control) to attach sparse files')


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def probe(device):
    """blkid's low-level view of a device: {} when blank."""
    proc = sh('blkid', '--probe', '--output', 'export', device, check=False)
    assert proc.returncode in (0, 2) and not proc.stderr, proc.stderr
    return dict(line.split('=', 1) for line in proc.stdout.splitlines() if '=' in line)


def mounts_of(device):
    proc = sh('findmnt', '--json', '--source', device, '--output', 'TARGET,FSTYPE,OPTIONS', check=False)
    return json.loads(proc.stdout)['filesystems'] if proc.stdout.strip() else []


class LoopNode:
    """One simulated node: loop devices, a by-id directory, a mount root and an fstab, all temporary."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.test_id = uuid.uuid4().hex[:8]
        self.by_id_dir = tmp_path / 'by-id'
        self.mount_root = str(tmp_path / 'fast-disks')
        self.fstab = tmp_path / 'fstab'
        self.by_id_dir.mkdir()
        self.fstab.write_text('')
        self.devices = {}
        self.playbook = tmp_path / 'nvme_storage.yml'
        self.playbook.write_text(PLAYBOOK)
        self.node_name = 'nvme-test-' + self.test_id
        self.class_name = 'local-nvme-test-' + self.test_id

    def by_id(self, label):
        return 'nvme-TEST_LOOP_%s_%s' % (self.test_id, label)

    def attach(self, label, size=3 * GIB):
        image = self.tmp / (label + '.img')
        with open(image, 'wb') as handle:
            handle.truncate(size)  # sparse
        device = sh('losetup', '--find', '--show', str(image)).stdout.strip()
        self.devices[label] = device
        os.symlink(device, self.by_id_dir / self.by_id(label))
        return device

    def role_vars(self, **overrides):
        values = {
            'nvme_storage_allowlist': [self.by_id('*')],
            'nvme_storage_by_id_dir': str(self.by_id_dir),
            'nvme_storage_min_size_bytes': MIN_SIZE,
            'nvme_storage_mount_root': self.mount_root,
            'nvme_storage_fstab': str(self.fstab),
            'nvme_storage_node_name': self.node_name,
            'nvme_storage_class_name': self.class_name,
            'nvme_storage_manage_kubernetes': False,
        }
        values.update(overrides)
        return values

    def run(self, check=False, diff=False, **overrides):
        return run_playbook(str(self.playbook), extra_vars=self.role_vars(**overrides), check=check, diff=diff)

    def cleanup(self):
        errors = []
        for device in self.devices.values():
            for mount in mounts_of(device):
                proc = sh('umount', mount['target'], check=False)
                if proc.returncode:
                    errors.append(proc.stderr)
            proc = sh('losetup', '--detach', device, check=False)
            if proc.returncode:
                errors.append(proc.stderr)
        assert not errors, errors


@pytest.fixture(name='node')
def node_fixture(tmp_path):
    loop_node = LoopNode(tmp_path)
    yield loop_node
    loop_node.cleanup()


def put_marker(device, tmp_path):
    """An ext4 filesystem holding a file: somebody's data the role must leave alone."""
    sh('mkfs.ext4', '-q', device)
    target = tmp_path / 'marker-mount'
    target.mkdir(exist_ok=True)
    sh('mount', device, str(target))
    try:
        (target / 'marker.txt').write_text('keep me')
    finally:
        sh('umount', str(target))
    return probe(device)['UUID']


def read_marker(device, tmp_path):
    target = tmp_path / 'marker-mount'
    sh('mount', '-o', 'ro', device, str(target))
    try:
        return (target / 'marker.txt').read_text()
    finally:
        sh('umount', str(target))


def assert_untouched(node, result, devices):
    """A failed run that changed nothing: disks still blank, fstab empty, nothing mounted."""
    assert result.rc != 0, result.describe()
    assert result.changed == 0, result.describe()
    for device in devices:
        assert probe(device) == {}, device
        assert mounts_of(device) == []
    assert node.fstab.read_text() == ''


def test_formats_mounts_refuses_and_is_idempotent(node, tmp_path):
    blank = node.attach('blank')
    data = node.attach('data')
    data_uuid = put_marker(data, tmp_path)

    preview = node.run(check=True, diff=True)
    assert preview.rc == 0, preview.describe()
    assert preview.changed > 0  # it would format the blank disk
    assert probe(blank) == {} and node.fstab.read_text() == ''

    first = node.run()
    assert first.rc == 0, first.describe()
    fs = probe(blank)
    assert fs['TYPE'] == 'xfs'
    mount_path = '%s/%s' % (node.mount_root, fs['UUID'])
    [mounted] = mounts_of(blank)
    assert (mounted['target'], mounted['fstype']) == (mount_path, 'xfs')
    assert node.fstab.read_text().split('\n')[0].split() == [
        'UUID=' + fs['UUID'], mount_path, 'xfs', 'noatime,nofail', '0', '0']
    # The disk with data: refused with a warning, filesystem and file untouched.
    [discovery] = first.results_of('Discover the disks and pick the allowlisted ones')
    assert [(d['path'], d['reasons']) for d in discovery['refused']] == [(data, ['carries a signature'])]
    assert any(node.by_id('data') in warning for warning in discovery.get('warnings', []))
    assert probe(data)['UUID'] == data_uuid and mounts_of(data) == []
    assert read_marker(data, tmp_path) == 'keep me'

    second = node.run(diff=True)
    assert second.rc == 0 and second.changed == 0, second.describe()
    assert node.run(check=True).changed == 0

    # Leaving the allowlist stops management; it never unmounts or wipes.
    (tmp_path / 'fast-disks' / fs['UUID'] / 'model.bin').write_text('weights')
    kept = node.run(nvme_storage_allowlist=[node.by_id('data')])
    assert kept.rc == 0 and kept.changed == 0, kept.describe()
    assert [m['target'] for m in mounts_of(blank)] == [mount_path]
    assert probe(blank)['UUID'] == fs['UUID']
    assert ('UUID=' + fs['UUID']) in node.fstab.read_text()
    assert (tmp_path / 'fast-disks' / fs['UUID'] / 'model.bin').read_text() == 'weights'


def test_force_formats_a_disk_with_a_signature_once(node, tmp_path):
    data = node.attach('data')
    old_uuid = put_marker(data, tmp_path)
    refused = node.run(nvme_storage_on_refused='fail')
    assert refused.rc != 0 and 'nvme_storage_on_refused' in ' '.join(refused.failure_messages())
    assert probe(data)['UUID'] == old_uuid
    forced = node.run(nvme_storage_force=[node.by_id('data')])
    assert forced.rc == 0, forced.describe()
    fs = probe(data)
    assert fs['TYPE'] == 'xfs' and fs['UUID'] != old_uuid
    # Now it is the role's own disk: a re-run keeps it (force never reformats it again).
    again = node.run(nvme_storage_force=[node.by_id('data')])
    assert again.rc == 0 and again.changed == 0, again.describe()
    assert probe(data)['UUID'] == fs['UUID']


@pytest.mark.parametrize('overrides, variable', [
    ({'nvme_storage_allowlist': ['nvme-NO_SUCH_DISK_*']}, 'nvme_storage_allowlist'),
    ({'nvme_storage_force': ['nvme-NOT_ALLOWLISTED']}, 'nvme_storage_force'),
    ({'nvme_storage_mount_options': 'noatime'}, 'nvme_storage_mount_options'),
    ({'nvme_storage_mode': 'lvm'}, 'nvme_storage_lvm_volumes'),
    ({'nvme_storage_fstype': 'btrfs'}, 'nvme_storage_fstype'),
])
def test_bad_input_fails_before_any_change(node, overrides, variable):
    blank = node.attach('blank')
    result = node.run(**overrides)
    assert variable in ' '.join(result.failure_messages()), result.describe()
    assert_untouched(node, result, [blank])


def test_lvm_volumes_larger_than_the_volume_group_are_refused(node):
    disks = [node.attach('pv0'), node.attach('pv1')]
    # Two 3 GiB disks hold 2 x 767 extents of 4 MiB: 6 GiB does not fit.
    result = node.run(nvme_storage_mode='lvm', nvme_storage_lvm_vg='nvmetest' + node.test_id,
                      nvme_storage_lvm_volumes=[{'name': 'cache', 'size': '6G'}])
    messages = ' '.join(result.failure_messages())
    assert 'nvme_storage_lvm_volumes' in messages and 'nvmetest' in messages, result.describe()
    assert_untouched(node, result, disks)


def kernel_has_device_mapper():
    with open('/proc/misc') as misc:  # /dev/mapper/control can exist without the driver
        return 'device-mapper' in misc.read()


@pytest.mark.skipif(not kernel_has_device_mapper(),
                    reason='no device-mapper in this kernel: logical volumes cannot be activated')
def test_lvm_mode_mounts_logical_volumes(node):
    vg_name = 'nvmetest' + node.test_id
    node.attach('pv0')
    node.attach('pv1')
    volumes = [{'name': 'cache', 'size': '4G'}, {'name': 'scratch', 'size': '100%FREE'}]
    try:
        result = node.run(nvme_storage_mode='lvm', nvme_storage_lvm_vg=vg_name, nvme_storage_lvm_volumes=volumes)
        assert result.rc == 0, result.describe()
        for volume in volumes:
            fs = probe('/dev/%s/%s' % (vg_name, volume['name']))
            assert fs['TYPE'] == 'xfs'
            assert [m['target'] for m in mounts_of('/dev/%s/%s' % (vg_name, volume['name']))] == [
                '%s/%s' % (node.mount_root, fs['UUID'])]
        again = node.run(nvme_storage_mode='lvm', nvme_storage_lvm_vg=vg_name, nvme_storage_lvm_volumes=volumes)
        assert again.rc == 0 and again.changed == 0, again.describe()
    finally:
        for volume in volumes:
            for mount in mounts_of('/dev/%s/%s' % (vg_name, volume['name'])):
                sh('umount', mount['target'], check=False)
        sh('vgremove', '--force', '--yes', vg_name, check=False)


@pytest.fixture(name='cluster_objects')
def cluster_objects_fixture(kubeconfig, node):
    """The cluster's view, and removal of this test's StorageClass and PersistentVolumes."""
    api = config.new_client_from_config(config_file=kubeconfig)
    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    yield core, storage
    for pv in core.list_persistent_volume().items:
        if pv.spec.storage_class_name == node.class_name:
            core.delete_persistent_volume(pv.metadata.name)
    if any(sc.metadata.name == node.class_name for sc in storage.list_storage_class().items):
        storage.delete_storage_class(node.class_name)
    api.close()


def test_storage_class_and_persistent_volumes_in_the_cluster(node, kubeconfig, cluster_objects):
    core, storage = cluster_objects
    blank = node.attach('blank')
    cluster_vars = {'nvme_storage_manage_kubernetes': True, 'llmscale_kubeconfig': kubeconfig}

    preview = node.run(check=True, **cluster_vars)
    assert preview.rc == 0, preview.describe()
    assert node.class_name not in [sc.metadata.name for sc in storage.list_storage_class().items]

    first = node.run(**cluster_vars)
    assert first.rc == 0, first.describe()
    fs_uuid = probe(blank)['UUID']
    sc = storage.read_storage_class(node.class_name)
    assert (sc.provisioner, sc.volume_binding_mode, sc.reclaim_policy) == (
        'kubernetes.io/no-provisioner', 'WaitForFirstConsumer', 'Retain')
    pv = core.read_persistent_volume('local-nvme-%s-%s' % (node.node_name, fs_uuid))
    assert pv.spec.local.path == '%s/%s' % (node.mount_root, fs_uuid)
    assert pv.spec.storage_class_name == node.class_name
    assert pv.spec.capacity['storage'] in ('3Gi', str(3 * GIB))
    assert pv.spec.persistent_volume_reclaim_policy == 'Retain'
    [term] = pv.spec.node_affinity.required.node_selector_terms
    [expression] = term.match_expressions
    assert (expression.key, expression.operator, expression.values) == (
        'kubernetes.io/hostname', 'In', [node.node_name])

    second = node.run(**cluster_vars)
    assert second.rc == 0 and second.changed == 0, second.describe()

    # A second disk added later gets its own volume; the first one's is kept.
    added = node.attach('added')
    third = node.run(**cluster_vars)
    assert third.rc == 0, third.describe()
    names = {pv.metadata.name for pv in core.list_persistent_volume().items
             if pv.spec.storage_class_name == node.class_name}
    assert names == {'local-nvme-%s-%s' % (node.node_name, fs_uuid),
                     'local-nvme-%s-%s' % (node.node_name, probe(added)['UUID'])}

    # Leaving the allowlist keeps the volume, its mount and its PersistentVolume.
    kept = node.run(nvme_storage_allowlist=[node.by_id('added')], **cluster_vars)
    assert kept.rc == 0 and kept.changed == 0, kept.describe()
    assert core.read_persistent_volume('local-nvme-%s-%s' % (node.node_name, fs_uuid))
    assert mounts_of(blank)
