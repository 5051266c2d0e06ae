"""The network_policy role's objects for the vLLM namespace, rendered by the role.

The control plane stores NetworkPolicies but only a CNI plugin enforces them:
the local cluster has none, so enforcement is not verified anywhere here.
"""
import kubernetes_validate
import pytest

from serving_render import kubernetes_schema_version, render_cases, validation_messages  # pylint: disable=import-error

FACTS = ['__network_policy_plan']


@pytest.fixture(scope='module')
def policies():
    """({name: policy}, download policy), for the vllm role's namespace and port."""
    (facts,) = render_cases('network_policy', [{'vllm_namespace': 'llm-serving', 'vllm_port': 8000}], FACTS)
    policies = {obj['metadata']['name']: obj for obj in facts['__network_policy_plan']['objects']}
    return policies, policies.pop('allow-vllm-model-download')


def test_a_prewarmed_cache_drops_the_download_exception():
    (facts,) = render_cases('network_policy', [{'vllm_namespace': 'llm-serving', 'vllm_model_cache_prewarmed': 'true'}],
                            FACTS)
    names = {obj['metadata']['name'] for obj in facts['__network_policy_plan']['objects']}
    assert names == {'default-deny-all', 'allow-vllm-ingress', 'allow-dns-egress'}
    # The exception applied by an earlier run is pruned: it carries the owner label the plan prunes by.
    (prune,) = facts['__network_policy_plan']['prune']
    assert prune['label_selector'] == 'llmscale.io/owner=network_policy.llm-serving'


def test_policies_are_valid_for_the_cluster_version(policies):
    always, download = policies
    for policy in list(always.values()) + [download]:
        kubernetes_validate.validate(policy, kubernetes_schema_version(), strict=True)
        assert policy['metadata']['namespace'] == 'llm-serving'
    # Istio's objects are checked by the API server against Istio's CRDs (tests/integration/test_serving_traffic.py).
    assert {policy['kind'] for policy in always.values()} == {'NetworkPolicy'}


def test_everything_is_denied_by_default(policies):
    deny = policies[0]['default-deny-all']['spec']
    assert deny == {'podSelector': {}, 'policyTypes': ['Ingress', 'Egress']}


def _sources(rule):
    return [peer['namespaceSelector']['matchLabels']['kubernetes.io/metadata.name'] for peer in rule['from']
            if 'namespaceSelector' in peer]


def test_vllm_port_is_open_to_the_gateway_and_prometheus_only(policies):
    spec = policies[0]['allow-vllm-ingress']['spec']
    assert spec['podSelector'] == {'matchLabels': {'app.kubernetes.io/name': 'vllm'}}
    (rule,) = spec['ingress']
    assert _sources(rule) == ['gateway-system', 'monitoring']
    assert rule['ports'] == [{'protocol': 'TCP', 'port': 8000}]


# The sources follow the route (the vllm role's variables, read through their defaults).
ROUTE_CASES = [
    ({'vllm_route_kind': 'ingress'}, ['ingress-nginx', 'monitoring']),
    ({'vllm_route_kind': 'none'}, ['monitoring']),
    ({'vllm_gateway_namespace': 'edge'}, ['edge', 'monitoring']),
    ({'vllm_gateway_namespace': 'edge', 'vllm_gateway_proxy_namespace': 'envoy-gateway-system'},
     ['envoy-gateway-system', 'monitoring']),
    ({'network_policy_extra_ingress_namespaces': ['batch']}, ['gateway-system', 'batch', 'monitoring']),
]


def test_the_vllm_port_follows_the_route():
    rendered = render_cases('network_policy', [dict({'vllm_namespace': 'llm-serving'}, **case) for case, _expected in ROUTE_CASES],
                            FACTS)
    for (case, expected), facts in zip(ROUTE_CASES, rendered):
        policies = {obj['metadata']['name']: obj for obj in facts['__network_policy_plan']['objects']}
        assert _sources(policies['allow-vllm-ingress']['spec']['ingress'][0]) == expected, case


