"""Pure model cache logic: patterns, paths, the plan, the manifest, hashing, space.

Hub entries below are recorded from olah 0.5.4 serving a local repository
(GET /api/models/<org>/<name>/tree/main/?recursive=true).
"""
import hashlib
import json

import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils import model_cache as mc

RECORDED_TREE = json.loads('''[
 {"type":"file","oid":"0187f3b09d66cef7911083ad49f890f5a6589589","size":8,"path":"config.json"},
 {"type":"file","oid":"fc04d1f3ee2bcc91a079ad147d97b4c6ccfc977a","size":3000000,"path":"model.bin",
  "lfs":{"oid":"c5256b8f6352ec724075d34d9ffd878bdc5ddcf7a6a99c1ea003f73bfe86204a","size":3000000,"pointerSize":132}},
 {"type":"directory","oid":"0d8a474fc67971fb3dd7616e26323d3066442555","size":0,"path":"sub"},
 {"type":"file","oid":"45b983be36b73c0788dc9cbcb76cbb80fc7bb057","size":3,"path":"sub/a.txt"}
]''')


def _url(path):
    return 'http://127.0.0.1:1/org/tiny/resolve/c0ffee/' + path


def test_hub_tree_uses_lfs_sha256_and_git_sha1():
    files = mc.hub_tree_to_files(RECORDED_TREE, _url)
    assert [(f['path'], f['algo'], f['size']) for f in files] == [
        ('config.json', 'git-sha1', 8), ('model.bin', 'sha256', 3000000), ('sub/a.txt', 'git-sha1', 3)]
    assert files[1]['digest'] == 'c5256b8f6352ec724075d34d9ffd878bdc5ddcf7a6a99c1ea003f73bfe86204a'
    assert files[2]['url'].endswith('/resolve/c0ffee/sub/a.txt')


def test_git_blob_sha1_matches_git(tmp_path):
    # `git hash-object` of "hi\n" is 45b983be36b73c0788dc9cbcb76cbb80fc7bb057 (the recorded sub/a.txt oid).
    path = tmp_path / 'a.txt'
    path.write_bytes(b'hi\n')
    assert mc.hash_file(str(path), 'git-sha1', 3) == '45b983be36b73c0788dc9cbcb76cbb80fc7bb057'
    assert mc.hash_file(str(path), 'sha256', 3) == hashlib.sha256(b'hi\n').hexdigest()


@pytest.mark.parametrize('path', ['/etc/passwd', '../x', 'a/../../x', 'a//b', '.llmscale/manifest.json', '',
                                  'a\\b', './a'])
def test_unsafe_paths_are_refused(path):
    with pytest.raises(mc.ModelCacheError, match='unsafe'):
        mc.safe_relpath(path)


def test_patterns_follow_huggingface_hub_rules():
    paths = ['config.json', 'model-1.safetensors', 'onnx/model.onnx', 'onnx/sub/x.bin', 'README.md']
    assert mc.filter_paths(paths, ['*.json', 'onnx/']) == ['config.json', 'onnx/model.onnx', 'onnx/sub/x.bin']
    assert mc.filter_paths(paths, None, ['onnx/', '*.md']) == ['config.json', 'model-1.safetensors']
    assert mc.filter_paths(paths) == paths


def test_hub_cache_paths_match_huggingface_hub():
    assert mc.repo_folder_name('org/name') == 'models--org--name'
    assert mc.repo_folder_name('org/name', 'dataset') == 'datasets--org--name'
    assert mc.layout_root('hub_cache', '/c', 'org/name') == '/c/models--org--name'
    assert mc.layout_root('local_dir', '/m', 'org/name') == '/m'
    item = mc.remote_file('sub/dir/w.bin', 5, 'sha256', 'AB' * 32, 'http://x/w.bin')
    assert mc.object_relpath('hub_cache', item) == 'blobs/' + 'ab' * 32
    assert mc.object_relpath('local_dir', item) == 'sub/dir/w.bin'
    assert mc.snapshot_link_target('sub/dir/w.bin', 'ab' * 32) == '../../../../blobs/' + 'ab' * 32
    assert mc.snapshot_link_target('w.bin', 'cd') == '../../blobs/cd'
    staging = mc.staging_relpath(item)
    assert staging.startswith('.llmscale/incomplete/') and staging != mc.staging_relpath(dict(item, path='other'))


