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


def test_everything_is_denied_by_default(policies):
    deny = policies[0]['default-deny-all']['spec']
    assert deny == {'podSelector': {}, 'policyTypes': ['Ingress', 'Egress']}


def test_vllm_port_is_open_to_the_ingress_controller_and_prometheus_only(policies):
    spec = policies[0]['allow-vllm-ingress']['spec']
    assert spec['podSelector'] == {'matchLabels': {'app.kubernetes.io/name': 'vllm'}}
    (rule,) = spec['ingress']
    sources = [peer['namespaceSelector']['matchLabels']['kubernetes.io/metadata.name'] for peer in rule['from']]
    assert sources == ['ingress-nginx', 'monitoring']
    assert rule['ports'] == [{'protocol': 'TCP', 'port': 8000}]


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
])
def test_bad_variables_fail_naming_the_variable(extra_vars, variable):
    assert variable in validation_messages('network_policy', extra_vars)
