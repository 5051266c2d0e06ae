"""The route, overload and mesh objects of playbooks/serving.yml against the local cluster with the real CRDs.

The Gateway API v1.6.1, Inference Extension v1.6.0, Envoy Gateway v1.9.0 and Istio 1.30.3 CRDs
(../shared/crds, fixtures in cluster_fixtures.py) are installed: kube-apiserver checks every HTTPRoute,
InferencePool, BackendTrafficPolicy, DestinationRule, PeerAuthentication and AuthorizationPolicy against their
schemas (OpenAPI and CEL rules) in the apply path's dry run and apply. No gateway, mesh or CNI runs here: that
traffic follows these objects is verified on a real gateway and mesh only (docs/serving.md).
"""
import json
import os
import uuid

import pytest
from kubernetes import client

from cluster_helpers import delete_if_present  # pylint: disable=import-error
from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error

INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'local')
NAME = 'vllm-server'
# (group, version, plural, kind) of every kind the route and the mesh add.
KINDS = [
    ('gateway.networking.k8s.io', 'v1', 'httproutes', 'HTTPRoute'),
    ('inference.networking.k8s.io', 'v1', 'inferencepools', 'InferencePool'),
    ('gateway.envoyproxy.io', 'v1alpha1', 'backendtrafficpolicies', 'BackendTrafficPolicy'),
    ('networking.istio.io', 'v1', 'destinationrules', 'DestinationRule'),
    ('security.istio.io', 'v1', 'peerauthentications', 'PeerAuthentication'),
    ('security.istio.io', 'v1', 'authorizationpolicies', 'AuthorizationPolicy'),
]


@pytest.fixture(scope='module')
def traffic(kubeconfig, api_client, envoy_gateway_crds, istio_crds):  # pylint: disable=unused-argument
    """A serving namespace with no replicas (no GPUs, claims or pods: the objects of the route are the subject)."""
    namespace = 'traffic-' + uuid.uuid4().hex[:6]
    variables = {
        'llmscale_gpu_operator_enabled': False,
        'llmscale_monitoring_enabled': False,
        'autoscaling_mode': 'none',
        'vllm_namespace': namespace,
        'vllm_served_model_name': 'qwen3-8b-traffic',
        'vllm_model_cache_storage_class': 'local-nvme',
        'vllm_replicas': 0,
        'vllm_gateway_implementation': 'envoy',
        'vllm_gateway_proxy_namespace': 'envoy-gateway-system',
        'vllm_inference_pool_enabled': True,
        'network_policy_endpoint_picker_pod_labels': {'app': NAME + '-epp'},
        'vllm_wait_timeout': 120,
    }
    yield {'vars': variables, 'namespace': namespace, 'env': {'KUBECONFIG': kubeconfig}, 'api': api_client}
    delete_if_present(client.CoreV1Api(api_client).delete_namespace, namespace)


def serve(traffic, **overrides):
    return run_playbook('playbooks/serving.yml', inventory=INVENTORY, extra_vars=dict(traffic['vars'], **overrides),
                        env=traffic['env'], timeout=900)


def live(traffic):
    """{(kind, name): object} of the route's and the mesh's kinds in the namespace."""
    custom = client.CustomObjectsApi(traffic['api'])
    objects = {}
    for group, version, plural, kind in KINDS:
        for item in custom.list_namespaced_custom_object(group, version, traffic['namespace'], plural)['items']:
            objects[(kind, item['metadata']['name'])] = item
    return objects


def generations(traffic):
    return {key: item['metadata']['generation'] for key, item in live(traffic).items()}


def _apply_result(result):
    results = [r for r in result.results_of('Apply vLLM, its autoscaler and network policies') if 'summary' in r]
    assert results, result.describe()
    return results[-1]


def _rerun_changes_nothing(traffic, **overrides):
    before = generations(traffic)
    result = serve(traffic, **overrides)
    assert result.rc == 0, result.describe()
    assert result.changed == 0, result.changed_tasks()
    assert _apply_result(result)['summary'] == {'unchanged': len(_apply_result(result)['objects'])}
    assert generations(traffic) == before


