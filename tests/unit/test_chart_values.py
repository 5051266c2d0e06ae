"""The values our roles render, checked against the real pinned charts (no cluster).

For each chart the roles install (GPU Operator v26.7.0, kube-prometheus-stack 88.5.3,
prometheus-adapter 5.3.0, KEDA 2.20.2): every key we set exists in the chart's values.yaml
or is read by its templates, the values pass the chart's values.schema.json where it has one
(the GPU Operator's node-feature-discovery sub-chart has), and `helm template` of the real
archive with the pinned helm renders what the role's variables asked for. The archives come
from tests/real_charts.py (LLMSCALE_CHARTS_DIR, ../shared/charts, or a pull); without any,
these tests are skipped, saying so.
"""
import os

import pytest
import yaml

from dcgm_counters import COUNTERS_FILE  # pylint: disable=import-error
from real_charts import helm_template, label_selector_matches, schema_errors, unpacked  # pylint: disable=import-error
from role_render import dumps, render  # pylint: disable=import-error

GPU_CASES = {
    'defaults': {},
    'operator_driver_time_slicing': {'gpu_operator_driver_enabled': True, 'gpu_operator_toolkit_enabled': True,
                                     'gpu_operator_mig_strategy': 'mixed', 'gpu_operator_time_slicing_replicas': 4},
}


@pytest.fixture(scope='module')
def gpu_values():
    names = sorted(GPU_CASES)
    result, out = render('llmscale.gpu_serving.gpu_operator', 'values.yml', [GPU_CASES[n] for n in names],
                         ['__gpu_operator_values'])
    assert result.rc == 0, result.describe()
    return {name: values['__gpu_operator_values'] for name, values in zip(names, out)}


@pytest.fixture(scope='module')
def monitoring_rendered():
    result, (out,) = render('llmscale.gpu_serving.monitoring', 'render.yml', [{}],
                            ['__monitoring_stack_values', '__monitoring_objects', '__monitoring_namespace_object'])
    assert result.rc == 0, result.describe()
    return out


@pytest.fixture(scope='module')
def adapter_values():
    result, (out,) = render('llmscale.gpu_serving.autoscaling', 'render.yml',
                            [{'autoscaling_mode': 'prometheus_adapter'}], ['__autoscaling_adapter_values'])
    assert result.rc == 0, result.describe()
    return out['__autoscaling_adapter_values']


def of_kind(objects, kind, name=None):
    found = [o for o in objects if o.get('kind') == kind and (name is None or o['metadata']['name'] == name)]
    assert found, 'helm template rendered no %s %s (kinds: %s)' % (kind, name or '', sorted({o['kind'] for o in objects}))
    return found


def test_the_key_check_catches_what_the_real_chart_does_not_have():
    chart = unpacked('gpu-operator')
    # operator.defaultRuntime left the chart in v25.3.0 (the operator reads each node's runtime).
    assert chart.unknown_keys({'operator': {'defaultRuntime': 'containerd'}}) == ['operator.defaultRuntime']
    assert chart.unknown_keys({'dcgmExporter': {'serviceMonitr': {'enabled': True}}}) == ['dcgmExporter.serviceMonitr']
    # Keys values.yaml only shows in a comment but the templates read are real.
    assert chart.unknown_keys({'dcgmExporter': {'config': {'name': 'x', 'create': True, 'data': 'y'}}}) == []
    # Sub-charts are checked against their own values.yaml.
    assert chart.unknown_keys({'node-feature-discovery': {'nonsense': 1}}) == ['node-feature-discovery.nonsense']


def test_the_schema_check_catches_a_value_the_sub_chart_schema_refuses():
    chart = unpacked('gpu-operator')
    assert chart.subcharts['node-feature-discovery'].schema_path, 'the NFD sub-chart ships values.schema.json'
    assert schema_errors(chart, {'node-feature-discovery': {'master': {'replicaCount': 'two'}}})


@pytest.mark.parametrize('case', sorted(GPU_CASES))
def test_gpu_operator_values_exist_in_the_real_chart_and_pass_its_schemas(gpu_values, case):
    chart = unpacked('gpu-operator')
    assert chart.unknown_keys(gpu_values[case]) == [], dumps(gpu_values[case])
    assert schema_errors(chart, gpu_values[case]) == []


def test_gpu_operator_chart_renders_the_cluster_policy_our_variables_ask_for(gpu_values):
    objects = helm_template('gpu-operator', gpu_values['defaults'], 'gpu-operator', 'gpu-operator')
    (policy,) = of_kind(objects, 'ClusterPolicy')
    spec = policy['spec']
    assert policy['metadata']['name'] == 'cluster-policy'
    # The host roles own the driver and the toolkit by default.
    assert spec['driver']['enabled'] is False and spec['toolkit']['enabled'] is False
    assert spec['mig'] == {'strategy': 'single'}
    assert 'defaultRuntime' not in spec['operator']
    exporter = spec['dcgmExporter']
    assert exporter['enabled'] is True and exporter['config'] == {'name': 'gpu-operator-dcgm-metrics'}
    assert exporter['serviceMonitor']['enabled'] is True and exporter['serviceMonitor']['interval'] == '15s'
    (counters,) = of_kind(objects, 'ConfigMap', 'gpu-operator-dcgm-metrics')
    with open(COUNTERS_FILE, encoding='utf-8') as handle:
        assert counters['data']['dcgm-metrics.csv'].strip() == handle.read().strip()
    # No time-slicing asked for: the device plugin keeps its built-in config.
    assert not spec['devicePlugin'].get('config', {}).get('name')


