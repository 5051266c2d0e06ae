"""The analysis on the objects the collection's own roles render, and on the real kube-prometheus-stack chart.

- Downloads and the network policy: the network_policy role's policies (with and without the model-download
  exception) over a pod of the vllm role's StatefulSet (HF_HUB_OFFLINE unset, or set by a pre-warmed cache).
- HF_HUB_OFFLINE with no cache: the pre-warmed StatefulSet's pod on a node whose cache holds another model.
- Monitoring gaps: the monitoring role's ServiceMonitor, PrometheusRule and dashboards against the Prometheus CR and
  Grafana's dashboard sidecar that `helm template` of the pinned kube-prometheus-stack renders (skipped, saying so,
  without the real charts).
"""
import copy
import os

import pytest
import yaml

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import analyse, grafana_dashboard_sidecars
from helpers import REPO_ROOT  # pylint: disable=import-error
from real_charts import helm_template  # pylint: disable=import-error
from role_render import render  # pylint: disable=import-error

NAMESPACE = 'llm-serving'
MONITORING = 'monitoring'


def rendered(role, cases, facts):
    result, out = render('llmscale.gpu_serving.' + role, 'render.yml', cases, facts)
    assert result.rc == 0 and len(out) == len(cases), result.describe()
    return out


@pytest.fixture(scope='module')
def vllm():
    """{case: (StatefulSet, settings as the diagnose role reads them)} of the vllm role."""
    cases = {'downloads': {}, 'prewarmed': {'vllm_model_cache_prewarmed': True}}
    out = rendered('vllm', [dict(case, vllm_namespace=NAMESPACE, vllm_served_model_name='qwen3-0.6b')
                            for case in cases.values()], ['__vllm_plan', '__vllm'])
    result = {}
    for name, facts in zip(cases, out):
        statefulset = [o for o in facts['__vllm_plan']['objects'] if o['kind'] == 'StatefulSet'][0]
        settings = dict(('vllm_' + key, value) for key, value in facts['__vllm'].items())
        result[name] = (statefulset, settings)
    return result


def pod_of(statefulset, ordinal=0, node='gpu-node-0'):
    """The pod the StatefulSet controller makes from the template, placed and running."""
    template = copy.deepcopy(statefulset['spec']['template'])
    name = '%s-%d' % (statefulset['metadata']['name'], ordinal)
    return {'apiVersion': 'v1', 'kind': 'Pod',
            'metadata': dict(template['metadata'], name=name, namespace=statefulset['metadata']['namespace']),
            'spec': dict(template['spec'], nodeName=node), 'status': {'phase': 'Running'}}


@pytest.fixture(scope='module')
def network_policies():
    """{case: the network_policy role's policies}."""
    cases = {'download_allowed': {}, 'download_refused': {'network_policy_allow_model_download': False}}
    out = rendered('network_policy', [dict(case, vllm_namespace=NAMESPACE) for case in cases.values()],
                   ['__network_policy_plan'])
    return dict((name, facts['__network_policy_plan']['objects']) for name, facts in zip(cases, out))


def ids(findings):
    return sorted(item['id'] for item in findings)


def test_downloads_blocked_when_no_policy_allows_https(vllm, network_policies):
    statefulset, settings = vllm['downloads']
    facts = {'workload': statefulset, 'pods': [pod_of(statefulset)], 'network_policies': network_policies['download_refused']}
    (blocked,) = [item for item in analyse(facts, settings) if item['id'] == 'model_download_blocked']
    # The cache is not pre-warmed: the pod must download, and cannot.
    assert blocked['severity'] == 'critical'
    assert blocked['object'] == 'Pod/%s/vllm-server-0' % NAMESPACE
    assert 'NetworkPolicy/%s/default-deny-all' % NAMESPACE in blocked['evidence']
    assert 'NetworkPolicy/%s/allow-dns-egress' % NAMESPACE in blocked['evidence']
    assert 'network_policy_allow_model_download: true' in blocked['remedy']
    assert 'vllm_model_cache_prewarmed: true' in blocked['remedy']


def test_policies_add_up_so_the_download_exception_unblocks(vllm, network_policies):
    statefulset, settings = vllm['downloads']
    facts = {'workload': statefulset, 'pods': [pod_of(statefulset)], 'network_policies': network_policies['download_allowed']}
    assert 'model_download_blocked' not in ids(analyse(facts, settings))


def test_a_prewarmed_pod_needs_no_download(vllm, network_policies):
    statefulset, settings = vllm['prewarmed']
    facts = {'workload': statefulset, 'pods': [pod_of(statefulset)], 'network_policies': network_policies['download_refused']}
    assert 'model_download_blocked' not in ids(analyse(facts, settings))


