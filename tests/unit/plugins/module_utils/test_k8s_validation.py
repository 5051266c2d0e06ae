"""Kubernetes value checks, on the grammars of k8s.io/apimachinery and distribution/reference."""
from decimal import Decimal

import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils import k8s_validation as kv


@pytest.mark.parametrize('text, value', [
    ('8', 8), ('500m', Decimal('0.5')), ('64Gi', 64 * 2 ** 30), ('1.5Gi', 1.5 * 2 ** 30), ('1e3', 1000),
    ('1E-3', Decimal('0.001')), ('100M', 10 ** 8), ('2k', 2000), ('10n', Decimal('1e-8')),
    ('3u', Decimal('3e-6')), ('.5', Decimal('0.5')), ('5.', 5), ('+1Ki', 1024), ('1Ei', 2 ** 60),
    (8, 8), (0.5, Decimal('0.5')),
])
def test_quantities_kubernetes_accepts(text, value):
    assert kv.parse_quantity(text) == Decimal(value)
    assert kv.check_quantity('vllm_memory', text) == []


@pytest.mark.parametrize('text', ['8Gb', '16GB', '8gi', '8 Gi', ' 8Gi', '8K', 'Gi', '1e3.5', '1e', '8Mib',
                                  '--1', '', '1.2.3', '0x10', True, None, [1]])
def test_quantities_kubernetes_refuses(text):
    assert kv.parse_quantity(text) is None
    errors = kv.check_quantity('vllm_shm_size', text)
    assert len(errors) == 1 and errors[0].startswith('vllm_shm_size: ')


def test_quantity_hints_for_byte_units():
    assert 'did you mean 8Gi, or 8G' in kv.check_quantity('vllm_shm_size', '8Gb')[0]
    assert 'did you mean 16Gi, or 16G' in kv.check_quantity('vllm_shm_size', '16GB')[0]
    assert 'did you mean 8Ki, or 8k' in kv.check_quantity('vllm_memory', '8KB')[0]


def test_quantity_sign_and_minimum():
    assert 'zero or more' in kv.check_quantity('vllm_cpu', '-1')[0]
    assert 'positive' in kv.check_quantity('vllm_cpu', '0', allow_zero=False)[0]
    assert 'less than 1Gi' in kv.check_quantity('vllm_shm_size', '512Mi', minimum='1Gi')[0]
    assert kv.check_quantity('vllm_shm_size', '1024Mi', minimum='1Gi') == []


@pytest.mark.parametrize('name, kind, ok', [
    ('llm-inference', 'Namespace', True),
    ('LLM_Inference', 'Namespace', False),
    ('a' * 63, 'Namespace', True),
    ('a' * 64, 'Namespace', False),
    ('llm.inference', 'Namespace', False),    # a label has no dots
    ('llm.inference', 'Deployment', True),    # a subdomain does
    ('1vllm', 'Service', False),              # DNS-1035: a letter first
    ('1vllm', 'Deployment', True),
    ('vllm-', 'Deployment', False),
    ('vllm.', 'PersistentVolumeClaim', False),
    ('a' * 254, 'ConfigMap', False),
    ('vllm.a', 'StatefulSet', False),         # a label, no dots
    ('a' * 52, 'StatefulSet', True),
    ('a' * 53, 'StatefulSet', False),         # controller-revision-hash would pass 63
])
def test_object_names_follow_their_kind(name, kind, ok):
    errors = kv.check_object_name('vllm_name', name, kind)
    assert (errors == []) is ok, errors


def test_name_error_names_the_variable_and_suggests():
    errors = kv.check_object_name('vllm_namespace', 'LLM_Inference', 'Namespace')
    assert errors == ["vllm_namespace: 'LLM_Inference' is not a DNS-1123 label: at most 63 lowercase letters, "
                      "digits and \"-\", starting and ending with a letter or digit (for example 'llm-inference')"]


@pytest.mark.parametrize('key, ok', [
    ('app', True), ('app.kubernetes.io/name', True), ('nvidia.com/gpu.product', True),
    ('a/b/c', False), ('/app', False), ('Example.com/x', False), ('x' * 64, False), ('-app', False),
    ('app_name.v1', True),
])
def test_label_keys(key, ok):
    assert (kv.check_label_key('autoscaling_labels', key) == []) is ok


@pytest.mark.parametrize('value, ok', [
    ('', True), ('vllm', True), ('NVIDIA-H200', True), ('Qwen/Qwen3-8B', False), ('a' * 64, False),
    ('v1.0_x', True), ('-x', False), (3, False),
])
def test_label_values(value, ok):
    assert (kv.check_label_value('vllm_labels', value) == []) is ok