@pytest.fixture(scope='module')
def with_mesh(traffic):
    result = serve(traffic, llmscale_mesh='istio', llmscale_mesh_mode='ambient')
    assert result.rc == 0, result.describe()
    return live(traffic)


def test_the_route_pool_and_overload_policy_are_accepted(traffic, with_mesh):
    namespace = traffic['namespace']
    route = with_mesh[('HTTPRoute', NAME)]['spec']
    assert route['parentRefs'] == [{'group': 'gateway.networking.k8s.io', 'kind': 'Gateway', 'name': 'inference-gateway',
                                    'namespace': 'gateway-system'}]
    (rule,) = route['rules']
    assert rule['backendRefs'] == [{'group': 'inference.networking.k8s.io', 'kind': 'InferencePool', 'name': NAME,
                                    'weight': 100}]
    assert rule['timeouts'] == {'request': '600s'}
    pool = with_mesh[('InferencePool', NAME)]['spec']
    assert pool['targetPorts'] == [{'number': 8000}]
    assert pool['endpointPickerRef'] == {'group': '', 'kind': 'Service', 'name': NAME + '-epp', 'port': {'number': 9002},
                                         'failureMode': 'FailClose'}
    policy = with_mesh[('BackendTrafficPolicy', NAME)]['spec']
    assert policy['targetRefs'] == [{'group': 'gateway.networking.k8s.io', 'kind': 'HTTPRoute', 'name': NAME}]
    assert policy['circuitBreaker']['maxPendingRequests'] == 256
    assert policy['healthCheck']['passive']['consecutive5XxErrors'] == 5
    assert policy['retry']['retryOn']['httpStatusCodes'] == [503]
    labels = client.CoreV1Api(traffic['api']).read_namespace(namespace).metadata.labels
    assert labels['istio.io/dataplane-mode'] == 'ambient'
    assert labels['pod-security.kubernetes.io/enforce'] == 'restricted'


def test_the_mesh_objects_are_accepted_by_istios_schemas(traffic, with_mesh):
    assert with_mesh[('PeerAuthentication', 'default')]['spec'] == {'mtls': {'mode': 'STRICT'}}
    authorization = with_mesh[('AuthorizationPolicy', 'allow-vllm-clients')]['spec']
    assert authorization['rules'][0]['from'] == [{'source': {'namespaces': ['envoy-gateway-system']}}]
    rule = with_mesh[('DestinationRule', NAME)]['spec']['trafficPolicy']
    assert rule['connectionPool']['http']['http1MaxPendingRequests'] == 256
    assert rule['outlierDetection']['consecutive5xxErrors'] == 5
    # East-west: the HTTPRoute whose parent is the Service (Gateway API mesh support).
    mesh_route = with_mesh[('HTTPRoute', NAME + '-mesh')]['spec']
    assert mesh_route['parentRefs'] == [{'group': '', 'kind': 'Service', 'name': NAME, 'port': 80}]


def test_a_rerun_with_the_mesh_changes_nothing(traffic, with_mesh):  # pylint: disable=unused-argument
    _rerun_changes_nothing(traffic, llmscale_mesh='istio', llmscale_mesh_mode='ambient')


def test_sidecar_mode_switches_the_namespace_label(traffic, with_mesh):  # pylint: disable=unused-argument
    result = serve(traffic, llmscale_mesh='istio', llmscale_mesh_mode='sidecar')
    assert result.rc == 0, result.describe()
    labels = client.CoreV1Api(traffic['api']).read_namespace(traffic['namespace']).metadata.labels
    assert labels.get('istio-injection') == 'enabled' and 'istio.io/dataplane-mode' not in labels
    authorization = live(traffic)[('AuthorizationPolicy', 'allow-vllm-clients')]['spec']
    assert authorization['rules'][1]['to'][0]['operation']['paths'] == ['/metrics']
    names = {p.metadata.name for p in client.NetworkingV1Api(traffic['api']).list_namespaced_network_policy(
        traffic['namespace']).items}
    assert 'allow-mesh-control-plane' in names


