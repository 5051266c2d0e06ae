"""Gated rollouts: the PromQL of the gates, the decisions from Prometheus' answers, where a run starts."""
import json
import os
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.llmscale.gpu_serving.plugins.module_utils import rollout
from vllm_metrics import VLLM_COUNTERS, VLLM_HISTOGRAMS, VLLM_LABELS  # pylint: disable=import-error

STABLE = {'name': 'vllm-server', 'service_name': 'vllm-server', 'service_port': 80, 'served_model_name': 'qwen3-8b'}
CANARY = {'name': 'vllm-next', 'service_name': 'vllm-next', 'service_port': 80, 'served_model_name': 'qwen3-8b-next'}
LIMITS = {'min_requests': 20, 'max_error_ratio': 0.01, 'max_error_ratio_increase': 0.005, 'max_ttft_seconds': 2.0,
          'max_itl_seconds': 0.2, 'max_queue_time_seconds': 5.0, 'max_latency_ratio': 1.25,
          'latency_margin_seconds': 0.05, 'quantile': 0.95}
REQUEST = {'mode': 'canary', 'steps': [5, 25, 50, 100], 'stable': STABLE, 'canary': CANARY, 'abort': False,
           'backends': [], 'rules': []}
PROMTOOL = shutil.which('promtool') or '/usr/bin/promtool'


def good_values(**changes):
    values = {'stable.requests': 1000.0, 'stable.errors': 2.0, 'stable.ttft': 0.4, 'stable.itl': 0.03,
              'stable.queue_time': 0.1, 'canary.requests': 60.0, 'canary.errors': 0.0, 'canary.ttft': 0.42,
              'canary.itl': 0.031, 'canary.queue_time': 0.12}
    values.update(changes)
    return values


def test_queries_use_only_vllm_names_and_labels_and_select_each_workload_by_its_pods():
    found = rollout.queries('llm-serving', {'stable': STABLE, 'canary': CANARY}, '2m', 0.95)
    assert set(found) == {'%s.%s' % (side, what) for side in ('stable', 'canary')
                          for what in ('requests', 'errors', 'ttft', 'itl', 'queue_time')}
    assert found['canary.ttft'] == ('histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket'
                                    '{namespace="llm-serving",pod=~"vllm-next-[0-9]+",model_name="qwen3-8b-next"}[2m])))')
    assert 'finished_reason="error"' in found['stable.errors'] and 'pod=~"vllm-server-[0-9]+"' in found['stable.errors']
    for _gate, histogram, _text in rollout.LATENCY_GATES:
        assert histogram in VLLM_HISTOGRAMS
    assert rollout.REQUESTS_METRIC in VLLM_COUNTERS
    assert 'finished_reason' in VLLM_LABELS and 'model_name' in VLLM_LABELS


