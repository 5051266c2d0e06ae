"""monitoring: the objects and kube-prometheus-stack values, rendered by real Ansible from the role's variables.

tasks/render.yml is pure (reads nothing from the cluster); what the API
server and Helm make of its output is tested in tests/integration/test_monitoring.py.
"""
import json
import os

import pytest
import yaml

from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error
from role_render import dumps, render  # pylint: disable=import-error

ROLE = 'llmscale.gpu_serving.monitoring'
FILES = os.path.join(REPO_ROOT, 'roles', 'monitoring', 'files')
CASES = {
    'defaults': {},
    'custom': {
        'monitoring_namespace': 'observability',
        'monitoring_object_labels': {'release': 'prometheus'},
        'monitoring_vllm_namespaces': [],
        'monitoring_vllm_service_selector': {'app.kubernetes.io/name': 'vllm', 'tier': 'serving'},
        'monitoring_dashboard_files': ['gpu-dcgm.json'],
        'monitoring_dashboard_label': 'dashboards',
        'monitoring_dashboard_label_value': 'llm',
        'monitoring_stack_grafana_enabled': False,
        'monitoring_stack_extra_values': {'grafana': {'admin': {'existingSecret': 'grafana-admin'}},
                                          'alertmanager': {'enabled': False}},
    },
    'no_dashboards': {'monitoring_dashboards_enabled': False},
}


@pytest.fixture(scope='module')
def rendered():
    names = sorted(CASES)
    result, out = render(ROLE, 'render.yml', [CASES[n] for n in names],
                         ['__monitoring_objects', '__monitoring_stack_values', '__monitoring_namespace_object'])
    assert result.rc == 0, result.describe()
    return dict(zip(names, out))


def by_kind(objects):
    found = {}
    for obj in objects:
        found.setdefault(obj['kind'], []).append(obj)
    return found


def read(name):
    with open(os.path.join(FILES, name), encoding='utf-8') as handle:
        return handle.read()


def test_default_service_monitor_selects_the_vllm_services_and_sets_job_vllm(rendered):
    objects = by_kind(rendered['defaults']['__monitoring_objects'])
    (monitor,) = objects['ServiceMonitor']
    assert monitor['metadata']['namespace'] == 'monitoring'
    assert monitor['spec']['selector'] == {'matchLabels': {'app.kubernetes.io/name': 'vllm'}}
    assert monitor['spec']['namespaceSelector'] == {'matchNames': ['llm-serving']}
    # The alert VLLMNoTargetUp reads job="vllm", the value of this Service label.
    assert monitor['spec']['jobLabel'] == 'app.kubernetes.io/name'
    assert monitor['spec']['endpoints'] == [{'port': 'http', 'path': '/metrics', 'interval': '15s'}]


def test_prometheus_rule_spec_is_the_rules_file_unchanged(rendered):
    (rule,) = by_kind(rendered['defaults']['__monitoring_objects'])['PrometheusRule']
    assert rule['spec'] == yaml.safe_load(read('vllm-gpu.rules.yml'))
    # Alert templates reach the object as text, not rendered by Ansible.
    annotations = rule['spec']['groups'][0]['rules'][0]['annotations']
    assert '{{ $labels.model_name }}' in annotations['summary']


def test_dashboards_become_configmaps_labelled_for_the_grafana_sidecar(rendered):
    maps = by_kind(rendered['defaults']['__monitoring_objects'])['ConfigMap']
    assert sorted(m['metadata']['name'] for m in maps) == ['llmscale-dashboard-gpu-dcgm', 'llmscale-dashboard-vllm-serving']
    for config_map in maps:
        assert config_map['metadata']['labels']['grafana_dashboard'] == '1'
        ((key, text),) = config_map['data'].items()
        # Kept as the JSON text of the file (Grafana reads a string), not re-serialized.
        assert isinstance(text, str) and json.loads(text) == json.loads(read(key))