def test_the_mesh_switched_off_removes_its_objects(traffic, with_mesh):  # pylint: disable=unused-argument
    result = serve(traffic)
    assert result.rc == 0, result.describe()
    kinds = {kind for kind, _name in live(traffic)}
    assert kinds == {'HTTPRoute', 'InferencePool', 'BackendTrafficPolicy'}
    assert ('HTTPRoute', NAME + '-mesh') not in live(traffic)
    labels = client.CoreV1Api(traffic['api']).read_namespace(traffic['namespace']).metadata.labels
    assert 'istio.io/dataplane-mode' not in labels and 'istio-injection' not in labels
    _rerun_changes_nothing(traffic)


def test_a_rerun_keeps_the_weights_a_rollout_recorded(traffic, with_mesh):  # pylint: disable=unused-argument
    """The ConfigMap <vllm_name>-rollout (data.state) holds the rollout's backends: serving.yml routes to them."""
    core, namespace = client.CoreV1Api(traffic['api']), traffic['namespace']
    state = {'backends': [{'name': 'vllm-server', 'port': 80, 'weight': 75}, {'name': 'vllm-canary', 'port': 80, 'weight': 25}],
             'rules': [{'matches': [{'headers': [{'name': 'x-model-variant', 'value': 'canary'}]}],
                        'backends': [{'name': 'vllm-canary', 'port': 80, 'weight': 1}]}],
             'step': 1}
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=NAME + '-rollout'), data={'state': json.dumps(state)}))
    try:
        result = serve(traffic, vllm_inference_pool_enabled=False)
        assert result.rc == 0, result.describe()
        rules = live(traffic)[('HTTPRoute', NAME)]['spec']['rules']
        assert [rule['backendRefs'] for rule in rules] == [
            [{'group': '', 'kind': 'Service', 'name': 'vllm-canary', 'port': 80, 'weight': 1}],
            [{'group': '', 'kind': 'Service', 'name': 'vllm-server', 'port': 80, 'weight': 75},
             {'group': '', 'kind': 'Service', 'name': 'vllm-canary', 'port': 80, 'weight': 25}]]
        assert rules[0]['matches'][0]['headers'] == [{'name': 'x-model-variant', 'type': 'Exact', 'value': 'canary'}]
        _rerun_changes_nothing(traffic, vllm_inference_pool_enabled=False)
        # A state whose backends are not a list of {name, port, weight} fails naming the ConfigMap.
        core.patch_namespaced_config_map(NAME + '-rollout', namespace, {'data': {'state': json.dumps(
            {'backends': [{'name': 'vllm-canary', 'weight': 25}]})}})
        before = generations(traffic)
        result = serve(traffic, vllm_inference_pool_enabled=False)
        assert result.rc != 0
        assert NAME + '-rollout' in ' '.join(result.failure_messages()), result.describe()
        assert generations(traffic) == before
    finally:
        delete_if_present(core.delete_namespaced_config_map, NAME + '-rollout', namespace)


BAD_INPUT = [
    ({'vllm_ingress_enabled': False}, 'vllm_ingress_enabled'),
    ({'vllm_route_kind': 'istio'}, 'vllm_route_kind'),
    ({'vllm_gateway_implementation': 'nginx'}, 'vllm_gateway_implementation'),
    ({'vllm_overload_retry_budget_percent': 0}, 'vllm_overload_retry_budget_percent'),
    ({'vllm_overload_eject_interval': '10 seconds'}, 'vllm_overload_eject_interval'),
    ({'vllm_route_hostnames': ['LLM_host']}, 'vllm_route_hostnames'),
    ({'vllm_route_kind': 'ingress', 'vllm_inference_pool_enabled': True}, 'vllm_inference_pool_enabled'),
    ({'llmscale_mesh': 'linkerd'}, 'llmscale_mesh'),
    ({'llmscale_mesh': 'istio', 'llmscale_mesh_mode': 'waypoint'}, 'llmscale_mesh_mode'),
]


@pytest.mark.parametrize('overrides, variable', BAD_INPUT, ids=[variable for _overrides, variable in BAD_INPUT])
def test_bad_input_fails_naming_the_variable_and_changes_nothing(traffic, with_mesh, overrides, variable):  # pylint: disable=unused-argument
    before = generations(traffic)
    result = serve(traffic, **overrides)
    assert result.rc != 0, result.describe()
    assert variable in ' '.join(result.failure_messages()), result.describe()
    assert result.changed == 0, result.changed_tasks()
    assert generations(traffic) == before