def test_the_queries_are_valid_promql(tmp_path):
    """Prometheus's own parser (promtool check rules) reads each query; the integration test runs them on 3.16."""
    if not os.path.exists(PROMTOOL):
        pytest.skip('no promtool')
    queries = rollout.queries('ns', {'stable': STABLE, 'canary': CANARY}, '30s', 0.9)
    recorded = [{'record': 'rollout:%s' % key.replace('.', '_'), 'expr': expr} for key, expr in sorted(queries.items())]
    rules = {'groups': [{'name': 'rollout', 'rules': recorded}]}
    path = tmp_path / 'rules.yml'
    path.write_text(yaml.safe_dump(rules), encoding='utf-8')
    proc = subprocess.run([PROMTOOL, 'check', 'rules', str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0 and 'SUCCESS: 10 rules found' in proc.stdout, proc.stdout + proc.stderr


def test_label_values_are_escaped():
    assert rollout.series_selector('ns', 'w', 'a"b\\c') == '{namespace="ns",pod=~"w-[0-9]+",model_name="a\\"b\\\\c"}'


@pytest.mark.parametrize('answer, value', [
    ({'status': 'success', 'data': {'resultType': 'vector', 'result': [{'metric': {}, 'value': [1764600000.1, '0.42']}]}}, 0.42),
    ({'status': 'success', 'data': {'resultType': 'vector', 'result': [{'metric': {}, 'value': [1764600000.1, 'NaN']}]}}, None),
    ({'status': 'success', 'data': {'resultType': 'vector', 'result': []}}, None),
    ({'status': 'success', 'data': {'resultType': 'scalar', 'result': [1764600000.1, '3']}}, 3.0),
    ({'status': 'error', 'errorType': 'bad_data', 'error': 'parse error'}, None),
    (None, None),
])
def test_prometheus_answers_become_numbers_or_none(answer, value):
    assert rollout.query_value(answer) == value


def test_a_healthy_canary_passes_every_gate():
    verdict = rollout.evaluate(good_values(), LIMITS)
    assert verdict['passed'] and verdict['failed'] == []
    assert [gate['gate'] for gate in verdict['gates']] == ['traffic', 'error_ratio', 'ttft', 'itl', 'queue_time']


@pytest.mark.parametrize('changes, failed, words', [
    ({'canary.errors': 3.0}, ['error_ratio'], 'canary 5.00% > limit 1.00%'),
    ({'canary.ttft': 2.5}, ['ttft'], 'canary 2.500s > limit 2.000s'),
    # Within the absolute limit, but 1.25 x the stable one + 0.05 s is 0.55 s.
    ({'canary.ttft': 0.6}, ['ttft'], 'canary 0.600s > stable 0.400s x 1.25 + 0.050s'),
    ({'canary.itl': 0.15}, ['itl'], 'stable 0.030s'),
    ({'canary.queue_time': None}, ['queue_time'], 'no canary observations'),
    ({'canary.requests': 5.0}, ['traffic'], '5 canary requests'),
    ({'canary.requests': None, 'canary.errors': None, 'canary.ttft': None, 'canary.itl': None, 'canary.queue_time': None},
     ['traffic', 'error_ratio', 'ttft', 'itl', 'queue_time'], 'no data'),
])
def test_a_bad_canary_fails_the_gate_that_saw_it(changes, failed, words):
    verdict = rollout.evaluate(good_values(**changes), LIMITS)
    assert not verdict['passed'] and verdict['failed'] == failed
    assert words in ' '.join(gate['why'] for gate in verdict['gates'] if not gate['ok'])


def test_error_ratio_relative_to_the_stable_one():
    # 0.8 % is below the absolute 1 %, but 0.6 points above the stable 0.2 % (allowed: 0.5).
    verdict = rollout.evaluate(good_values(**{'canary.requests': 1000.0, 'canary.errors': 8.0}), LIMITS)
    assert verdict['failed'] == ['error_ratio']


def test_without_stable_traffic_only_the_absolute_limits_apply():
    values = good_values(**{'stable.requests': None, 'stable.errors': None, 'stable.ttft': None, 'stable.itl': None,
                            'stable.queue_time': None, 'canary.ttft': 1.5})
    assert rollout.evaluate(values, LIMITS)['passed']


def test_backends_split_the_route_in_percent():
    assert rollout.backends(STABLE, CANARY, 25) == [{'name': 'vllm-server', 'port': 80, 'weight': 75},
                                                    {'name': 'vllm-next', 'port': 80, 'weight': 25}]


def state(phase, weight, canary=None, stable=None, **extra):
    request = dict(REQUEST, canary=canary or CANARY, stable=stable or STABLE)
    recorded = rollout.new_state(request, phase, weight, REQUEST['steps'].index(weight) if weight in REQUEST['steps'] else 0,
                                 rollout.backends(request['stable'], request['canary'], weight),
                                 [{'step': 1, 'weight': 5, 'passed': True, 'failed': [], 'gates': {}}])
    recorded.update(extra)
    return recorded


def test_nothing_recorded_starts_at_the_first_step():
    assert rollout.decide(None, REQUEST)['action'] == 'start'
    assert rollout.decide(None, REQUEST)['step_index'] == 0


def test_an_interrupted_rollout_resumes_at_its_recorded_step_with_its_history():
    decision = rollout.decide(state('in_progress', 50), REQUEST)
    assert (decision['action'], decision['step_index']) == ('resume', 2)
    assert decision['history'][0]['step'] == 1
    # Steps changed since: the first step at or above the recorded weight.
    decision = rollout.decide(state('in_progress', 50), dict(REQUEST, steps=[10, 60, 100]))
    assert (decision['action'], decision['step_index']) == ('resume', 1)


@pytest.mark.parametrize('phase', ['promoted', 'rolled_back'])
def test_a_finished_rollout_of_the_same_canary_is_done(phase):
    decision = rollout.decide(state(phase, 0), REQUEST)
    assert decision['action'] == 'done' and decision['history'] == []


def test_another_canary_while_one_is_in_progress_is_blocked_with_what_to_do():
    other = dict(CANARY, name='vllm-other')
    decision = rollout.decide(state('in_progress', 25, canary=other), REQUEST)
    assert decision['action'] == 'blocked' and 'rollout_canary_name: vllm-other' in decision['message']


def test_a_new_canary_after_a_finished_one_starts():
    other = dict(CANARY, name='vllm-other')
    assert rollout.decide(state('rolled_back', 0, canary=other), REQUEST)['action'] == 'start'
    assert rollout.decide(state('promoted', 0, canary=other), REQUEST)['action'] == 'start'


def test_abort_rolls_back_only_an_unfinished_rollout():
    aborting = dict(REQUEST, abort=True)
    assert rollout.decide(state('in_progress', 25), aborting)['action'] == 'rollback'
    assert rollout.decide(state('promoted', 0), aborting)['action'] == 'done'
    assert rollout.decide(None, aborting)['action'] == 'done'


def test_an_ab_split_in_place_is_done_and_a_changed_one_is_set_again():
    backends = rollout.backends(STABLE, CANARY, 50)
    ab = dict(REQUEST, mode='ab', backends=backends)
    recorded = rollout.new_state(ab, 'ab', 50, 0, backends, [])
    assert rollout.decide(recorded, ab)['action'] == 'done'
    assert rollout.decide(recorded, dict(ab, backends=rollout.backends(STABLE, CANARY, 20)))['action'] == 'start'


def test_the_state_round_trips_through_the_config_map_and_has_no_timestamps():
    recorded = state('in_progress', 25)
    config_map = {'data': {'state': json.dumps(recorded, sort_keys=True)}}
    assert rollout.parse_state([config_map]) == recorded
    assert rollout.parse_state([]) is None
    assert rollout.parse_state([{'data': {'state': '{not json'}}]) is None
    assert rollout.parse_state([{'data': {'state': json.dumps({'version': 99})}}]) is None
    assert rollout.new_state(REQUEST, 'in_progress', 25, 1, [], []) == rollout.new_state(REQUEST, 'in_progress', 25, 1, [], [])


def test_the_report_names_the_failed_gate_and_its_numbers():
    verdict = rollout.evaluate(good_values(**{'canary.ttft': 3.0}), LIMITS)
    recorded = rollout.new_state(REQUEST, 'rolled_back', 0, 1, rollout.backends(STABLE, CANARY, 0),
                                 [rollout.history_entry(1, 25, verdict)], verdict['gates'], 'rolled back at step 2')
    text = rollout.report_markdown(recorded)
    assert text.startswith('# Rollout: rolled back')
    assert '| ttft | p95 time to first token | 3.000s | 0.400s | 2.000s | FAILED: canary 3.000s > limit 2.000s' in text
    assert '- step 2 (25%): failed ttft' in text
    assert 'vllm-server:80=100, vllm-next:80=0' in text


def test_promotions_are_carried_and_a_serving_run_that_undoes_them_is_named():
    promoted = {'phase': 'promoted'}
    first = rollout.stable_vars(None, promoted, {'vllm_model': 'Qwen/Qwen3-1.7B'})
    assert first == {'vllm_model': 'Qwen/Qwen3-1.7B'}
    # A later rollout that is rolled back keeps what the earlier promotion changed; another promotion adds to it.
    assert rollout.stable_vars({'stable_vars': first}, {'phase': 'rolled_back'}, {'vllm_model': 'bad'}) == first
    assert rollout.stable_vars({'stable_vars': first}, promoted, {'vllm_image_tag': 'v0.34.0'}) == {
        'vllm_model': 'Qwen/Qwen3-1.7B', 'vllm_image_tag': 'v0.34.0'}
    state = {'stable_vars': {'vllm_model': 'Qwen/Qwen3-1.7B', 'vllm_tensor_parallel_size': '2',
                             'vllm_extra_args': ['--enable-prefix-caching']}}
    same = {'model': 'Qwen/Qwen3-1.7B', 'tensor_parallel_size': 2, 'extra_args': ['--enable-prefix-caching']}
    # -e strings and converted settings compare equal.
    assert rollout.reverted_vars(state, same) == []
    assert rollout.reverted_vars(state, dict(same, model='Qwen/Qwen3-0.6B')) == [
        'vllm_model: promoted "Qwen/Qwen3-1.7B", this run "Qwen/Qwen3-0.6B"']
    assert rollout.reverted_vars(None, same) == [] and rollout.reverted_vars({}, same) == []
