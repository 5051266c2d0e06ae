"""The network_policy role's policies, as its render task writes them, judged by a real policy engine.

cyclonus (tests/cyclonus.py) computes which connections the rendered NetworkPolicies allow, with Kubernetes'
semantics, without a cluster. Enforcement by a CNI plugin is not tested here (the local cluster has none).
"""
import pytest

from cyclonus import connection, outside, pod, query_traffic  # pylint: disable=import-error
from serving_render import render_cases  # pylint: disable=import-error

NAMESPACE = 'llm-serving'
VLLM = pod(NAMESPACE, {'app.kubernetes.io/name': 'vllm', 'app.kubernetes.io/instance': 'vllm-server'}, '10.1.0.5')
GATEWAY = pod('gateway-system', {'app': 'gateway-proxy'}, '10.1.0.1')
INGRESS_NGINX = pod('ingress-nginx', {'app': 'ingress-nginx'}, '10.1.0.2')
PROMETHEUS = pod('monitoring', {'app.kubernetes.io/name': 'prometheus'}, '10.1.0.3')
OTHER = pod('team-a', {'app': 'client'}, '10.1.0.4')
NEIGHBOUR = pod(NAMESPACE, {'app': 'debug-shell'}, '10.1.0.6')
EPP = pod(NAMESPACE, {'app': 'vllm-server-epp'}, '10.1.0.7')
DNS = pod('kube-system', {'k8s-app': 'kube-dns'}, '10.96.0.10')
METADATA = outside('169.254.169.254')
INTERNET = outside('18.160.10.20')

# (name, connection, allowed by default, allowed with a pre-warmed cache)
MATRIX = [
    ('gateway -> vLLM', connection(GATEWAY, VLLM, 8000), True, True),
    ('gateway -> vLLM, another port', connection(GATEWAY, VLLM, 22), False, False),
    ('Prometheus -> vLLM /metrics port', connection(PROMETHEUS, VLLM, 8000), True, True),
    ('other namespace -> vLLM', connection(OTHER, VLLM, 8000), False, False),
    ('ingress-nginx -> vLLM (route kind gateway)', connection(INGRESS_NGINX, VLLM, 8000), False, False),
    ('same namespace, other pod -> vLLM', connection(NEIGHBOUR, VLLM, 8000), False, False),
    ('vLLM -> DNS (UDP)', connection(VLLM, DNS, 53, 'UDP'), True, True),
    ('vLLM -> DNS (TCP)', connection(VLLM, DNS, 53), True, True),
    ('vLLM -> metadata endpoint 80', connection(VLLM, METADATA, 80), False, False),
    ('vLLM -> metadata endpoint 443', connection(VLLM, METADATA, 443), False, False),
    ('vLLM -> internet 443', connection(VLLM, INTERNET, 443), True, False),
    ('vLLM -> internet 80', connection(VLLM, INTERNET, 80), False, False),
    ('vLLM -> other namespace', connection(VLLM, OTHER, 8000), False, False),
]


def _policies(facts):
    return [obj for obj in facts['__network_policy_plan']['objects'] if obj['kind'] == 'NetworkPolicy']


@pytest.fixture(scope='module')
def rendered():
    """The role's policies: {case: [NetworkPolicy]}, from the vllm role's variables as serving.yml passes them."""
    cases = {
        'default': {},
        'prewarmed': {'vllm_model_cache_prewarmed': True},
        'ingress': {'vllm_route_kind': 'ingress'},
        'ambient': {'llmscale_mesh': 'istio', 'llmscale_mesh_mode': 'ambient'},
        'sidecar': {'llmscale_mesh': 'istio', 'llmscale_mesh_mode': 'sidecar'},
        'endpoint-picker': {'vllm_inference_pool_enabled': True,
                            'network_policy_endpoint_picker_pod_labels': {'app': 'vllm-server-epp'}},
    }
    results = render_cases('network_policy', [dict({'vllm_namespace': NAMESPACE}, **case) for case in cases.values()],
                           ['__network_policy_plan'])
    return dict(zip(cases, (_policies(facts) for facts in results)))


def _verdicts(policies, connections, tmp_path):
    return query_traffic(policies, connections, str(tmp_path))


@pytest.mark.parametrize('cache', ['default', 'prewarmed'])
def test_the_matrix_of_the_default_policies(rendered, cache, tmp_path):
    verdicts = _verdicts(rendered[cache], [entry[1] for entry in MATRIX], tmp_path)
    expected = [entry[2] if cache == 'default' else entry[3] for entry in MATRIX]
    assert dict(zip([entry[0] for entry in MATRIX], verdicts)) == dict(zip([entry[0] for entry in MATRIX], expected))


def test_with_an_ingress_the_controller_is_admitted_instead_of_the_gateway(rendered, tmp_path):
    verdicts = _verdicts(rendered['ingress'], [connection(INGRESS_NGINX, VLLM, 8000), connection(GATEWAY, VLLM, 8000)],
                         tmp_path)
    assert verdicts == [True, False]


def test_the_mesh_data_plane_ports(rendered, tmp_path):
    connections = [connection(GATEWAY, VLLM, 15008), connection(OTHER, VLLM, 15008),
                   connection(PROMETHEUS, VLLM, 15020), connection(PROMETHEUS, VLLM, 15090),
                   connection(VLLM, pod('istio-system', {'app': 'istiod'}, '10.1.0.9'), 15012)]
    # Ambient: ztunnel's HBONE port for the route's clients only; no sidecar ports, no istiod egress from the pod.
    assert _verdicts(rendered['ambient'], connections, tmp_path) == [True, False, False, False, False]
    # Sidecar: the sidecar's metrics for Prometheus and its configuration from istiod; no HBONE.
    assert _verdicts(rendered['sidecar'], connections, tmp_path) == [False, False, True, True, True]


def test_the_endpoint_picker_reads_vllm_and_answers_the_gateway_only(rendered, tmp_path):
    connections = [connection(EPP, VLLM, 8000), connection(GATEWAY, EPP, 9002), connection(OTHER, EPP, 9002),
                   connection(EPP, INTERNET, 443), connection(NEIGHBOUR, VLLM, 8000)]
    # The download exception is vLLM's alone.
    assert _verdicts(rendered['endpoint-picker'], connections, tmp_path) == [True, True, False, False, False]
