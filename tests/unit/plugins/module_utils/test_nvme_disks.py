"""nvme_disks selection rules on output recorded on a real machine.

tests/fixtures/lsblk/record.sh attached loop devices in every state the
selector must tell apart (blank, ext4 data, mounted elsewhere, partition
table, too small, formatted and mounted by the role, LVM physical volume)
and recorded lsblk, blkid --probe (also of the root disk /dev/vda) and pvs.
tests/fixtures/disk_contents/record.sh recorded what blkid does not see, read
with the module's own read_samples(): a blank disk, an ext4 whose first MiB
was zeroed, a raw tar stream, a GPT with only its backup header, and an xfs
the role made; plus `dmsetup version` on a kernel without device-mapper.
"""
import base64
import copy
import functools
import json
import os
import zlib

import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils import nvme_disks as nd
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvme_disks_host import COMMANDS

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'fixtures', 'lsblk')
CONTENT_FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'fixtures', 'disk_contents')
GIB = 1024 ** 3
MOUNT_ROOT = '/tmp/nvme-record/fast-disks'
ALL_LOOPS = ['nvme-TEST_LOOP_*']
ROOT_BY_ID = 'virtio-ROOT_DISK'  # the VM's root disk has no by-id link: the tests give it one


def fixture_text(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


@functools.lru_cache(maxsize=None)
def recorded_contents():
    with open(os.path.join(CONTENT_FIXTURES, 'contents.json')) as handle:
        return json.load(handle)


def recorded_samples(name):
    disk = recorded_contents()[name]
    samples = dict((int(offset), zlib.decompress(base64.b64decode(data))) for offset, data in disk['samples'].items())
    return disk['size_bytes'], samples


def recorded_verdict(name):
    return nd.inspect_contents(*recorded_samples(name))


def blank_contents(devices_or_paths):
    """Every device reads as the recorded blank disk does."""
    return dict((path, recorded_verdict('blank')) for path in devices_or_paths)


def recorded_probes():
    probes = {}
    for device, run in json.loads(fixture_text('loops.blkid.json')).items():
        try:
            probes[device] = nd.parse_blkid_export(run['rc'], run['stdout'], run['stderr'])
        except nd.NvmeDisksError as error:
            probes[device] = error
    return probes


@pytest.fixture(name='devices')
def devices_fixture():
    return nd.parse_lsblk(fixture_text('loops.json'))


@pytest.fixture(name='disks')
def disks_fixture(devices):
    links = json.loads(fixture_text('loops.by-id.json'))
    links[ROOT_BY_ID] = '/dev/vda'
    return nd.whole_disks(devices, nd.by_id_index(links))


def loop(name):
    return 'nvme-TEST_LOOP_' + name


def run_classify(disks, allowlist=None, force=(), min_size=GIB, fstab_text=None, lvm_vg=None, probes=None,
                 contents=None, label='llmscale'):
    fstab = nd.parse_fstab(fixture_text('loops.fstab') if fstab_text is None else fstab_text)
    pv_owners = nd.parse_pvs_json(fixture_text('loops.pvs.json'))
    if contents is None:
        contents = blank_contents(disk['path'] for disk in disks)
    result = nd.classify(disks, recorded_probes() if probes is None else probes, allowlist or ALL_LOOPS,
                         list(force), min_size, MOUNT_ROOT, 'xfs', fstab, lvm_vg, pv_owners, contents, label)
    return {disk['by_id'][0]: disk for disk in result['selected'] + result['refused']}


def test_parse_lsblk_reads_sizes_mounts_and_types(devices):
    assert devices['vda']['type'] == 'disk'
    assert devices['vda']['size_bytes'] == 256 * GIB
    assert '/' in devices['vda']['mountpoints']
    assert devices['loop0']['type'] == 'loop'
    assert devices['loop0']['size_bytes'] == 3 * GIB
    assert devices['loop0']['mountpoints'] == []
    assert devices['loop4']['size_bytes'] == 256 * 1024 ** 2
    assert devices['loop2']['mountpoints'] == ['/tmp/nvme-record/elsewhere']
    assert devices['loop0']['read_only'] is False


def test_lsblk_without_udev_reports_no_filesystem(devices):
    # Why the module probes with blkid: the recorded ext4/xfs loops look blank to lsblk here.
    assert devices['loop1']['fstype'] is None
    assert devices['loop5']['fstype'] is None


def test_by_id_names_join_whole_disks(disks):
    by_kname = {disk['kname']: disk for disk in disks}
    assert by_kname['loop0']['by_id'] == [loop('blank')]
    assert by_kname['vda']['by_id'] == [ROOT_BY_ID]
    assert by_kname['zram0']['by_id'] == []


def test_blkid_probe_parsing():
    probes = recorded_probes()
    assert probes['/dev/loop0'] == {}
    assert probes['/dev/loop1']['TYPE'] == 'ext4'
    assert probes['/dev/loop3'] == {'DEVNAME': '/dev/loop3', 'PTTYPE': 'dos'}
    assert probes['/dev/loop6']['VERSION'] == 'LVM2 001'  # escaped space undone
    # blkid exits 2 both for "nothing there" and "could not open": the stderr tells them apart.
    assert isinstance(probes['/dev/vda'], nd.NvmeDisksError)
    assert 'Operation not permitted' in str(probes['/dev/vda'])
    with pytest.raises(nd.NvmeDisksError):
        nd.parse_blkid_export(4, '', 'blkid: usage')


def test_only_allowlisted_disks_are_candidates(disks):
    names = [disk['kname'] for disk in nd.candidates(disks, [loop('blank'), loop('sm*')])]
    assert names == ['loop0', 'loop4']
    assert nd.candidates(disks, ['nvme-OTHER_*']) == []


def test_classify_every_recorded_state(disks):
    result = run_classify(disks)
    assert result[loop('blank')]['status'] == 'blank'
    assert result[loop('ext4data')]['status'] == 'refused'
    assert result[loop('ext4data')]['reasons'] == [nd.REASON_SIGNATURE]
    assert result[loop('ext4data')]['fstype'] == 'ext4'
    assert result[loop('mounted')]['reasons'] == [nd.REASON_MOUNTED, nd.REASON_SIGNATURE]
    assert result[loop('parted')]['reasons'] == [nd.REASON_PARTITION_TABLE]
    assert result[loop('small')]['reasons'] == [nd.REASON_TOO_SMALL]
    assert result[loop('managed')]['status'] == 'managed'
    assert result[loop('pv')]['reasons'] == [nd.REASON_SIGNATURE]
    assert ROOT_BY_ID not in result  # not allowlisted: never even looked at


def test_root_disk_is_refused_even_when_forced(disks):
    result = run_classify(disks, allowlist=[ROOT_BY_ID], force=[ROOT_BY_ID])
    root = result[ROOT_BY_ID]
    assert root['status'] == 'refused'
    assert root['reasons'][:2] == [nd.REASON_SYSTEM, nd.REASON_MOUNTED]
    assert nd.REASON_PROBE_FAILED in root['reasons']


def test_force_overrides_only_what_is_safe_to_override(disks):
    force = [loop('ext4data'), loop('mounted'), loop('parted'), loop('small')]
    result = run_classify(disks, force=force)
    assert result[loop('ext4data')]['status'] == 'forced'
    assert result[loop('ext4data')]['reasons'] == [nd.REASON_SIGNATURE]
    assert result[loop('parted')]['status'] == 'forced'
    assert result[loop('small')]['status'] == 'forced'
    assert result[loop('mounted')]['status'] == 'refused'


def test_managed_disk_listed_in_fstab_but_not_mounted_stays_managed(disks):
    for disk in disks:
        if disk['kname'] == 'loop5':
            disk['descendant_mountpoints'] = disk['mountpoints'] = []
    assert run_classify(disks)[loop('managed')]['status'] == 'managed'
    # Without our fstab line an unmounted xfs disk is someone else's data.
    assert run_classify(disks, fstab_text='')[loop('managed')]['reasons'] == [nd.REASON_SIGNATURE]


def test_managed_needs_the_configured_filesystem(disks):
    result = nd.classify(disks, recorded_probes(), [loop('managed')], [], GIB, MOUNT_ROOT, 'ext4',
                         nd.parse_fstab(fixture_text('loops.fstab')))
    assert result['refused'][0]['reasons'] == [nd.REASON_MOUNTED, nd.REASON_SIGNATURE]


def test_lvm_mode_keeps_physical_volumes_of_its_volume_group(disks):
    assert run_classify(disks, lvm_vg='recordvg')[loop('pv')]['status'] == 'managed'
    assert run_classify(disks, lvm_vg='othervg')[loop('pv')]['status'] == 'refused'
    assert nd.parse_pvs_json(fixture_text('loops.pvs.json')) == {'/dev/loop6': 'recordvg'}


def test_unreadable_disk_is_refused(disks):
    probes = recorded_probes()
    probes['/dev/loop0'] = probes['/dev/vda']
    blank = run_classify(disks, force=[loop('blank')], probes=probes)[loop('blank')]
    assert blank['status'] == 'refused'
    assert blank['reasons'] == [nd.REASON_PROBE_FAILED]


def test_children_are_found_in_nested_output():
    # This kernel cannot show partitions (no partition-table support), so the
    # recorded loops are nested here by hand to exercise the tree walk.
    tree = json.loads(fixture_text('loops.json'))
    roots = {entry['name']: entry for entry in tree['blockdevices']}
    child = copy.deepcopy(roots['loop2'])  # an entry as lsblk writes it, mounted
    child.update(name='loop3p1', kname='loop3p1', path='/dev/loop3p1', pkname='loop3', type='part')
    roots['loop3']['children'] = [child]
    devices = nd.parse_lsblk(json.dumps({'blockdevices': list(roots.values())}))
    assert devices['loop3']['children'] == ['loop3p1']
    assert devices['loop3']['descendant_mountpoints'] == ['/tmp/nvme-record/elsewhere']
    disks = nd.whole_disks(devices, {'/dev/loop3': [loop('parted')]})
    assert [disk['kname'] for disk in disks if disk['by_id']] == ['loop3']  # the partition is no candidate
    result = nd.classify(disks, {'/dev/loop3': {}}, ALL_LOOPS, [loop('parted')], GIB, MOUNT_ROOT, 'xfs',
                         contents=blank_contents(['/dev/loop3']))
    assert result['refused'][0]['reasons'] == [nd.REASON_MOUNTED, nd.REASON_CHILDREN]


def test_allowlist_and_force_consistency(disks):
    assert nd.unmatched_patterns(disks, [loop('blank'), 'nvme-GONE_*']) == ['nvme-GONE_*']
    # force names allowlisted disks only, by exact by-id name or serial.
    assert nd.force_unmatched([loop('blank'), loop('small')], disks, [loop('b*')]) == [loop('small')]
    assert nd.force_unmatched([loop('b*')], disks, [loop('b*')]) == [loop('b*')]
    assert nd.force_patterns([loop('blank'), 'nvme-SAMSUNG_*', 'nvme-disk?', 'nvme-[ab]']) == [
        'nvme-SAMSUNG_*', 'nvme-disk?', 'nvme-[ab]']


def test_force_by_serial(disks):
    for disk in disks:
        if disk['kname'] == 'loop1':
            disk['serial'] = 'S6UENA0W700002'  # loop devices have none: given one as an NVMe disk has
    assert nd.force_unmatched(['S6UENA0W700002'], disks, ALL_LOOPS) == []
    assert run_classify(disks, force=['S6UENA0W700002'])[loop('ext4data')]['status'] == 'forced'
    assert run_classify(disks, force=['S6UENA0W70000'])[loop('ext4data')]['status'] == 'refused'  # exact only


@pytest.mark.parametrize('name', ['ext4_zeroed_start', 'tar_stream', 'gpt_backup_only'])
def test_blkid_sees_nothing_on_disks_holding_data(name):
    # Why blank needs more than blkid: each of these was formatted before.
    blkid = recorded_contents()[name]['blkid']
    assert nd.parse_blkid_export(blkid['rc'], blkid['stdout'], blkid['stderr']) == {}


def test_contents_of_a_blank_disk():
    size, samples = recorded_samples('blank')
    assert sorted(samples) == [offset for offset, _length in nd.sample_regions(size)]
    verdict = nd.inspect_contents(size, samples)
    assert verdict == {'gpt_backup': False, 'nonzero_offsets': [], 'regions': len(samples),
                       'bytes_read': sum(len(data) for data in samples.values())}
    assert nd.content_reasons(verdict) == []


@pytest.mark.parametrize('name, reasons', [
    ('ext4_zeroed_start', [nd.REASON_DATA]),
    ('tar_stream', [nd.REASON_DATA]),
    ('gpt_backup_only', [nd.REASON_GPT_BACKUP, nd.REASON_DATA]),
])
def test_contents_holding_data_are_refused(name, reasons):
    verdict = recorded_verdict(name)
    assert nd.content_reasons(verdict) == reasons
    if name == 'ext4_zeroed_start':  # zeros where it was wiped, the backup superblock at 128 MiB found
        assert 0 not in verdict['nonzero_offsets'] and 128 * 1024 ** 2 in verdict['nonzero_offsets']
    if name == 'tar_stream':
        assert verdict['nonzero_offsets'] == [0]


def test_classify_refuses_what_blkid_missed(disks):
    contents = blank_contents(disk['path'] for disk in disks)
    contents['/dev/loop0'] = recorded_verdict('gpt_backup_only')
    blank = run_classify(disks, contents=contents)[loop('blank')]
    assert (blank['status'], blank['reasons']) == ('refused', [nd.REASON_GPT_BACKUP, nd.REASON_DATA])
    assert blank['contents']['gpt_backup'] is True
    # Named exactly for wiping, it may be formatted.
    assert run_classify(disks, contents=contents, force=[loop('blank')])[loop('blank')]['status'] == 'forced'
    # A disk whose contents could not be read is never blank, and force does not change that.
    contents['/dev/loop0'] = nd.NvmeDisksError('reading /dev/loop0 failed: [Errno 5] Input/output error')
    unread = run_classify(disks, contents=contents, force=[loop('blank')])[loop('blank')]
    assert (unread['status'], unread['reasons']) == ('refused', [nd.REASON_UNREADABLE])
    # Contents never read count as unreadable too: blank is proven, not assumed.
    assert run_classify(disks, contents={})[loop('blank')]['reasons'] == [nd.REASON_UNREADABLE]


def test_only_disks_blkid_found_nothing_on_are_read(disks):
    probes = recorded_probes()
    by_path = dict((disk['path'], disk) for disk in disks)
    assert nd.needs_contents(by_path['/dev/loop0'], probes['/dev/loop0'])
    assert not nd.needs_contents(by_path['/dev/loop1'], probes['/dev/loop1'])  # ext4: refused already
    assert not nd.needs_contents(by_path['/dev/vda'], probes['/dev/vda'])  # blkid failed: refused already


def test_role_filesystem_is_recognised_by_its_label(disks):
    # Interrupted between mkfs and mount: not mounted, no fstab line, but labelled by the role.
    role_xfs = recorded_contents()['role_xfs']['blkid']
    probes = recorded_probes()
    probes['/dev/loop5'] = nd.parse_blkid_export(role_xfs['rc'], role_xfs['stdout'], role_xfs['stderr'])
    for disk in disks:
        if disk['kname'] == 'loop5':
            disk['descendant_mountpoints'] = disk['mountpoints'] = []
    assert run_classify(disks, probes=probes, fstab_text='')[loop('managed')]['status'] == 'managed'
    # Someone else's label, or the role's filesystem mounted somewhere else: not ours to touch.
    assert run_classify(disks, probes=probes, fstab_text='', label='other')[loop('managed')]['status'] == 'refused'
    for disk in disks:
        if disk['kname'] == 'loop5':
            disk['descendant_mountpoints'] = ['/srv/elsewhere']
    assert run_classify(disks, probes=probes, fstab_text='')[loop('managed')]['reasons'] == [
        nd.REASON_MOUNTED, nd.REASON_SIGNATURE]


def test_sample_regions_cover_the_edges_and_stay_bounded():
    tib4 = 3840755982336  # a 3.84 TB NVMe disk
    regions = nd.sample_regions(tib4)
    assert regions[0] == (0, nd.EDGE_BYTES) and regions[-1] == (tib4 - nd.EDGE_BYTES, nd.EDGE_BYTES)
    assert (128 * 1024 ** 2, nd.SAMPLE_BYTES) in regions  # ext4 group 1 backup superblock
    assert sum(length for _offset, length in regions) <= 2 * nd.EDGE_BYTES + (
        nd.MAX_SPREAD_SAMPLES + 64) * nd.SAMPLE_BYTES
    assert all(a[0] + a[1] <= b[0] for a, b in zip(regions, regions[1:]))  # sorted, no overlap
    assert nd.sample_regions(512 * 1024) == [(0, 512 * 1024)]  # a tiny device is read whole
    huge = nd.sample_regions(64 * 1024 ** 4)
    assert len(huge) <= nd.MAX_SPREAD_SAMPLES + 64


def test_device_mapper_from_dmsetup_version():
    run = recorded_contents()['_dmsetup_version']  # this kernel has none
    assert nd.parse_dmsetup_version(run['rc'], run['stdout'], run['stderr']) is False


@pytest.mark.parametrize('text, expected', [
    ('512M', 512 * 1024 ** 2), ('2g', 2 * GIB), ('3T', 3 * 1024 ** 4), (4096, 4096), (' 100G ', 100 * GIB)])
def test_parse_size(text, expected):
    assert nd.parse_size(text) == expected


@pytest.mark.parametrize('text', ['', 'ten', '5X', '-1G', '100%FREE', '1.5T', '10GiB', '100 G'])
def test_parse_size_rejects(text):
    with pytest.raises(nd.NvmeDisksError):
        nd.parse_size(text)


def test_pv_capacity_matches_what_lvm_recorded():
    recorded = json.loads(fixture_text('loops.pvs.json'))['report'][0]['pv'][0]
    assert nd.pv_usable_bytes(3 * GIB) == int(recorded['pv_size'])


def test_plan_lvm():
    two_disks = [3 * GIB, 3 * GIB]
    fits = nd.plan_lvm(two_disks, [{'name': 'cache', 'size': '4G'}, {'name': 'scratch', 'size': '1G'}])
    assert fits['fits'] and fits['capacity_bytes'] == 2 * 767 * 4 * 1024 ** 2
    # 6 GiB of disks hold less than 6 GiB of extents: LVM keeps 1 MiB per disk plus rounding.
    too_big = nd.plan_lvm(two_disks, [{'name': 'cache', 'size': '6G'}])
    assert not too_big['fits'] and 'need %d bytes' % (6 * GIB) in too_big['errors'][0]
    assert nd.plan_lvm(two_disks, [{'name': 'a', 'size': '60%VG'}, {'name': 'b', 'size': '50%VG'}])['fits'] is False
    assert nd.plan_lvm(two_disks, [{'name': 'a', 'size': '50%VG'}, {'name': 'b', 'size': '100%FREE'}])['fits'] is True
    assert nd.plan_lvm(two_disks, [{'name': 'a', 'size': '0%FREE'}])['fits'] is False
    assert nd.plan_lvm([], [{'name': 'a', 'size': '1G'}])['fits'] is False


def test_parse_fstab():
    entries = nd.parse_fstab('# comment\nUUID=abc /mnt/a\\040b xfs noatime,nofail 0 2\n\n/dev/x none swap sw 0 0 # tail\n')
    assert entries == [{'src': 'UUID=abc', 'path': '/mnt/a b', 'fstype': 'xfs', 'opts': 'noatime,nofail'},
                       {'src': '/dev/x', 'path': 'none', 'fstype': 'swap', 'opts': 'sw'}]


def test_garbage_output_fails_loudly():
    with pytest.raises(nd.NvmeDisksError):
        nd.parse_lsblk('lsblk: unknown column')
    with pytest.raises(nd.NvmeDisksError):
        nd.parse_lsblk('{"blockdevices": [{"name": "sda", "size": "1.8T"}]}')
    with pytest.raises(nd.NvmeDisksError):
        nd.parse_pvs_json('')


def test_describe_volume(devices):
    volume = nd.describe_volume(devices['loop5'], recorded_probes()['/dev/loop5'])
    assert volume['fstype'] == 'xfs'
    assert volume['mountpoints'] == [MOUNT_ROOT + '/' + volume['uuid']]
    assert volume['size_bytes'] == 3 * GIB


def test_lsblk_command_asks_for_every_parsed_column():
    cmd = COMMANDS['lsblk'].argv('lsblk')
    assert '--bytes' in cmd and '--json' in cmd
    assert set(cmd[-1].split(',')) == set(nd.LSBLK_COLUMNS)
    # The fixture was recorded with exactly the command the module runs.
    assert fixture_text('loops.command.txt').splitlines()[0] == 'command: ' + ' '.join(cmd)