def test_offline_pod_on_a_node_whose_cache_lacks_the_model(vllm):
    statefulset, settings = vllm['prewarmed']
    facts = {'workload': statefulset, 'pods': [pod_of(statefulset, node='gpu-node-1')],
             'node_caches': {'gpu-node-1': {'models': ['Qwen/Qwen2.5-7B-Instruct']}}}
    (missing,) = [item for item in analyse(facts, settings) if item['id'] == 'model_not_prewarmed']
    assert missing['severity'] == 'critical'
    assert missing['evidence'] == ('node gpu-node-1 holds Qwen/Qwen2.5-7B-Instruct in its model cache; the pod serves '
                                   '%s with HF_HUB_OFFLINE=1' % settings['vllm_model'])
    assert 'playbooks/prewarm.yml' in missing['remedy'] and 'gpu-node-1' in missing['remedy']
    # The same node with the model cached: nothing to say.
    facts['node_caches'] = {'gpu-node-1': {'models': [settings['vllm_model']]}}
    assert 'model_not_prewarmed' not in ids(analyse(facts, settings))


@pytest.fixture(scope='module')
def monitoring():
    """{case: (stack values, our objects, namespace object, settings)} of the monitoring role."""
    cases = {'defaults': {},
             'other_labels': {'monitoring_object_labels': {'release': 'prometheus'},
                              'monitoring_dashboard_label': 'dashboards', 'monitoring_dashboard_label_value': 'llm'}}
    out = rendered('monitoring', list(cases.values()),
                   ['__monitoring_stack_values', '__monitoring_objects', '__monitoring_namespace_object'])
    with open(os.path.join(REPO_ROOT, 'roles', 'monitoring', 'defaults', 'main.yml'), encoding='utf-8') as handle:
        defaults = yaml.safe_load(handle)
    result = {}
    for name, facts in zip(cases, out):
        variables = dict(defaults, **cases[name])
        settings = dict((key, variables[key]) for key in (
            'monitoring_namespace', 'monitoring_dashboard_label', 'monitoring_dashboard_label_value'))
        result[name] = (facts['__monitoring_stack_values'], facts['__monitoring_objects'],
                        facts['__monitoring_namespace_object'], settings)
    return result


def monitoring_facts(stack_objects, objects, namespace_object):
    namespace = copy.deepcopy(namespace_object)
    namespace['metadata'].setdefault('labels', {})['kubernetes.io/metadata.name'] = namespace['metadata']['name']
    return {'prometheuses': [o for o in stack_objects if o['kind'] == 'Prometheus'],
            'grafana_deployments': [o for o in stack_objects if o['kind'] == 'Deployment'
                                    and (o['metadata'].get('labels') or {}).get('app.kubernetes.io/name') == 'grafana'],
            'namespaces': [namespace],
            'service_monitors': [o for o in objects if o['kind'] == 'ServiceMonitor'],
            'prometheus_rules': [o for o in objects if o['kind'] == 'PrometheusRule'],
            'dashboards': [o for o in objects if o['kind'] == 'ConfigMap']}


MONITORING_IDS = {'servicemonitor_not_selected', 'rules_not_loaded', 'dashboard_not_loaded'}


def test_the_stack_our_role_installs_loads_our_monitor_rules_and_dashboards(monitoring):
    values, objects, namespace, settings = monitoring['defaults']
    stack = helm_template('kube-prometheus-stack', values, 'kube-prometheus-stack', MONITORING)
    facts = monitoring_facts(stack, objects, namespace)
    assert facts['prometheuses'] and facts['service_monitors'] and facts['dashboards']
    assert [sidecar['label'] for sidecar in grafana_dashboard_sidecars(facts['grafana_deployments'])] == [
        settings['monitoring_dashboard_label']]
    assert MONITORING_IDS.isdisjoint(ids(analyse(facts, settings)))


def test_objects_labelled_for_another_stack_are_not_selected_nor_loaded(monitoring):
    # A stack the site installed itself with the chart's defaults (selectors on its release label, the sidecar on
    # grafana_dashboard=1), and our objects labelled for another one.
    stack = helm_template('kube-prometheus-stack', {}, 'kube-prometheus-stack', MONITORING)
    _values, objects, namespace, settings = monitoring['other_labels']
    findings = analyse(monitoring_facts(stack, objects, namespace), settings)
    found = dict((item['id'], item) for item in findings if item['id'] in MONITORING_IDS)
    assert set(found) == MONITORING_IDS
    monitor = found['servicemonitor_not_selected']
    assert "'release': 'prometheus'" in monitor['evidence'] and 'kube-prometheus-stack' in monitor['evidence']
    assert 'monitoring_object_labels' in monitor['remedy']
    assert 'monitoring_object_labels' in found['rules_not_loaded']['remedy']
    dashboard = found['dashboard_not_loaded']
    assert 'Deployment/%s/kube-prometheus-stack-grafana watches grafana_dashboard=1' % MONITORING in dashboard['evidence']
    assert 'monitoring_dashboard_label (now dashboards)' in dashboard['remedy']
    assert 'monitoring_dashboard_label_value (now llm)' in dashboard['remedy']
