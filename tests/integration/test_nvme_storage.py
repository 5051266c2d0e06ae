"""The nvme_storage role on real block devices: loop devices over sparse files.

Each test attaches its own loop devices and points the role at a directory of
by-id-like links to them (nvme-TEST_LOOP_<test id>_<label>); the machine's
real disks are never in that directory, so they can never be selected. mkfs,
mount, fstab (a scratch file: /etc/fstab is never touched) and, with the
`kubeconfig` fixture, the StorageClass and PersistentVolumes are all real.
Finalizers unmount, detach and delete whatever a test made, pass or fail.
"""
import os
import sys
import uuid

import pytest
from kubernetes import client, config

from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error
from loop_devices import NEEDS, LoopDevices, have_loop_devices, mounts_of, probe, sh, sha256_of  # pylint: disable=import-error

# As tests/unit/conftest.py does: the device-mapper rule comes from the module's own code.
sys.path.insert(0, os.path.join(REPO_ROOT, '.collections'))
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvme_disks import (  # noqa: E402  pylint: disable=wrong-import-position
    parse_dmsetup_version)

GIB = 1024 ** 3
MIB = 1024 ** 2
MIN_SIZE = GIB  # loop devices are small: sparse files of 1 to 3 GiB
LABEL = 'llmscale'  # the role's mkfs label
PLAYBOOK = """---
- name: Apply the nvme_storage role
  hosts: all
  gather_facts: false
  roles:
    - role: llmscale.gpu_serving.nvme_storage
"""

pytestmark = pytest.mark.skipif(not have_loop_devices(), reason=NEEDS)


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
        self.loops = LoopDevices(tmp_path)
        self.devices = self.loops.devices
        self.playbook = tmp_path / 'nvme_storage.yml'
        self.playbook.write_text(PLAYBOOK)
        self.node_name = 'nvme-test-' + self.test_id
        self.class_name = 'local-nvme-test-' + self.test_id

    def by_id(self, label):
        return 'nvme-TEST_LOOP_%s_%s' % (self.test_id, label)

    def attach(self, label, size=3 * GIB):
        device = self.loops.attach(label, size)
        os.symlink(device, self.by_id_dir / self.by_id(label))
        return device

    def role_vars(self, **overrides):
        values = {
            'nvme_storage_allowlist': [self.by_id('*')],
            'nvme_storage_by_id_dir': str(self.by_id_dir),
            'nvme_storage_min_size_bytes': MIN_SIZE,
            'nvme_storage_mount_root': self.mount_root,
            'nvme_storage_fstab': str(self.fstab),
            'llmscale_node_name': self.node_name,
            'nvme_storage_class_name': self.class_name,
            'nvme_storage_manage_kubernetes': False,
        }
        values.update(overrides)
        return values

    def run(self, check=False, diff=False, **overrides):
        return run_playbook(str(self.playbook), extra_vars=self.role_vars(**overrides), check=check, diff=diff)

    def cleanup(self):
        self.loops.cleanup()


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
    assert (fs['TYPE'], fs['LABEL']) == ('xfs', LABEL)
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
    # A typo the kernel refuses, found on a scratch filesystem before anything is formatted.
    ({'nvme_storage_mount_options': 'noatime,nofail,noatiem'}, 'nvme_storage_mount_options'),
    ({'nvme_storage_force': ['nvme-TEST_LOOP_*']}, 'nvme_storage_force'),  # forcing names a disk, not a pattern
    ({'nvme_storage_mkfs_options': '-L mine'}, 'nvme_storage_mkfs_options'),
    ({'nvme_storage_mode': 'lvm'}, 'nvme_storage_lvm_volumes'),
    ({'nvme_storage_fstype': 'btrfs'}, 'nvme_storage_fstype'),
])
def test_bad_input_fails_before_any_change(node, overrides, variable):
    blank = node.attach('blank')
    result = node.run(**overrides)
    assert variable in ' '.join(result.failure_messages()), result.describe()
    assert_untouched(node, result, [blank])


def zero_first_mib(device):
    sh('dd', 'if=/dev/zero', 'of=' + device, 'bs=1M', 'count=1', 'conv=notrunc,fsync', 'status=none')


def ext4_with_its_first_mib_zeroed(device, tmp_path):
    put_marker(device, tmp_path)
    zero_first_mib(device)


def raw_tar_stream(device, tmp_path):
    payload = tmp_path / 'payload'
    payload.mkdir()
    (payload / 'notes.txt').write_text('keep me\n' * 10000)
    sh('tar', '-C', str(payload), '-cf', device, 'notes.txt')


def gpt_with_only_its_backup_header(device, _tmp_path):
    sh('sfdisk', '--quiet', device, stdin='label: gpt\n,,L\n')  # one Linux partition over the disk
    zero_first_mib(device)  # protective MBR and primary header gone; the backup at the end is valid


