"""monitoring against the local cluster: real kube-apiserver, real helm.

No Helm repository is reachable here, so "installing kube-prometheus-stack"
installs tests/charts/kube-prometheus-stack-test, which ships reduced
Prometheus Operator CRDs and records its values; the ServiceMonitor,
PrometheusRule and dashboard ConfigMaps the role applies are then validated
by the API server against those CRDs.
"""
import json
import os
import uuid

import pytest
import yaml
from kubernetes import client

from cluster_helpers import delete_if_present  # pylint: disable=import-error
from helm_binary import env_with_helm, helm, helm_bin_dir  # pylint: disable=import-error
from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error

CHART_DIR = os.path.join(REPO_ROOT, 'tests', 'charts', 'kube-prometheus-stack-test')
RULES_FILE = os.path.join(REPO_ROOT, 'roles', 'monitoring', 'files', 'vllm-gpu.rules.yml')
CRDS = ['servicemonitors.monitoring.coreos.com', 'prometheusrules.monitoring.coreos.com']
RELEASE = 'kps-test'

PLAYBOOK = [{
    'name': 'Monitoring',
    'hosts': 'localhost',
    'gather_facts': False,
    'module_defaults': {
        'group/kubernetes.core.k8s': {'kubeconfig': '{{ llmscale_kubeconfig | default(omit) }}'},
        'group/kubernetes.core.helm': {'kubeconfig': '{{ llmscale_kubeconfig | default(omit) }}'},
    },
    'roles': [{'role': 'llmscale.gpu_serving.monitoring'}],
}]


def existing_crds(api_client):
    names = {crd.metadata.name for crd in client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items}
    return [name for name in CRDS if name in names]


@pytest.fixture(scope='module')
def setup(kubeconfig, api_client, tmp_path_factory):
    helm_dir = helm_bin_dir()
    playbook = tmp_path_factory.mktemp('monitoring') / 'play.yml'
    playbook.write_text(yaml.safe_dump(PLAYBOOK))
    namespace = 'mon-' + uuid.uuid4().hex[:6]
    crds_before = existing_crds(api_client)
    base_vars = {
        'llmscale_kubeconfig': kubeconfig,
        'monitoring_namespace': namespace,
        'monitoring_stack_chart_source': 'local',
        'monitoring_stack_chart_path': CHART_DIR,
        'monitoring_stack_release_name': RELEASE,
        'monitoring_stack_wait_timeout': 120,
    }
    yield {'playbook': str(playbook), 'vars': base_vars, 'namespace': namespace, 'env': env_with_helm(helm_dir, kubeconfig),
           'helm_dir': helm_dir, 'kubeconfig': kubeconfig, 'api': api_client, 'crds_before': crds_before}
    helm(helm_dir, kubeconfig, 'uninstall', RELEASE, '--namespace', namespace, '--wait')
    delete_if_present(client.CoreV1Api(api_client).delete_namespace, namespace)
    # Leave the cluster as we found it: CRDs that the test chart brought go.
    for name in set(CRDS) - set(crds_before):
        delete_if_present(client.ApiextensionsV1Api(api_client).delete_custom_resource_definition, name)


def run(setup, check=False, diff=False, **overrides):
    return run_playbook(setup['playbook'], extra_vars=dict(setup['vars'], **overrides), check=check, diff=diff,
                        env=setup['env'])


def custom_objects(setup, plural):
    return client.CustomObjectsApi(setup['api']).list_namespaced_custom_object(
        'monitoring.coreos.com', 'v1', setup['namespace'], plural)['items']


def test_existing_mode_fails_clearly_without_the_crds(setup):
    if setup['crds_before']:
        pytest.skip('this cluster already has Prometheus Operator CRDs: %s' % setup['crds_before'])
    result = run(setup, monitoring_prometheus_operator='existing')
    assert result.rc != 0
    message = ' '.join(result.failure_messages())
    assert 'monitoring_prometheus_operator' in message and CRDS[0] in message, result.describe()
    assert result.changed == 0, result.changed_tasks()


def test_check_mode_without_an_operator_reports_the_install_and_creates_nothing(setup):
    if setup['crds_before']:
        pytest.skip('this cluster already has Prometheus Operator CRDs: %s' % setup['crds_before'])
    result = run(setup, check=True, diff=True)
    assert result.rc == 0, result.describe()
    changed = result.task_names(changed=True)
    assert 'Install or upgrade kube-prometheus-stack' in changed, result.describe()
    assert result.results_of('Report what check mode could not dry-run'), 'check mode must say what it skipped'
    assert existing_crds(setup['api']) == []
    namespaces = {ns.metadata.name for ns in client.CoreV1Api(setup['api']).list_namespace().items}
    assert setup['namespace'] not in namespaces


def test_auto_mode_installs_the_stack_then_applies_monitor_rules_and_dashboards(setup):
    result = run(setup)
    assert result.rc == 0, result.describe()
    if not setup['crds_before']:
        assert 'Install or upgrade kube-prometheus-stack' in result.task_names(changed=True)
        values_map = client.CoreV1Api(setup['api']).read_namespaced_config_map(RELEASE + '-rendered-values', setup['namespace'])
        values = json.loads(values_map.data['values.json'])
        assert values['grafana']['sidecar']['dashboards']['label'] == 'grafana_dashboard'
        assert values['grafana']['sidecar']['dashboards']['searchNamespace'] == 'ALL'
        assert values['prometheus']['prometheusSpec']['ruleSelectorNilUsesHelmValues'] is False

    (monitor,) = custom_objects(setup, 'servicemonitors')
    assert monitor['spec']['selector'] == {'matchLabels': {'app.kubernetes.io/name': 'vllm'}}
    assert monitor['spec']['jobLabel'] == 'app.kubernetes.io/name'
    assert monitor['spec']['endpoints'][0]['port'] == 'http'

    (rule,) = custom_objects(setup, 'prometheusrules')
    with open(RULES_FILE, encoding='utf-8') as handle:
        assert rule['spec'] == yaml.safe_load(handle)
    annotations = rule['spec']['groups'][0]['rules'][0]['annotations']
    assert '{{ $labels.model_name }}' in annotations['summary'], 'alert templates must reach Prometheus untouched'

    maps = client.CoreV1Api(setup['api']).list_namespaced_config_map(setup['namespace'], label_selector='grafana_dashboard=1').items
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
    (monitor,) = custom_objects(setup, 'servicemonitors')
    assert monitor['spec']['endpoints'][0]['interval'] == '15s'


def test_the_api_server_rejects_what_the_crd_forbids(setup):
    # The reduced CRDs do validate: a bad interval is refused, so "applied" above means "valid".
    result = run(setup, monitoring_vllm_scrape_interval='fifteen seconds')
    assert result.rc != 0
    assert 'interval' in ' '.join(result.failure_messages()), result.describe()
