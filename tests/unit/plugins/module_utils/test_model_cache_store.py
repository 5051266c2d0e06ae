"""CacheSync on a real filesystem, with files copied from a local folder instead of fetched over HTTP.

The network side is exercised against olah in tests/integration/test_model_cache.py;
here the filesystem rules are pinned down: staging then rename, mismatches never
reach a final path, hub-cache links and refs, the manifest making warm runs cheap.
"""
import hashlib
import os
import shutil

import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils import model_cache as mc
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache_store import CacheSync

COMMIT = 'c' * 40


def _source(tmp_path, files):
    """Write files into a source folder; return remote items describing them (sha256 = LFS, else git sha1)."""
    items = []
    for path, data in sorted(files.items()):
        full = tmp_path / 'source' / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        if len(data) >= 100:
            digest, algo = hashlib.sha256(data).hexdigest(), 'sha256'
        else:
            digest, algo = hashlib.sha1(b'blob %d\x00' % len(data) + data).hexdigest(), 'git-sha1'
        items.append(mc.remote_file(path, len(data), algo, digest, str(full)))
    return items


def _copy_fetcher(calls):
    def fetch(item, staging_path):
        calls.append(item['path'])
        shutil.copyfile(item['url'], staging_path)
        size = os.path.getsize(staging_path)
        return {'fetched': size, 'resumed_from': 0, 'size': size,
                'digest': mc.hash_file(staging_path, item['algo'], item['size'])}
    return fetch


FILES = {'config.json': b'{"a": 1}', 'weights/w.bin': b'x' * 1000, 'weights/same.bin': b'x' * 1000}


def test_hub_cache_cold_warm_and_repair(tmp_path):
    items = _source(tmp_path, FILES)
    calls = []
    dest = str(tmp_path / 'hub')

    def sync(verify='quick'):
        return CacheSync('hub_cache', dest, items, _copy_fetcher(calls), repo_id='org/m', commit=COMMIT,
                         revision='main', verify=verify, workers=2)

    cold = sync().run()
    root = os.path.join(dest, 'models--org--m')
    snapshot = os.path.join(root, 'snapshots', COMMIT)
    # Two paths with the same content share one blob, fetched once.
    assert cold['changed'] and len(calls) == 2 and cold['linked'] == 4
    for path, data in FILES.items():
        assert open(os.path.join(snapshot, path), 'rb').read() == data
    assert os.readlink(os.path.join(snapshot, 'weights/w.bin')) == '../../../blobs/' + items[2]['digest']
    assert open(os.path.join(root, 'refs', 'main')).read() == COMMIT
    assert os.listdir(os.path.join(root, '.llmscale', 'incomplete')) == []

    warm = sync().run()
    assert not warm['changed'] and warm['hashed'] == 0 and len(calls) == 2

    blob = os.path.join(root, 'blobs', items[2]['digest'])
    with open(blob, 'r+b') as handle:
        handle.write(b'y')
    repaired = sync().run()
    assert repaired['changed'] and repaired['repaired'] == ['weights/same.bin'] and len(calls) == 3
    assert open(blob, 'rb').read() == FILES['weights/w.bin']

    full = sync('full').run()
    assert not full['changed'] and full['hashed'] == 2


def test_check_mode_writes_nothing(tmp_path):
    items = _source(tmp_path, FILES)
    calls = []
    report = CacheSync('local_dir', str(tmp_path / 'plain'), items, _copy_fetcher(calls)).run(check_mode=True)
    assert report['changed'] and report['bytes_to_download'] == sum(len(d) for d in FILES.values())
    assert calls == [] and not (tmp_path / 'plain').exists()


def test_a_wrong_download_never_reaches_the_final_path(tmp_path):
    items = _source(tmp_path, {'w.bin': b'z' * 500})
    (tmp_path / 'source' / 'w.bin').write_bytes(b'q' * 500)  # the server now sends other bytes
    sync = CacheSync('local_dir', str(tmp_path / 'plain'), items, _copy_fetcher([]))
    with pytest.raises(mc.ModelCacheError, match='w.bin from .* does not match'):
        sync.run()
    assert not (tmp_path / 'plain' / 'w.bin').exists()
    assert os.listdir(tmp_path / 'plain' / '.llmscale' / 'incomplete') == []


def test_space_is_checked_before_fetching(tmp_path):
    items = _source(tmp_path, FILES)
    calls = []
    sync = CacheSync('local_dir', str(tmp_path / 'plain'), items, _copy_fetcher(calls), reserve_bytes=2 ** 62)
    with pytest.raises(mc.ModelCacheError, match='not enough free space.*nothing was downloaded'):
        sync.run()
    assert calls == []