def test_labels_mapping():
    assert kv.check_labels('vllm_labels', {'team': 'ml', 'bad key': 'x'})[0].startswith('vllm_labels: label key')
    assert kv.check_labels('vllm_labels', ['x']) == ['vllm_labels must be a mapping of label keys to values']


DIGEST = 'sha256:' + 'a' * 64


@pytest.mark.parametrize('reference, parsed', [
    ('vllm/vllm-openai:v0.33.0', (None, 'vllm/vllm-openai', 'v0.33.0', None)),
    ('vllm/vllm-openai', (None, 'vllm/vllm-openai', None, None)),
    ('ubuntu', (None, 'ubuntu', None, None)),
    ('nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.1-ubuntu22.04',
     ('nvcr.io', 'nvidia/k8s/dcgm-exporter', '4.2.3-4.1.1-ubuntu22.04', None)),
    ('localhost:5000/vllm:dev', ('localhost:5000', 'vllm', 'dev', None)),
    ('localhost/vllm', ('localhost', 'vllm', None, None)),
    ('registry.local:5000/a/b:1@' + DIGEST, ('registry.local:5000', 'a/b', '1', DIGEST)),
    ('ghcr.io/org/img@' + DIGEST, ('ghcr.io', 'org/img', None, DIGEST)),
    ('a__b/c---d:_x', (None, 'a__b/c---d', '_x', None)),
    ('[fd00::1]:5000/img:1', ('[fd00::1]:5000', 'img', '1', None)),
])
def test_image_references(reference, parsed):
    result = kv.parse_image(reference)
    assert (result['domain'], result['path'], result['tag'], result['digest']) == parsed
    assert kv.check_image('vllm_image', reference) == []


@pytest.mark.parametrize('reference', [
    'vllm/VLLM-openai:v1', 'vllm/vllm-openai:', 'vllm/vllm-openai:-x', ':tag', 'a//b', 'a/b/', '-a/b',
    'vllm:' + 'x' * 129, 'img@sha256:abc', 'a_/b', 'https://ghcr.io/a/b', 'a/b:1 ', '',
])
def test_image_references_refused(reference):
    errors = kv.check_image('vllm_image', reference)
    assert len(errors) == 1 and errors[0].startswith('vllm_image: ')


def test_image_digest_length_per_algorithm():
    assert 'sha256 digest is 64 lowercase hex digits' in kv.check_image('vllm_image', 'a@sha256:' + 'a' * 32)[0]
    assert 'lowercase' in kv.check_image('vllm_image', 'a@sha256:' + 'A' * 64)[0]
    assert kv.check_image('vllm_image', 'a@sha512:' + 'b' * 128) == []


@pytest.mark.parametrize('cidr, error', [
    ('10.0.0.0/8', None), ('192.168.1.0/24', None), ('fd00::/8', None), ('0.0.0.0/0', None),
    ('10.0.0.1/8', 'host bits set; the network is 10.0.0.0/8'), ('10.0.0.1', 'needs a prefix length'),
    ('10.0.0.0/33', 'is not a CIDR'), ('llm', 'is not a CIDR'), (8, 'is not a CIDR'),
])
def test_cidrs(cidr, error):
    errors = kv.check_cidr('network_policy_allow_cidrs', cidr)
    if error is None:
        assert errors == []
    else:
        assert len(errors) == 1 and error in errors[0] and errors[0].startswith('network_policy_allow_cidrs: ')


def test_cidr_within():
    assert kv.check_cidr('x', '10.1.0.0/16', within='10.0.0.0/8') == []
    assert 'is not inside 10.0.0.0/8' in kv.check_cidr('x', '192.168.0.0/16', within='10.0.0.0/8')[0]
    assert 'is not inside' in kv.check_cidr('x', 'fd00::/16', within='10.0.0.0/8')[0]


@pytest.mark.parametrize('port, ok', [(1, True), (8000, True), (65535, True), ('8000', True), (0, False),
                                      (65536, False), (-1, False), (True, False), ('http', False), (80.0, False)])
def test_ports(port, ok):
    assert (kv.check_port('vllm_port', port) == []) is ok


def test_port_minimum_and_names():
    assert 'between 1024 and 65535' in kv.check_port('vllm_port', 80, minimum=1024)[0]
    assert kv.check_port_name('x', 'http') == []
    assert kv.check_port_name('x', 'metrics-9400') == []
    for bad in ('HTTP', 'a--b', '-http', '1234', 'a' * 16, ''):
        assert kv.check_port_name('x', bad), bad


@pytest.mark.parametrize('host, ok', [
    ('llm.example.org', True), ('*.llm.example.org', True), ('10.0.0.1', False), ('llm.example.org:443', False),
    ('https://llm.example.org', False), ('LLM.example.org', False), ('', False), ('a..b', False),
])
def test_ingress_hosts(host, ok):
    assert (kv.check_ingress_host('vllm_ingress_host', host) == []) is ok
