"""The autoscaling role's HPA, ScaledObject and prometheus-adapter values,
rendered by the role itself.

The PromQL the adapter and KEDA will run is evaluated by Prometheus's own
engine (promtool test rules) on series shaped like vLLM's, so a wrong label or
metric name fails here. The HPA object itself is applied to the real control
plane in tests/integration/test_serving.py.
"""
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from serving_render import kubernetes_schema_version, render_cases, validation_messages  # pylint: disable=import-error

FACTS = ['__autoscaling_plan', '__autoscaling_adapter_values']
BASE_VARS = {'vllm_served_model_name': 'qwen3-8b', 'vllm_namespace': 'llm-serving', 'vllm_name': 'vllm-server'}
BEHAVIOR = {
    'scaleUp': {'stabilizationWindowSeconds': 60, 'selectPolicy': 'Max',
                'policies': [{'type': 'Percent', 'value': 100, 'periodSeconds': 60}]},
    'scaleDown': {'stabilizationWindowSeconds': 300, 'selectPolicy': 'Max',
                  'policies': [{'type': 'Percent', 'value': 50, 'periodSeconds': 60}]},
}


# Demand in front of vLLM, as an Envoy Gateway's Prometheus metrics give it for the route's backend.
WAKE_QUERY = 'sum(rate(envoy_cluster_upstream_rq_total{envoy_cluster_name=~".*vllm-server.*"}[1m]))'

# Rendered in one ansible-playbook run: (name, variables over BASE_VARS).
CASES = [
    ('queue', {'autoscaling_mode': 'prometheus_adapter'}),
    ('resource-cost', {'autoscaling_mode': 'resource', 'autoscaling_profile': 'cost', 'autoscaling_max_replicas': 6}),
    ('queue-cost', {'autoscaling_mode': 'prometheus_adapter', 'autoscaling_profile': 'cost', 'autoscaling_max_replicas': 6}),
    ('keda', {}),
    ('keda-zero', {'autoscaling_min_replicas': '0', 'autoscaling_keda_activation_waiting_requests': '2',
                   'autoscaling_keda_wake_query': WAKE_QUERY, 'autoscaling_keda_wake_threshold': '0.5'}),
    ('none', {'autoscaling_mode': 'none'}),
]


@pytest.fixture(scope='module')
def rendered():
    """{case name: (autoscaler object, prometheus-adapter values)}."""
    results = render_cases('autoscaling', [dict(BASE_VARS, **variables) for _name, variables in CASES], FACTS)
    return {name: ((facts['__autoscaling_plan']['objects'] or [None])[0], facts['__autoscaling_adapter_values'])
            for (name, _variables), facts in zip(CASES, results)}


@pytest.fixture(scope='module')
def queue_mode(rendered):
    return rendered['queue']


def test_queue_hpa_scales_on_waiting_requests_per_pod(queue_mode):
    hpa, _values = queue_mode
    kubernetes_validate.validate(hpa, kubernetes_schema_version(), strict=True)
    assert hpa['apiVersion'] == 'autoscaling/v2'
    spec = hpa['spec']
    assert spec['scaleTargetRef'] == {'apiVersion': 'apps/v1', 'kind': 'StatefulSet', 'name': 'vllm-server'}
    assert (spec['minReplicas'], spec['maxReplicas']) == (1, 4)
    assert spec['metrics'] == [{'type': 'Pods', 'pods': {
        'metric': {'name': 'vllm_num_requests_waiting'},
        'target': {'type': 'AverageValue', 'averageValue': '5'}}}]
    assert spec['behavior'] == BEHAVIOR


def test_resource_mode_and_cost_profile(rendered):
    hpa, _values = rendered['resource-cost']
    kubernetes_validate.validate(hpa, kubernetes_schema_version(), strict=True)
    spec = hpa['spec']
    assert spec['maxReplicas'] == 2
    targets = {metric['resource']['name']: metric['resource']['target']['averageUtilization'] for metric in spec['metrics']}
    assert targets == {'cpu': 85, 'memory': 90}
    hpa, _values = rendered['queue-cost']
    assert hpa['spec']['maxReplicas'] == 2
    assert hpa['spec']['metrics'][0]['pods']['target']['averageValue'] == '10'


