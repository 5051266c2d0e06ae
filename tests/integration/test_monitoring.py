"""monitoring against the local cluster with the real kube-prometheus-stack 88.5.3 chart.

The role installs the real archive (with its crds, Grafana, kube-state-metrics and node
exporter sub-charts) from a llmscale_chart_dir made as `make charts` makes one, with the
pinned helm. KWOK nodes run no containers, so the stack's pods never become ready: Helm's
wait is switched off here (monitoring_stack_wait). What this proves: every CRD of the chart
is established, the API server admits the ServiceMonitor, PrometheusRule and dashboards
against the real Prometheus Operator CRDs, and the Prometheus custom resource and the
Grafana sidecar that the real chart configures select them. Prometheus scraping vLLM and
Grafana loading the dashboards only a cluster that runs the pods shows.
"""
import json
import os
import uuid

import pytest
import yaml
from kubernetes import client

from cluster_helpers import delete_if_present, poll  # pylint: disable=import-error
from helm_binary import env_with_helm, helm, helm_bin_dir  # pylint: disable=import-error
from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error
from real_charts import copy_with_digests, helm_template, label_selector_matches  # pylint: disable=import-error

RULES_FILE = os.path.join(REPO_ROOT, 'roles', 'monitoring', 'files', 'vllm-gpu.rules.yml')
REQUIRED_CRDS = ['servicemonitors.monitoring.coreos.com', 'prometheusrules.monitoring.coreos.com']
RELEASE = 'kps-test'

PLAYBOOK = [{'name': 'Monitoring', 'hosts': 'localhost', 'gather_facts': False,
             'roles': [{'role': 'llmscale.gpu_serving.monitoring'}]}]


def existing_crds(api_client):
    return {crd.metadata.name for crd in client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items}


@pytest.fixture(scope='module')
def setup(kubeconfig, api_client, tmp_path_factory):
    base = tmp_path_factory.mktemp('monitoring')
    chart_dir = copy_with_digests(str(base / 'charts'), charts=['kube-prometheus-stack'])
    helm_dir = helm_bin_dir()
    playbook = base / 'play.yml'
    playbook.write_text(yaml.safe_dump(PLAYBOOK))
    namespace = 'mon-' + uuid.uuid4().hex[:6]
    chart_crds = sorted(o['metadata']['name'] for o in helm_template(
        'kube-prometheus-stack', {}, RELEASE, namespace, extra_args=['--include-crds'])
        if o['kind'] == 'CustomResourceDefinition')
    crds_before = existing_crds(api_client)
    base_vars = {
        'llmscale_kubeconfig': kubeconfig,
        'llmscale_helm_binary': helm_dir + '/helm',
        'llmscale_chart_dir': chart_dir,
        'monitoring_namespace': namespace,
        'monitoring_stack_release_name': RELEASE,
        # Nothing runs the stack's pods on KWOK nodes: no readiness to wait for (see the module docstring).
        'monitoring_stack_wait': False,
    }
    yield {'playbook': str(playbook), 'vars': base_vars, 'namespace': namespace, 'env': env_with_helm(helm_dir, kubeconfig),
           'helm_dir': helm_dir, 'kubeconfig': kubeconfig, 'api': api_client, 'crds_before': crds_before,
           'chart_crds': chart_crds}
    helm(helm_dir, kubeconfig, 'uninstall', RELEASE, '--namespace', namespace, '--wait')
    delete_if_present(client.CoreV1Api(api_client).delete_namespace, namespace)
    # Leave the cluster as we found it: CRDs that the chart brought go.
    for name in set(chart_crds) - crds_before:
        delete_if_present(client.ApiextensionsV1Api(api_client).delete_custom_resource_definition, name)


def run(setup, check=False, diff=False, **overrides):
    return run_playbook(setup['playbook'], extra_vars=dict(setup['vars'], **overrides), check=check, diff=diff,
                        env=setup['env'])


def custom_objects(setup, plural, name=None):
    """The chart brings its own monitors and rules into the namespace: name picks ours."""
    items = client.CustomObjectsApi(setup['api']).list_namespaced_custom_object(
        'monitoring.coreos.com', 'v1', setup['namespace'], plural)['items']
    return [item for item in items if name is None or item['metadata']['name'] == name]


def skip_when_an_operator_was_there(setup):
    present = [name for name in REQUIRED_CRDS if name in setup['crds_before']]
    if present:
        pytest.skip('this cluster already has Prometheus Operator CRDs: %s' % present)


def test_existing_mode_fails_clearly_without_the_crds(setup):
    skip_when_an_operator_was_there(setup)
    result = run(setup, monitoring_prometheus_operator='existing')
    assert result.rc != 0
    message = ' '.join(result.failure_messages())
    assert 'monitoring_prometheus_operator' in message and REQUIRED_CRDS[0] in message, result.describe()
    assert result.changed == 0, result.changed_tasks()