@pytest.fixture(scope='module')
def mesh():
    """{mode: {(kind, name): object}} with llmscale_mesh istio, and the endpoint picker's pods labelled."""
    modes = ['ambient', 'sidecar']
    rendered = render_cases('network_policy', [
        {'vllm_namespace': 'llm-serving', 'llmscale_mesh': 'istio', 'llmscale_mesh_mode': mode,
         'network_policy_endpoint_picker_pod_labels': {'app': 'vllm-server-epp'}} for mode in modes], FACTS)
    return {mode: {(obj['kind'], obj['metadata']['name']): obj for obj in facts['__network_policy_plan']['objects']}
            for mode, facts in zip(modes, rendered)}


def test_the_mesh_gets_strict_mtls_and_admits_only_the_gateway_and_prometheus(mesh):
    for mode, objects in mesh.items():
        assert objects[('PeerAuthentication', 'default')]['spec'] == {'mtls': {'mode': 'STRICT'}}
        policy = objects[('AuthorizationPolicy', 'allow-vllm-clients')]['spec']
        assert policy['action'] == 'ALLOW'
        sources = [rule['from'][0]['source']['namespaces'] for rule in policy['rules']]
        assert sources == [['gateway-system'], ['monitoring'], ['llm-serving']], mode
        metrics = policy['rules'][1]['to'][0]['operation']
        # ztunnel enforces layer 4 only: a path in ambient mode would deny Prometheus.
        assert ('paths' in metrics) == (mode == 'sidecar')


def test_the_mesh_data_plane_ports_follow_the_mode(mesh):
    ambient = mesh['ambient'][('NetworkPolicy', 'allow-vllm-ingress')]['spec']['ingress']
    assert [port['port'] for port in ambient[0]['ports']] == [8000, 15008]
    assert ('NetworkPolicy', 'allow-mesh-control-plane') not in mesh['ambient']
    sidecar = mesh['sidecar'][('NetworkPolicy', 'allow-vllm-ingress')]['spec']['ingress']
    assert [port['port'] for port in sidecar[1]['ports']] == [15020, 15090]
    istiod = mesh['sidecar'][('NetworkPolicy', 'allow-mesh-control-plane')]['spec']['egress'][0]
    assert istiod['ports'] == [{'protocol': 'TCP', 'port': 15012}]


def test_the_endpoint_picker_reads_vllm_and_answers_the_gateway(mesh):
    objects = mesh['ambient']
    vllm_from = objects[('NetworkPolicy', 'allow-vllm-ingress')]['spec']['ingress'][0]['from']
    assert {'podSelector': {'matchLabels': {'app': 'vllm-server-epp'}}} in vllm_from
    picker = objects[('NetworkPolicy', 'allow-endpoint-picker')]['spec']
    assert picker['ingress'][0]['ports'] == [{'protocol': 'TCP', 'port': 9002}]
    assert _sources(picker['ingress'][0]) == ['gateway-system']
    assert picker['egress'][0]['ports'] == [{'protocol': 'TCP', 'port': 8000}]


def test_dns_and_download_egress(policies):
    dns = policies[0]['allow-dns-egress']['spec']['egress'][0]
    assert dns['to'][0]['podSelector'] == {'matchLabels': {'k8s-app': 'kube-dns'}}
    assert sorted(port['protocol'] for port in dns['ports']) == ['TCP', 'UDP']
    download = policies[1]['spec']['egress'][0]
    assert download['ports'] == [{'protocol': 'TCP', 'port': 443}]
    assert download['to'][0]['ipBlock'] == {'cidr': '0.0.0.0/0', 'except': ['169.254.169.254/32']}


@pytest.mark.parametrize('extra_vars, variable', [
    ({'network_policy_vllm_port': 70000}, 'network_policy_vllm_port'),
    ({'network_policy_model_download_cidr': 'anywhere'}, 'network_policy_model_download_cidr'),
    ({'network_policy_monitoring_namespace': 'Monitoring'}, 'network_policy_'),
    ({'network_policy_route_kind': 'mesh'}, 'network_policy_route_kind'),
    ({'network_policy_gateway_namespace': 'Edge'}, 'network_policy_gateway_namespace'),
    ({'network_policy_endpoint_picker_port': 0}, 'network_policy_endpoint_picker_port'),
    ({'llmscale_mesh': 'linkerd'}, 'llmscale_mesh'),
])
def test_bad_variables_fail_naming_the_variable(extra_vars, variable):
    assert variable in validation_messages('network_policy', extra_vars)
