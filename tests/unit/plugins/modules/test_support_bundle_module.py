"""The real support_bundle and diagnose modules, run by ansible: no Secret value or token reaches a file."""
import base64
import json
import tarfile

from helpers import run_module

TOKEN = 'hf_TestTokenValue0123456789abcdef'
API_KEY = 'sk-serving-key-42424242'


def secret():
    return {'apiVersion': 'v1', 'kind': 'Secret',
            'metadata': {'name': 'vllm-hf-token', 'namespace': 'llm-serving',
                         'annotations': {'kubectl.kubernetes.io/last-applied-configuration': json.dumps(
                             {'stringData': {'HF_TOKEN': TOKEN}})}},
            'type': 'Opaque', 'data': {'HF_TOKEN': base64.b64encode(TOKEN.encode()).decode()}}


def pod():
    return {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'vllm-server-0', 'namespace': 'llm-serving'},
            'spec': {'containers': [{'name': 'vllm', 'env': [
                {'name': 'VLLM_API_KEY', 'value': API_KEY}, {'name': 'HF_HOME', 'value': '/models/huggingface'}]}]}}


def read_tarball(path):
    with tarfile.open(path) as archive:
        return dict((member.name, archive.extractfile(member).read().decode()) for member in archive.getmembers())


def test_bundle_holds_names_and_keys_but_no_secret_value(tmp_path):
    dest = tmp_path / 'bundle' / 'llmscale-support-test.tar.gz'
    rc, result = run_module('llmscale.gpu_serving.support_bundle', {
        'objects': {'Secret': [secret()], 'Pod': [pod()]},
        'logs': {'vllm-server-0': {'vllm': {'current': 'INFO using token %s\n' % TOKEN, 'previous': 'exit 1\n'}}},
        'node_captures': {'gpu-node-0': {'nvidia_smi_xml': '<nvidia_smi_log/>', 'xid_lines': ['NVRM: Xid (PCI:0000:00:06): 79']}},
        'variables': {'vllm_hf_token': TOKEN, 'vllm_hf_token_secret_name': 'vllm-hf-token', 'vllm_name': 'vllm-server'},
        'extra_files': {'diagnose.md': '# Diagnose\n'},
        'collection_version': '0.1.0', 'dest': str(dest)})
    assert rc == 0, result
    files = read_tarball(result['dest'])
    root = 'llmscale-support-test/'
    assert set(files) == set(root + name for name in (
        'objects/Secret/llm-serving/vllm-hf-token.yaml', 'objects/Pod/llm-serving/vllm-server-0.yaml',
        'logs/vllm-server-0/vllm.current.log', 'logs/vllm-server-0/vllm.previous.log',
        'nodes/gpu-node-0/nvidia-smi-q.xml', 'nodes/gpu-node-0/xid.log', 'variables.yaml', 'VERSION', 'diagnose.md'))
    everything = ''.join(files.values())
    encoded = base64.b64encode(TOKEN.encode()).decode()
    for value in (TOKEN, encoded, API_KEY):
        assert value not in everything
    saved_secret = json.loads(files[root + 'objects/Secret/llm-serving/vllm-hf-token.yaml'])
    assert saved_secret['data'] == {'HF_TOKEN': '<redacted>'}
    assert saved_secret['metadata']['name'] == 'vllm-hf-token'
    variables = json.loads(files[root + 'variables.yaml'])
    assert variables == {'vllm_hf_token': '<redacted>', 'vllm_hf_token_secret_name': 'vllm-hf-token',
                         'vllm_name': 'vllm-server'}
    assert files[root + 'logs/vllm-server-0/vllm.current.log'] == 'INFO using token <redacted>\n'
    assert files[root + 'VERSION'] == 'llmscale.gpu_serving 0.1.0\n'


def test_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / 'llmscale-support-check.tar.gz'
    rc, result = run_module('llmscale.gpu_serving.support_bundle', {
        'objects': {'Secret': [secret()]}, 'collection_version': '0.1.0', 'dest': str(dest)}, check=True)
    assert rc == 0, result
    assert result['members'] == ['llmscale-support-check/VERSION', 'llmscale-support-check/objects/Secret/llm-serving/vllm-hf-token.yaml',
                                 'llmscale-support-check/variables.yaml']
    assert not dest.exists()


def test_diagnose_module_writes_three_reports(tmp_path):
    rc, result = run_module('llmscale.gpu_serving.diagnose', {
        'facts': {'workload': None, 'pods': []},
        'settings': {'vllm_namespace': 'llm-serving', 'vllm_name': 'vllm-server', 'vllm_served_model_name': 'm'},
        'report_dir': str(tmp_path / 'report'), 'generated_at': '2026-12-01T16:00:00Z'}, check=True)
    assert rc == 0, result
    assert result['changed'] is False
    assert [item['id'] for item in result['findings']] == ['workload_missing']
    assert result['lines'] == ['CRITICAL workload_missing StatefulSet/llm-serving/vllm-server: '
                               'no StatefulSet or Deployment of that name']
    assert sorted(p.name for p in (tmp_path / 'report').iterdir()) == ['diagnose.html', 'diagnose.json', 'diagnose.md']
    assert json.loads((tmp_path / 'report' / 'diagnose.json').read_text())['findings'] == result['findings']
