"""The vllm role's route (roles/vllm/templates/route.yml.j2), rendered by the role's own render task.

The objects are checked against the real CRDs by the API server in tests/integration/test_serving_traffic.py; here
every field the variables and the rollout interface (__vllm_route_backends, __vllm_route_rules) decide.
"""
import pytest

from serving_render import render_cases, validation_messages  # pylint: disable=import-error
from role_render import render  # pylint: disable=import-error

BASE_VARS = {'vllm_served_model_name': 'qwen3-8b', 'vllm_gpus_per_node': 8}
CANARY = [{'name': 'vllm-server', 'port': 80, 'weight': 95}, {'name': 'vllm-canary', 'port': 80, 'weight': 5}]
AB_RULES = [{'matches': [{'headers': [{'name': 'x-model-variant', 'value': 'b'}]}],
             'backends': [{'name': 'vllm-b', 'port': 80, 'weight': 1}]}]
CASES = {
    'default': {},
    'canary': {'__vllm_route_backends': CANARY, '__vllm_route_rules': AB_RULES},
    'listener': {'vllm_gateway_section_name': 'https', 'vllm_route_hostnames': ['llm.example.com', '*.llm.example.com'],
                 'vllm_route_backend_request_timeout': '300s', 'vllm_route_request_timeout': ''},
    'pool': {'vllm_inference_pool_enabled': True, 'vllm_inference_pool_endpoint_picker_failure_mode': 'FailOpen'},
    'envoy': {'vllm_gateway_implementation': 'envoy', 'vllm_overload_retries': 0},
    'istio-gateway': {'vllm_gateway_implementation': 'istio'},
    'mesh-ambient': {'llmscale_mesh': 'istio'},
    'mesh-sidecar': {'llmscale_mesh': 'istio', 'llmscale_mesh_mode': 'sidecar', 'vllm_route_kind': 'none'},
    'ingress': {'vllm_route_kind': 'ingress'},
}


@pytest.fixture(scope='module')
def rendered():
    """{case: {(kind, name): object}}."""
    results = render_cases('vllm', [dict(BASE_VARS, **variables) for variables in CASES.values()], ['__vllm_plan'])
    return {case: {(obj['kind'], obj['metadata']['name']): obj for obj in facts['__vllm_plan']['objects']}
            for case, facts in zip(CASES, results)}


def _route_kinds(objects):
    return {kind for kind, _name in objects} - {'Namespace', 'Service', 'PodDisruptionBudget', 'StatefulSet'}


def test_by_default_one_httproute_sends_everything_to_the_service(rendered):
    objects = rendered['default']
    assert _route_kinds(objects) == {'HTTPRoute'}
    route = objects[('HTTPRoute', 'vllm-server')]
    assert route['apiVersion'] == 'gateway.networking.k8s.io/v1'
    assert route['metadata']['labels']['llmscale.io/owner'] == 'vllm.vllm-server'
    assert route['spec']['parentRefs'] == [{'group': 'gateway.networking.k8s.io', 'kind': 'Gateway',
                                            'name': 'inference-gateway', 'namespace': 'gateway-system'}]
    assert 'hostnames' not in route['spec']
    assert route['spec']['rules'] == [{'matches': [{'path': {'type': 'PathPrefix', 'value': '/'}}],
                                       'backendRefs': [{'name': 'vllm-server', 'port': 80, 'weight': 100}],
                                       'timeouts': {'request': '600s'}}]


def test_a_rollout_feeds_its_weighted_backends_and_header_rules(rendered):
    rules = rendered['canary'][('HTTPRoute', 'vllm-server')]['spec']['rules']
    assert [rule['backendRefs'] for rule in rules] == [
        [{'name': 'vllm-b', 'port': 80, 'weight': 1}],
        [{'name': 'vllm-server', 'port': 80, 'weight': 95}, {'name': 'vllm-canary', 'port': 80, 'weight': 5}]]
    assert rules[0]['matches'] == AB_RULES[0]['matches']
    assert rules[1]['matches'] == [{'path': {'type': 'PathPrefix', 'value': '/'}}]


def test_listener_hostnames_and_timeouts(rendered):
    spec = rendered['listener'][('HTTPRoute', 'vllm-server')]['spec']
    assert spec['parentRefs'][0]['sectionName'] == 'https'
    assert spec['hostnames'] == ['llm.example.com', '*.llm.example.com']
    assert spec['rules'][0]['timeouts'] == {'backendRequest': '300s'}


def test_the_inference_pool_becomes_the_backend(rendered):
    objects = rendered['pool']
    assert _route_kinds(objects) == {'HTTPRoute', 'InferencePool'}
    pool = objects[('InferencePool', 'vllm-server')]
    assert pool['apiVersion'] == 'inference.networking.k8s.io/v1'
    assert pool['spec'] == {
        'selector': {'matchLabels': {'app.kubernetes.io/name': 'vllm', 'app.kubernetes.io/instance': 'vllm-server'}},
        'targetPorts': [{'number': 8000}],
        'endpointPickerRef': {'name': 'vllm-server-epp', 'port': {'number': 9002}, 'failureMode': 'FailOpen'}}
    (rule,) = objects[('HTTPRoute', 'vllm-server')]['spec']['rules']
    assert rule['backendRefs'] == [{'group': 'inference.networking.k8s.io', 'kind': 'InferencePool',
                                    'name': 'vllm-server', 'weight': 100}]