def test_check_mode_without_an_operator_reports_the_install_and_creates_nothing(setup):
    skip_when_an_operator_was_there(setup)
    result = run(setup, check=True, diff=True)
    assert result.rc == 0, result.describe()
    changed = result.task_names(changed=True)
    assert 'Install or upgrade the Helm release %s' % RELEASE in changed, result.describe()
    assert result.results_of('Report what check mode could not dry-run'), 'check mode must say what it skipped'
    assert not set(REQUIRED_CRDS) & existing_crds(setup['api'])
    namespaces = {ns.metadata.name for ns in client.CoreV1Api(setup['api']).list_namespace().items}
    assert setup['namespace'] not in namespaces


def test_auto_mode_installs_the_real_stack_with_every_crd_established(setup):
    result = run(setup)
    assert result.rc == 0, result.describe()
    if not set(REQUIRED_CRDS) & setup['crds_before']:
        assert 'Install or upgrade the Helm release %s' % RELEASE in result.task_names(changed=True)
    extensions = client.ApiextensionsV1Api(setup['api'])
    assert set(REQUIRED_CRDS) <= set(setup['chart_crds']) and len(setup['chart_crds']) >= 10, setup['chart_crds']
    for name in setup['chart_crds']:
        poll(lambda name=name: any(c.type == 'Established' and c.status == 'True'
                                   for c in extensions.read_custom_resource_definition(name).status.conditions or []),
             120, what='CRD %s established' % name)


def test_the_real_prometheus_selects_our_service_monitor_and_rule(setup):
    (prometheus,) = custom_objects(setup, 'prometheuses')
    spec = prometheus['spec']
    namespace = client.CoreV1Api(setup['api']).read_namespace(setup['namespace'])
    (monitor,) = custom_objects(setup, 'servicemonitors', 'vllm')
    (rule,) = custom_objects(setup, 'prometheusrules', 'llmscale-vllm-gpu')
    for obj, selector, namespace_selector in [(monitor, 'serviceMonitorSelector', 'serviceMonitorNamespaceSelector'),
                                              (rule, 'ruleSelector', 'ruleNamespaceSelector')]:
        assert label_selector_matches(spec.get(selector), obj['metadata']['labels']), (selector, spec.get(selector))
        assert label_selector_matches(spec.get(namespace_selector), namespace.metadata.labels), namespace_selector
    # The GPU Operator's DCGM ServiceMonitor lives in another namespace: every namespace is selected.
    assert spec['serviceMonitorNamespaceSelector'] == {}

    assert monitor['spec']['selector'] == {'matchLabels': {'app.kubernetes.io/name': 'vllm'}}
    assert monitor['spec']['jobLabel'] == 'app.kubernetes.io/name'
    assert monitor['spec']['endpoints'][0]['port'] == 'http'
    with open(RULES_FILE, encoding='utf-8') as handle:
        assert rule['spec'] == yaml.safe_load(handle)
    annotations = rule['spec']['groups'][0]['rules'][0]['annotations']
    assert '{{ $labels.model_name }}' in annotations['summary'], 'alert templates must reach Prometheus untouched'
    assert any(entry['manager'] == 'llmscale.gpu_serving' for entry in monitor['metadata']['managedFields'])


def test_the_real_grafana_sidecar_selects_our_dashboards(setup):
    deployment = client.AppsV1Api(setup['api']).read_namespaced_deployment(RELEASE + '-grafana', setup['namespace'])
    (sidecar,) = [c for c in deployment.spec.template.spec.containers if c.name == 'grafana-sc-dashboard']
    env = {e.name: e.value for e in sidecar.env}
    assert env['NAMESPACE'] == 'ALL', env
    maps = client.CoreV1Api(setup['api']).list_namespaced_config_map(
        setup['namespace'], label_selector='%s=%s' % (env['LABEL'], env['LABEL_VALUE'])).items
    # The chart's own dashboards carry the label too; ours are among those the sidecar selects.
    maps = [m for m in maps if m.metadata.name.startswith('llmscale-dashboard-')]
    assert sorted(m.metadata.name for m in maps) == ['llmscale-dashboard-gpu-dcgm', 'llmscale-dashboard-vllm-serving']
    for config_map in maps:
        ((key, text),) = config_map.data.items()
        with open(os.path.join(REPO_ROOT, 'roles', 'monitoring', 'files', key), encoding='utf-8') as handle:
            assert json.loads(text) == json.load(handle)


def test_second_runs_change_nothing_in_every_mode(setup):
    for mode in ('auto', 'existing', 'install'):
        result = run(setup, monitoring_prometheus_operator=mode)
        assert result.rc == 0, result.describe()
        assert result.changed == 0, (mode, result.changed_tasks())


def test_check_mode_reports_a_change_without_making_it(setup):
    result = run(setup, check=True, diff=True, monitoring_vllm_scrape_interval='30s')
    assert result.rc == 0, result.describe()
    assert 'Apply the ServiceMonitor, PrometheusRule and dashboards' in result.task_names(changed=True)
    (monitor,) = custom_objects(setup, 'servicemonitors', 'vllm')
    assert monitor['spec']['endpoints'][0]['interval'] == '15s'


def test_the_api_server_rejects_what_the_real_crd_forbids(setup):
    # The real CRD validates: a bad interval is refused, so "applied" above means "valid".
    result = run(setup, monitoring_vllm_scrape_interval='fifteen seconds')
    assert result.rc != 0
    assert 'interval' in ' '.join(result.failure_messages()), result.describe()