def write_at(device, offset, data):
    with open(device, 'r+b') as handle:
        handle.seek(offset)
        handle.write(data)
        os.fsync(handle.fileno())


def read_at(device, offset, length):
    with open(device, 'rb') as handle:
        handle.seek(offset)
        return handle.read(length)


@pytest.mark.parametrize('make, reason', [
    (ext4_with_its_first_mib_zeroed, 'holds data (non-zero bytes where a blank disk reads zeros)'),
    (raw_tar_stream, 'holds data (non-zero bytes where a blank disk reads zeros)'),
    (gpt_with_only_its_backup_header, 'has a GPT backup header at its end'),
], ids=['ext4-first-mib-zeroed', 'tar-stream', 'gpt-backup-only'])
def test_data_blkid_cannot_see_is_refused_and_left_byte_for_byte(node, tmp_path, make, reason):
    disk = node.attach('data', GIB)
    make(disk, tmp_path)
    assert probe(disk) == {}  # no signature: "blank" by blkid alone, as it was before
    before = sha256_of(disk)

    failed = node.run(nvme_storage_on_refused='fail')
    assert failed.rc != 0 and failed.changed == 0, failed.describe()
    assert 'nvme_storage_on_refused' in ' '.join(failed.failure_messages())
    [discovery] = failed.results_of('Discover the disks and pick the allowlisted ones')
    [refused] = discovery['refused']
    assert refused['path'] == disk and reason in refused['reasons'], refused

    skipped = node.run(check=True)  # the default: warn and leave the disk alone
    assert skipped.rc == 0, skipped.describe()
    skipped = node.run()
    assert skipped.rc == 0, skipped.describe()
    [discovery] = skipped.results_of('Discover the disks and pick the allowlisted ones')
    assert any(node.by_id('data') in warning and reason in warning for warning in discovery['warnings'])
    assert sha256_of(disk) == before
    assert mounts_of(disk) == [] and node.fstab.read_text() == ''


@pytest.mark.parametrize('fstype', ['xfs', 'ext4'])
def test_forcing_names_the_disk_exactly_and_formats_without_discard(node, tmp_path, fstype):
    disk = node.attach('data', GIB)
    gpt_with_only_its_backup_header(disk, tmp_path)
    # Data well inside the filesystem, away from what mkfs writes: discard would zero it.
    marker_offset, marker = 900 * MIB, os.urandom(MIB)
    write_at(disk, marker_offset, marker)
    before = sha256_of(disk)

    pattern = node.run(nvme_storage_fstype=fstype, nvme_storage_force=[node.by_id('d*')])
    assert pattern.rc != 0 and 'nvme_storage_force' in ' '.join(pattern.failure_messages()), pattern.describe()
    assert sha256_of(disk) == before

    forced = node.run(nvme_storage_fstype=fstype, nvme_storage_force=[node.by_id('data')])
    assert forced.rc == 0, forced.describe()
    fs = probe(disk)
    assert (fs['TYPE'], fs['LABEL']) == (fstype, LABEL)
    assert [m['target'] for m in mounts_of(disk)] == ['%s/%s' % (node.mount_root, fs['UUID'])]
    assert read_at(disk, marker_offset, MIB) == marker  # not discarded: a mistake stays recoverable
    assert read_at(disk, GIB - 512, 8) != b'EFI PART'  # mkfs zeroed the end: no stale GPT to "restore"


def test_interrupted_preparation_completes_on_the_next_run(node):
    blank = node.attach('blank', GIB)
    # A file where the mount root goes: the run stops after mkfs, before the mount and the fstab line.
    with open(node.mount_root, 'w'):
        pass
    broken = node.run()
    assert broken.rc != 0, broken.describe()
    fs = probe(blank)
    assert (fs['TYPE'], fs['LABEL']) == ('xfs', LABEL)
    assert mounts_of(blank) == [] and node.fstab.read_text() == ''

    os.unlink(node.mount_root)
    resumed = node.run()
    assert resumed.rc == 0 and resumed.changed > 0, resumed.describe()
    [discovery] = resumed.results_of('Discover the disks and pick the allowlisted ones')
    assert [(d['path'], d['status']) for d in discovery['selected']] == [(blank, 'managed')]
    assert discovery['refused'] == [] and not discovery.get('warnings')
    assert probe(blank)['UUID'] == fs['UUID']  # the same filesystem, not a new one
    mount_path = '%s/%s' % (node.mount_root, fs['UUID'])
    assert [m['target'] for m in mounts_of(blank)] == [mount_path]
    assert node.fstab.read_text().split()[:3] == ['UUID=' + fs['UUID'], mount_path, 'xfs']
    again = node.run()
    assert again.rc == 0 and again.changed == 0, again.describe()