def _item(size=10, digest='aa' * 32):
    return mc.remote_file('w.bin', size, 'sha256', digest, 'http://x/w.bin')


def test_plan_trusts_the_manifest_only_when_nothing_changed():
    item = _item()
    manifest = mc.new_manifest()
    assert mc.plan_object(item, 'w.bin', None, manifest, 'quick') == ('download', 'missing')
    assert mc.plan_object(item, 'w.bin', (9, 1), manifest, 'quick')[0] == 'download'
    assert mc.plan_object(item, 'w.bin', (10, 1), manifest, 'quick') == ('hash', 'not verified yet')
    mc.manifest_record(manifest, 'w.bin', item, (10, 1))
    assert mc.plan_object(item, 'w.bin', (10, 1), manifest, 'quick') == ('keep', 'unchanged since verified')
    assert mc.plan_object(item, 'w.bin', (10, 2), manifest, 'quick') == ('hash', 'changed since verified')
    assert mc.plan_object(item, 'w.bin', (10, 1), manifest, 'full') == ('hash', 'full verification')
    # A new revision with other content at the same path is not trusted from the old record.
    assert mc.plan_object(_item(digest='bb' * 32), 'w.bin', (10, 1), manifest, 'quick')[0] == 'hash'


def test_manifest_round_trip_and_foreign_content():
    manifest = mc.new_manifest()
    mc.manifest_record(manifest, 'blobs/x', _item(), (10, 7))
    assert mc.parse_manifest(mc.render_manifest(manifest)) == manifest
    for text in ('not json', '[]', '{"version": 99, "objects": {}}', '{"version": 1}'):
        assert mc.parse_manifest(text) == mc.new_manifest()


def test_url_files_validate_each_entry():
    files = mc.url_files([{'url': 'https://h/a/model.bin?sig=1', 'sha256': 'AA' * 32},
                          {'url': 'http://h/b/model.bin', 'sha256': 'bb' * 32, 'path': 'b/model.bin', 'size': 4}])
    expected = [('model.bin', None, 'aa' * 32), ('b/model.bin', 4, 'bb' * 32)]
    assert [(f['path'], f['size'], f['digest']) for f in files] == expected
    with pytest.raises(mc.ModelCacheError, match=r'files\[0\].sha256'):
        mc.url_files([{'url': 'https://h/x', 'sha256': 'abc'}])
    with pytest.raises(mc.ModelCacheError, match=r'files\[0\].url'):
        mc.url_files([{'url': 'ftp://h/x', 'sha256': 'aa' * 32}])
    with pytest.raises(mc.ModelCacheError, match='same path model.bin'):
        mc.url_files([{'url': 'https://h/a/model.bin', 'sha256': 'aa' * 32},
                      {'url': 'https://h/b/model.bin', 'sha256': 'bb' * 32}])


def test_space_shortfall_names_the_numbers():
    assert mc.space_shortfall(100, 100) is None
    message = mc.space_shortfall(3 * 1024 ** 3, 1024 ** 3, reserve=1024 ** 2)
    assert message == 'not enough free space: 3.0 GiB to download plus a reserve of 1.0 MiB, only 1.0 GiB available'
    assert mc.space_shortfall(101, 100) == 'not enough free space: 101 B to download, only 100 B available'


def test_commit_hash_and_throughput():
    assert mc.is_commit_hash('a' * 40) and not mc.is_commit_hash('main') and not mc.is_commit_hash('A' * 40)
    assert mc.throughput(1000, 2.0) == 500 and mc.throughput(5, 0) == 0