def test_gpu_operator_chart_renders_operator_driver_mig_and_time_slicing(gpu_values):
    objects = helm_template('gpu-operator', gpu_values['operator_driver_time_slicing'], 'gpu-operator', 'gpu-operator')
    (policy,) = of_kind(objects, 'ClusterPolicy')
    spec = policy['spec']
    assert spec['driver']['enabled'] is True and spec['toolkit']['enabled'] is True
    assert spec['mig'] == {'strategy': 'mixed'}
    assert spec['devicePlugin']['config'] == {'name': 'gpu-operator-time-slicing', 'default': 'any'}
    (slicing,) = of_kind(objects, 'ConfigMap', 'gpu-operator-time-slicing')
    sharing = yaml.safe_load(slicing['data']['any'])
    assert sharing['flags'] == {'migStrategy': 'mixed'}
    assert sharing['sharing']['timeSlicing']['resources'] == [{'name': 'nvidia.com/gpu', 'replicas': 4}]


def test_kube_prometheus_stack_values_exist_in_the_real_chart(monitoring_rendered):
    chart = unpacked('kube-prometheus-stack')
    values = monitoring_rendered['__monitoring_stack_values']
    assert chart.unknown_keys(values) == [], dumps(values)
    assert schema_errors(chart, values) == []


def test_the_real_prometheus_and_grafana_select_our_monitor_rule_and_dashboards(monitoring_rendered):
    objects = helm_template('kube-prometheus-stack', monitoring_rendered['__monitoring_stack_values'],
                            'kube-prometheus-stack', 'monitoring')
    (prometheus,) = of_kind(objects, 'Prometheus')
    spec = prometheus['spec']
    ours = {o['kind']: o for o in monitoring_rendered['__monitoring_objects']}
    namespace_labels = dict(monitoring_rendered['__monitoring_namespace_object']['metadata']['labels'],
                            **{'kubernetes.io/metadata.name': 'monitoring'})
    for kind, selector, namespace_selector in [('ServiceMonitor', 'serviceMonitorSelector', 'serviceMonitorNamespaceSelector'),
                                               ('PrometheusRule', 'ruleSelector', 'ruleNamespaceSelector')]:
        labels = ours[kind]['metadata']['labels']
        assert label_selector_matches(spec.get(selector), labels), (kind, spec.get(selector), labels)
        assert label_selector_matches(spec.get(namespace_selector), namespace_labels), (kind, spec.get(namespace_selector))
    # The DCGM exporter's ServiceMonitor (in the GPU Operator's namespace, created by the operator) too.
    assert label_selector_matches(spec['serviceMonitorSelector'], {'app': 'nvidia-dcgm-exporter'})
    assert spec['serviceMonitorNamespaceSelector'] == {}

    (grafana,) = of_kind(objects, 'Deployment', 'kube-prometheus-stack-grafana')
    containers = {c['name']: c for c in grafana['spec']['template']['spec']['containers']}
    env = {e['name']: e.get('value') for e in containers['grafana-sc-dashboard']['env']}
    assert env['NAMESPACE'] == 'ALL'
    for dashboard in [o for o in monitoring_rendered['__monitoring_objects'] if o['kind'] == 'ConfigMap']:
        assert dashboard['metadata']['labels'].get(env['LABEL']) == env['LABEL_VALUE'], dashboard['metadata']


def test_prometheus_adapter_values_exist_in_the_real_chart_and_render_the_vllm_rule(adapter_values):
    chart = unpacked('prometheus-adapter')
    assert chart.unknown_keys(adapter_values) == [], dumps(adapter_values)
    objects = helm_template('prometheus-adapter', adapter_values, 'prometheus-adapter', 'monitoring')
    (config,) = of_kind(objects, 'ConfigMap', 'prometheus-adapter')
    (rule,) = yaml.safe_load(config['data']['config.yaml'])['rules']
    assert rule['name'] == {'matches': '^vllm:num_requests_waiting$', 'as': 'vllm_num_requests_waiting'}
    assert rule['resources'] == {'overrides': {'namespace': {'resource': 'namespace'}, 'pod': {'resource': 'pod'}}}
    (deployment,) = of_kind(objects, 'Deployment', 'prometheus-adapter')
    args = deployment['spec']['template']['spec']['containers'][0]['args']
    assert '--prometheus-url=http://kube-prometheus-stack-prometheus.monitoring.svc:9090' in args, args


def test_keda_chart_renders_its_crds_and_operator():
    objects = helm_template('keda', {}, 'keda', 'keda')
    crds = {o['metadata']['name'] for o in of_kind(objects, 'CustomResourceDefinition')}
    assert 'scaledobjects.keda.sh' in crds
    assert of_kind(objects, 'Deployment', 'keda-operator')
    assert os.path.basename(unpacked('keda').root) == 'keda'