def test_keda_scaled_object_queries_the_served_model(rendered):
    scaled, _values = rendered['keda']
    assert scaled['apiVersion'] == 'keda.sh/v1alpha1' and scaled['kind'] == 'ScaledObject'
    spec = scaled['spec']
    assert spec['scaleTargetRef']['name'] == 'vllm-server'
    assert (spec['minReplicaCount'], spec['maxReplicaCount']) == (1, 4)
    assert spec['advanced']['horizontalPodAutoscalerConfig']['behavior'] == BEHAVIOR
    trigger = spec['triggers'][0]
    assert trigger['type'] == 'prometheus' and trigger['metricType'] == 'AverageValue'
    assert trigger['metadata']['threshold'] == '5'
    assert trigger['metadata']['serverAddress'] == 'http://kube-prometheus-stack-prometheus.monitoring.svc:9090'
    assert trigger['metadata']['query'] == 'sum(vllm:num_requests_waiting{namespace="llm-serving",model_name="qwen3-8b"})'
    assert trigger['metadata']['activationThreshold'] == '0'


def test_keda_scales_to_zero_and_wakes_on_the_activation_threshold(rendered):
    scaled, _values = rendered['keda-zero']
    assert scaled['spec']['minReplicaCount'] == 0
    queue, wake = scaled['spec']['triggers']
    assert queue['metadata']['activationThreshold'] == '2'
    assert wake['metadata']['query'] == WAKE_QUERY and wake['metadata']['activationThreshold'] == '0.5'
    # The wake trigger never asks for a second replica: only the queue scales.
    assert float(wake['metadata']['threshold']) >= 1e9 and wake['metricType'] == 'AverageValue'
    # Without scale to zero there is no wake trigger.
    assert len(rendered['keda'][0]['spec']['triggers']) == 1


def test_mode_none_renders_no_autoscaler_but_still_prunes_ours(rendered):
    scaled, _values = rendered['none']
    assert scaled is None
    results = render_cases('autoscaling', [dict(BASE_VARS, autoscaling_mode='none')], FACTS)
    (prune,) = results[0]['__autoscaling_plan']['prune']
    assert prune['label_selector'] == 'llmscale.io/owner=autoscaling.vllm-server'
    assert {kind['kind'] for kind in prune['kinds']} == {'HorizontalPodAutoscaler', 'ScaledObject'}


def test_adapter_values_expose_only_the_vllm_queue_rule(queue_mode):
    _hpa, values = queue_mode
    assert values['prometheus'] == {'url': 'http://kube-prometheus-stack-prometheus.monitoring.svc', 'port': 9090}
    assert values['rules']['default'] is False
    (rule,) = values['rules']['custom']
    assert rule['name'] == {'matches': '^vllm:num_requests_waiting$', 'as': 'vllm_num_requests_waiting'}
    assert rule['resources'] == {'overrides': {'namespace': {'resource': 'namespace'}, 'pod': {'resource': 'pod'}}}


def _promtool_test(tmp_path, input_series, expr_tests):
    tests = {'rule_files': [], 'evaluation_interval': '1m', 'tests': [{
        'interval': '1m', 'input_series': input_series, 'promql_expr_test': expr_tests}]}
    path = tmp_path / 'promql_test.yml'
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    return subprocess.run([shutil.which('promtool'), 'test', 'rules', str(path)], capture_output=True, text=True,
                          check=False, timeout=120)