def test_custom_labels_namespaces_and_dashboard_label(rendered):
    objects = by_kind(rendered['custom']['__monitoring_objects'])
    (monitor,) = objects['ServiceMonitor']
    assert monitor['metadata']['namespace'] == 'observability'
    assert monitor['metadata']['labels']['release'] == 'prometheus'
    assert monitor['spec']['namespaceSelector'] == {'any': True}
    assert monitor['spec']['selector']['matchLabels'] == {'app.kubernetes.io/name': 'vllm', 'tier': 'serving'}
    assert objects['PrometheusRule'][0]['metadata']['labels']['release'] == 'prometheus'
    (dashboard,) = objects['ConfigMap']
    assert dashboard['metadata']['labels']['dashboards'] == 'llm'
    assert 'grafana_dashboard' not in dashboard['metadata']['labels']


def test_the_namespace_carries_the_pod_security_labels_the_node_exporter_needs(rendered):
    namespace = rendered['defaults']['__monitoring_namespace_object']
    assert namespace['metadata']['name'] == 'monitoring'
    assert namespace['metadata']['labels']['pod-security.kubernetes.io/enforce'] == 'privileged'


def test_no_dashboards_when_turned_off(rendered):
    assert 'ConfigMap' not in by_kind(rendered['no_dashboards']['__monitoring_objects'])


def test_stack_values_select_every_monitor_and_rule_and_point_the_sidecar_at_the_label(rendered):
    values = rendered['defaults']['__monitoring_stack_values']
    assert values['prometheus']['prometheusSpec'] == {'serviceMonitorSelectorNilUsesHelmValues': False,
                                                      'podMonitorSelectorNilUsesHelmValues': False,
                                                      'ruleSelectorNilUsesHelmValues': False}
    assert values['grafana'] == {'enabled': True, 'sidecar': {'dashboards': {
        'enabled': True, 'label': 'grafana_dashboard', 'labelValue': '1', 'searchNamespace': 'ALL'}}}


def test_stack_extra_values_merge_recursively(rendered):
    values = rendered['custom']['__monitoring_stack_values']
    assert values['grafana']['enabled'] is False
    assert values['grafana']['admin'] == {'existingSecret': 'grafana-admin'}
    assert values['grafana']['sidecar']['dashboards']['label'] == 'dashboards', dumps(values)
    assert values['alertmanager'] == {'enabled': False}


BAD_VARIABLES = [
    ({'monitoring_prometheus_operator': 'maybe'}, 'monitoring_prometheus_operator'),
    ({'monitoring_vllm_service_selector': {}}, 'monitoring_vllm_service_selector'),
    ({'monitoring_stack_chart_path': 'relative/missing-chart'}, 'monitoring_stack_chart_path'),
    ({'monitoring_stack_chart_version': ''}, 'monitoring_stack_chart_version'),
    ({'monitoring_dashboard_files': ['a/x.json', 'b/x.json']}, 'monitoring_dashboard_files'),
    ({'monitoring_stack_wait_timeout': 'soon'}, 'monitoring_stack_wait_timeout'),
]


@pytest.mark.parametrize('extra_vars, variable', BAD_VARIABLES, ids=[v for _e, v in BAD_VARIABLES])
def test_bad_variables_fail_before_any_cluster_call_naming_the_variable(tmp_path, extra_vars, variable):
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump([{'name': 'Monitoring', 'hosts': 'localhost', 'gather_facts': False,
                                         'roles': [{'role': ROLE}]}]))
    result = run_playbook(str(playbook), extra_vars=extra_vars, env={'KUBECONFIG': str(tmp_path / 'none')})
    assert result.rc != 0
    assert variable in ' '.join(result.failure_messages()), result.describe()
    ran = [name for name, _host, _result in result.task_results()]
    assert not any(name.startswith(('Look for', 'Create the', 'Install or upgrade', 'Apply')) for name in ran), ran