def test_envoy_gets_a_backend_traffic_policy_on_the_route(rendered):
    objects = rendered['envoy']
    assert _route_kinds(objects) == {'HTTPRoute', 'BackendTrafficPolicy'}
    spec = objects[('BackendTrafficPolicy', 'vllm-server')]['spec']
    assert spec['targetRefs'] == [{'group': 'gateway.networking.k8s.io', 'kind': 'HTTPRoute', 'name': 'vllm-server'}]
    assert spec['circuitBreaker'] == {'maxConnections': 1024, 'maxPendingRequests': 256, 'maxParallelRequests': 1024,
                                      'retryBudget': {'percent': {'numerator': 20, 'denominator': 100}}}
    assert spec['healthCheck']['passive'] == {'consecutive5XxErrors': 5, 'interval': '10s', 'baseEjectionTime': '30s',
                                              'maxEjectionPercent': 50}
    # vllm_overload_retries 0: no retry block at all.
    assert 'retry' not in spec


def test_istio_as_gateway_gets_a_destination_rule_without_the_mesh(rendered):
    objects = rendered['istio-gateway']
    assert _route_kinds(objects) == {'HTTPRoute', 'DestinationRule'}
    rule = objects[('DestinationRule', 'vllm-server')]['spec']
    assert rule['host'] == 'vllm-server.llm-serving.svc.cluster.local'
    assert rule['trafficPolicy']['connectionPool'] == {
        'tcp': {'maxConnections': 1024},
        'http': {'http1MaxPendingRequests': 256, 'http2MaxRequests': 1024, 'maxRetries': 2}}
    assert 'istio.io/dataplane-mode' not in objects[('Namespace', 'llm-serving')]['metadata']['labels']


def test_the_mesh_adds_the_east_west_route_and_the_data_plane_label(rendered):
    ambient = rendered['mesh-ambient']
    assert _route_kinds(ambient) == {'HTTPRoute', 'DestinationRule'}
    mesh_route = ambient[('HTTPRoute', 'vllm-server-mesh')]['spec']
    assert mesh_route['parentRefs'] == [{'group': '', 'kind': 'Service', 'name': 'vllm-server', 'port': 80}]
    assert mesh_route['rules'] == ambient[('HTTPRoute', 'vllm-server')]['spec']['rules']
    labels = ambient[('Namespace', 'llm-serving')]['metadata']['labels']
    assert labels['istio.io/dataplane-mode'] == 'ambient' and 'istio-injection' not in labels
    assert labels['pod-security.kubernetes.io/enforce'] == 'restricted'
    sidecar = rendered['mesh-sidecar']
    # No gateway route (route kind none), the mesh route and its limits still.
    assert set(sidecar) >= {('HTTPRoute', 'vllm-server-mesh'), ('DestinationRule', 'vllm-server')}
    assert ('HTTPRoute', 'vllm-server') not in sidecar
    labels = sidecar[('Namespace', 'llm-serving')]['metadata']['labels']
    assert labels['istio-injection'] == 'enabled' and 'istio.io/dataplane-mode' not in labels


def test_the_ingress_option_renders_no_route(rendered):
    assert _route_kinds(rendered['ingress']) == {'Ingress'}


@pytest.mark.parametrize('overrides, variable', [
    ({'vllm_ingress_enabled': True}, 'vllm_route_kind: ingress'),
    ({'vllm_ingress_enabled': False}, 'vllm_route_kind: none'),
    ({'vllm_route_kind': 'nginx'}, 'vllm_route_kind'),
    ({'vllm_gateway_implementation': 'kong'}, 'vllm_gateway_implementation'),
    ({'vllm_gateway_name': 'Main_Gateway'}, 'vllm_gateway_name'),
    ({'vllm_gateway_proxy_namespace': 'Envoy'}, 'vllm_gateway_proxy_namespace'),
    ({'vllm_route_request_timeout': '10 minutes'}, 'vllm_route_request_timeout'),
    ({'vllm_route_backend_request_timeout': '5x'}, 'vllm_route_backend_request_timeout'),
    ({'vllm_route_hostnames': ['https://llm.example.com']}, 'vllm_route_hostnames'),
    ({'vllm_inference_pool_enabled': True, 'vllm_route_kind': 'ingress'}, 'vllm_inference_pool_enabled'),
    ({'vllm_inference_pool_endpoint_picker_failure_mode': 'Retry'}, 'vllm_inference_pool_endpoint_picker_failure_mode'),
    ({'vllm_inference_pool_endpoint_picker_port': 0}, 'vllm_inference_pool_endpoint_picker_port'),
    ({'vllm_overload_max_pending_requests': 0}, 'vllm_overload_max_pending_requests'),
    ({'vllm_overload_retries': -1}, 'vllm_overload_retries'),
    ({'vllm_overload_retry_budget_percent': 101}, 'vllm_overload_retry_budget_percent'),
    ({'vllm_overload_eject_base_time': '30'}, 'vllm_overload_eject_base_time'),
    ({'llmscale_mesh_mode': 'waypoint'}, 'llmscale_mesh_mode'),
    ({'vllm_route_hostnames': ['llm.yourdomain.com'], 'llmscale_warnings_as_errors': True}, 'vllm_route_hostnames'),
])
def test_bad_variables_fail_naming_the_variable(overrides, variable):
    assert variable in validation_messages('vllm', dict(BASE_VARS, **overrides))


@pytest.mark.parametrize('backends', [
    [{'name': 'vllm-canary', 'weight': 5}],
    [{'name': 'vllm-canary', 'port': 80}],
    [{'name': 'vllm-canary', 'port': 80, 'weight': -1}],
])
def test_bad_backends_from_a_rollout_fail_naming_the_input(backends):
    result, _rendered = render('vllm', 'render', [dict(BASE_VARS, __vllm_route_backends=backends)], ['__vllm_plan'])
    assert result.rc != 0
    message = ' '.join(result.failure_messages())
    assert '__vllm_route_backends' in message and 'vllm-server-rollout' in message, message