# Series as Prometheus stores them after scraping vLLM through the ServiceMonitor:
# model_name and engine from vLLM, namespace and pod from the scrape.
VLLM_SERIES = [
    {'series': 'vllm:num_requests_waiting{namespace="llm-serving",pod="vllm-a",model_name="qwen3-8b",engine="0"}',
     'values': '3x5'},
    {'series': 'vllm:num_requests_waiting{namespace="llm-serving",pod="vllm-a",model_name="qwen3-8b",engine="1"}',
     'values': '4x5'},
    {'series': 'vllm:num_requests_waiting{namespace="llm-serving",pod="vllm-b",model_name="qwen3-8b",engine="0"}',
     'values': '2x5'},
    {'series': 'vllm:num_requests_waiting{namespace="llm-serving",pod="other-c",model_name="llama",engine="0"}',
     'values': '9x5'},
]


@pytest.mark.skipif(shutil.which('promtool') is None, reason='promtool comes with apt prometheus (make setup)')
def test_adapter_and_keda_promql_select_the_right_series(tmp_path, rendered):
    _hpa, values = rendered['queue']
    (rule,) = values['rules']['custom']
    # What prometheus-adapter sends for `kubectl get --raw .../pods/*/vllm_num_requests_waiting` on two pods.
    adapter_query = (rule['metricsQuery'].replace('<<.Series>>', 'vllm:num_requests_waiting')
                     .replace('<<.LabelMatchers>>', 'namespace="llm-serving",pod=~"vllm-a|vllm-b"')
                     .replace('<<.GroupBy>>', 'pod'))
    scaled, _values = rendered['keda']
    keda_query = scaled['spec']['triggers'][0]['metadata']['query']
    proc = _promtool_test(tmp_path, VLLM_SERIES, [
        {'expr': 'count(%s)' % rule['seriesQuery'], 'eval_time': '2m', 'exp_samples': [{'labels': '{}', 'value': 4}]},
        {'expr': adapter_query, 'eval_time': '2m', 'exp_samples': [
            {'labels': '{pod="vllm-a"}', 'value': 7}, {'labels': '{pod="vllm-b"}', 'value': 2}]},
        {'expr': keda_query, 'eval_time': '2m', 'exp_samples': [{'labels': '{}', 'value': 9}]},
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which('promtool') is None, reason='promtool comes with apt prometheus (make setup)')
def test_promtool_check_fails_on_a_wrong_expectation(tmp_path):
    """The promtool harness above can fail: a wrong per-pod sum is reported."""
    proc = _promtool_test(tmp_path, VLLM_SERIES, [
        {'expr': 'sum(vllm:num_requests_waiting{pod="vllm-a"}) by (pod)', 'eval_time': '2m',
         'exp_samples': [{'labels': '{pod="vllm-a"}', 'value': 3}]}])
    assert proc.returncode != 0


@pytest.mark.parametrize('overrides, variable', [
    ({'autoscaling_min_replicas': 3, 'autoscaling_max_replicas': 2}, 'autoscaling_min_replicas'),
    ({'autoscaling_mode': 'resource', 'autoscaling_min_replicas': 0}, 'autoscaling_min_replicas'),
    ({'autoscaling_max_replicas': '4x'}, 'autoscaling_max_replicas'),
    ({'autoscaling_profile': 'cost', 'autoscaling_min_replicas': 3, 'autoscaling_max_replicas': 5}, 'autoscaling_cost_max_replicas'),
    ({'autoscaling_mode': 'cpu'}, 'autoscaling_mode'),
    ({'autoscaling_scale_down_period_seconds': 3600}, 'autoscaling_scale_'),
    ({'autoscaling_cpu_target_utilization': 0}, 'autoscaling_*_target_utilization'),
    ({'autoscaling_keda_activation_waiting_requests': '-1'}, 'autoscaling_keda_activation_waiting_requests'),
    ({'autoscaling_min_replicas': '0'}, 'autoscaling_keda_wake_query'),
    ({'autoscaling_keda_wake_threshold': 'lots'}, 'autoscaling_keda_wake_threshold'),
])
def test_bad_variables_fail_naming_the_variable(overrides, variable):
    # The pure checks only: KEDA's CRD is looked for in the cluster by tasks/plan.yml (tests/integration).
    assert variable in validation_messages('autoscaling', dict(BASE_VARS, **overrides))