def test_lvm_volumes_larger_than_the_volume_group_are_refused(node):
    disks = [node.attach('pv0'), node.attach('pv1')]
    # Two 3 GiB disks hold 2 x 767 extents of 4 MiB: 6 GiB does not fit.
    result = node.run(nvme_storage_mode='lvm', nvme_storage_lvm_vg='nvmetest' + node.test_id,
                      nvme_storage_lvm_volumes=[{'name': 'cache', 'size': '6G'}])
    messages = ' '.join(result.failure_messages())
    assert 'nvme_storage_lvm_volumes' in messages and 'nvmetest' in messages, result.describe()
    assert_untouched(node, result, disks)


def kernel_has_device_mapper():
    """The module's own rule: `dmsetup version` reaches the kernel driver."""
    proc = sh('dmsetup', 'version', check=False)
    return parse_dmsetup_version(proc.returncode, proc.stdout, proc.stderr)


def volume_groups():
    return sh('vgs', '--noheadings', '-o', 'vg_name').stdout.split()


NO_DEVICE_MAPPER = (
    'no device-mapper in this kernel (dmsetup version cannot reach the driver): logical volumes cannot be '
    'activated, so LVM check mode on a fresh host, lvcreate, mkfs and mount of logical volumes and their '
    'idempotence are not verified here; test_lvm_without_device_mapper_changes_nothing covers this kernel')


@pytest.mark.skipif(not kernel_has_device_mapper(), reason=NO_DEVICE_MAPPER)
def test_lvm_check_mode_on_a_fresh_host_then_mounts_logical_volumes(node):
    vg_name = 'nvmetest' + node.test_id
    node.attach('pv0')
    node.attach('pv1')
    volumes = [{'name': 'cache', 'size': '4G'}, {'name': 'scratch', 'size': '100%FREE'}]
    lvm = {'nvme_storage_mode': 'lvm', 'nvme_storage_lvm_vg': vg_name, 'nvme_storage_lvm_volumes': volumes}
    try:
        # The volume group does not exist yet: check mode reports the changes and makes none.
        preview = node.run(check=True, **lvm)
        assert preview.rc == 0 and preview.changed > 0, preview.describe()
        assert vg_name not in volume_groups()
        assert all(probe(device) == {} for device in node.devices.values())
        result = node.run(**lvm)
        assert result.rc == 0, result.describe()
        for volume in volumes:
            fs = probe('/dev/%s/%s' % (vg_name, volume['name']))
            assert (fs['TYPE'], fs['LABEL']) == ('xfs', LABEL)
            assert [m['target'] for m in mounts_of('/dev/%s/%s' % (vg_name, volume['name']))] == [
                '%s/%s' % (node.mount_root, fs['UUID'])]
        again = node.run(**lvm)
        assert again.rc == 0 and again.changed == 0, again.describe()
        assert node.run(check=True, **lvm).changed == 0
    finally:
        for volume in volumes:
            for mount in mounts_of('/dev/%s/%s' % (vg_name, volume['name'])):
                sh('umount', mount['target'], check=False)
        sh('vgremove', '--force', '--yes', vg_name, check=False)


@pytest.mark.skipif(kernel_has_device_mapper(), reason='this kernel has device-mapper: the LVM test above runs instead')
def test_lvm_without_device_mapper_changes_nothing(node):
    """What this kernel lets us verify of LVM mode: it is refused before any change, check mode included,
    and a volume group a failed run left behind is taken as the role's own (resumed, never refused)."""
    vg_name = 'nvmetest' + node.test_id
    disks = [node.attach('pv0', GIB), node.attach('pv1', GIB)]
    before = [sha256_of(device) for device in disks]
    lvm = {'nvme_storage_mode': 'lvm', 'nvme_storage_lvm_vg': vg_name,
           'nvme_storage_lvm_volumes': [{'name': 'cache', 'size': '1G'}]}
    for check in (True, False):
        result = node.run(check=check, **lvm)
        assert result.rc != 0 and result.changed == 0, result.describe()
        assert 'device-mapper' in ' '.join(result.failure_messages()), result.describe()
    assert vg_name not in volume_groups()
    assert [sha256_of(device) for device in disks] == before
    assert node.fstab.read_text() == ''
    # vgcreate needs no device-mapper: a group as a run that failed at lvcreate would leave it.
    sh('vgcreate', '--yes', vg_name, *disks)
    try:
        result = node.run(**lvm)
        [discovery] = result.results_of('Discover the disks and pick the allowlisted ones')
        assert discovery['lvm']['vg_exists'] is True and discovery['refused'] == [], discovery
        assert [disk['status'] for disk in discovery['selected']] == ['managed', 'managed']
        assert 'device-mapper' in ' '.join(result.failure_messages()), result.describe()
    finally:
        sh('vgremove', '--force', '--yes', vg_name, check=False)
        for device in disks:
            sh('pvremove', '--yes', device, check=False)


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
