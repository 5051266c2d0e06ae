# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model rollouts gated on vLLM's own serving metrics: the PromQL, the gate decisions and the state machine.

Pure functions (no cluster, no network): roles/rollout renders the queries with them, sends them to Prometheus
through ansible.builtin.uri (the one Prometheus client of the collection, as roles/diagnose does), and decides
from the answers here. The rollout's state lives in the cluster (ConfigMap <vllm_name>-rollout, data key
`state`, JSON); `decide` tells from it where a run starts, so a finished rollout changes nothing and an
interrupted one continues from its recorded step.

vLLM 0.33 names (tests/vllm_metrics.py, from vllm/v1/metrics/loggers.py): every series carries model_name and
engine; vllm:request_success_total also finished_reason, one of vLLM's FINISH_REASON_STRINGS (stop, length,
abort, error, repetition). "error" is what the engine counts as a failed request; "abort" is mostly clients
that went away, so it is not an error of the model.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import math

STATE_VERSION = 1
REQUESTS_METRIC = 'vllm:request_success_total'
ERROR_REASON = 'error'
# gate id -> (histogram, what the report calls it)
LATENCY_GATES = (
    ('ttft', 'vllm:time_to_first_token_seconds', 'time to first token'),
    ('itl', 'vllm:inter_token_latency_seconds', 'inter-token latency'),
    ('queue_time', 'vllm:request_queue_time_seconds', 'queue time'),
)
SIDES = ('stable', 'canary')
FINAL_PHASES = ('promoted', 'rolled_back')


def _label_value(text):
    """A PromQL string literal's content: backslashes and double quotes escaped."""
    return str(text).replace('\\', '\\\\').replace('"', '\\"')


def series_selector(namespace, workload, served_model_name, extra=None):
    """The series of one workload: its namespace, its StatefulSet's pods (<name>-<ordinal>) and served name.

    The pod pattern keeps two releases apart even when they serve the same model name.
    """
    matchers = ['namespace="%s"' % _label_value(namespace),
                'pod=~"%s-[0-9]+"' % _label_value(workload),
                'model_name="%s"' % _label_value(served_model_name)]
    matchers += list(extra or [])
    return '{%s}' % ','.join(matchers)


def queries(namespace, workloads, window, quantile):
    """The instant queries of one gate evaluation: {'<side>.<what>': PromQL} for SIDES.

    WORKLOADS maps each side to {'name', 'served_model_name'}. Counters go through increase() and histograms
    through rate() over WINDOW (a Prometheus duration, e.g. 2m), so a gate looks at what the workload served
    since the step began, not over its whole life.
    """
    found = {}
    for side in SIDES:
        workload = workloads[side]
        select = series_selector(namespace, workload['name'], workload['served_model_name'])
        errors = series_selector(namespace, workload['name'], workload['served_model_name'],
                                 ['finished_reason="%s"' % ERROR_REASON])
        found['%s.requests' % side] = 'sum(increase(%s%s[%s]))' % (REQUESTS_METRIC, select, window)
        found['%s.errors' % side] = 'sum(increase(%s%s[%s]))' % (REQUESTS_METRIC, errors, window)
        for gate, histogram, _text in LATENCY_GATES:
            found['%s.%s' % (side, gate)] = 'histogram_quantile(%s, sum by (le) (rate(%s_bucket%s[%s])))' % (
                quantile, histogram, select, window)
    return found


def query_value(answer):
    """The number of a Prometheus /api/v1/query answer (its JSON) with at most one series; None when there is no
    series or the value is NaN/Inf (histogram_quantile without observations)."""
    if not isinstance(answer, dict) or answer.get('status') != 'success':
        return None
    data = answer.get('data') or {}
    result = data.get('result')
    if data.get('resultType') == 'scalar':
        result = [{'value': result}]
    if not result:
        return None
    try:
        value = float(result[0]['value'][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    return value


def _ratio(errors, requests):
    if requests is None or requests <= 0:
        return None
    return (errors or 0.0) / requests


def _fmt(value, unit=''):
    if value is None:
        return 'no data'
    if unit == 's':
        return '%.3fs' % value
    if unit == '%':
        return '%.2f%%' % (value * 100)
    return '%g' % value


def evaluate(values, limits):
    """Decide the gates of one step from VALUES ({'<side>.<what>': number or None}) and LIMITS.

    LIMITS: min_requests, max_error_ratio, max_error_ratio_increase, max_ttft_seconds, max_itl_seconds,
    max_queue_time_seconds, max_latency_ratio, latency_margin_seconds, quantile. Each gate checks the canary
    against an absolute limit and, when the stable workload served in the window, against the stable one
    (error ratio: at most max_error_ratio_increase above it; latencies: at most max_latency_ratio times it plus
    latency_margin_seconds, the margin keeping near-zero stable values from failing on noise). A gate without
    canary data fails: no evidence is no promotion.
    """
    gates = []
    canary_requests = values.get('canary.requests')
    stable_requests = values.get('stable.requests')
    enough = canary_requests is not None and canary_requests >= limits['min_requests']
    gates.append({
        'gate': 'traffic', 'what': 'canary requests in the window',
        'canary': canary_requests, 'stable': stable_requests, 'limit': limits['min_requests'],
        'ok': enough,
        'why': ('%s canary requests finished in the window (at least %s needed to judge)'
                % (_fmt(canary_requests), limits['min_requests'])),
    })

    canary_ratio = _ratio(values.get('canary.errors'), canary_requests)
    stable_ratio = _ratio(values.get('stable.errors'), stable_requests)
    problems = []
    if canary_ratio is None:
        problems.append('no canary requests')
    else:
        if canary_ratio > limits['max_error_ratio']:
            problems.append('canary %s > limit %s' % (_fmt(canary_ratio, '%'), _fmt(limits['max_error_ratio'], '%')))
        if stable_ratio is not None and canary_ratio > stable_ratio + limits['max_error_ratio_increase']:
            problems.append('canary %s > stable %s + %s' % (_fmt(canary_ratio, '%'), _fmt(stable_ratio, '%'),
                                                            _fmt(limits['max_error_ratio_increase'], '%')))
    gates.append({
        'gate': 'error_ratio', 'what': 'share of requests vLLM finished with finished_reason="error"',
        'canary': canary_ratio, 'stable': stable_ratio, 'limit': limits['max_error_ratio'],
        'ok': not problems,
        'why': '; '.join(problems) if problems else 'canary %s, stable %s' % (_fmt(canary_ratio, '%'),
                                                                              _fmt(stable_ratio, '%')),
    })

    for gate, _histogram, text in LATENCY_GATES:
        canary = values.get('canary.%s' % gate)
        stable = values.get('stable.%s' % gate)
        limit = limits['max_%s_seconds' % gate]
        problems = []
        if canary is None:
            problems.append('no canary observations')
        else:
            if canary > limit:
                problems.append('canary %s > limit %s' % (_fmt(canary, 's'), _fmt(limit, 's')))
            if stable is not None:
                relative = stable * limits['max_latency_ratio'] + limits['latency_margin_seconds']
                if canary > relative:
                    problems.append('canary %s > stable %s x %s + %s' % (
                        _fmt(canary, 's'), _fmt(stable, 's'), limits['max_latency_ratio'],
                        _fmt(limits['latency_margin_seconds'], 's')))
        gates.append({
            'gate': gate, 'what': 'p%g %s' % (limits['quantile'] * 100, text),
            'canary': canary, 'stable': stable, 'limit': limit,
            'ok': not problems,
            'why': '; '.join(problems) if problems else 'canary %s, stable %s' % (_fmt(canary, 's'), _fmt(stable, 's')),
        })
    failed = [gate['gate'] for gate in gates if not gate['ok']]
    return {'passed': not failed, 'failed': failed, 'gates': gates}


def backends(stable, canary, canary_weight):
    """HTTPRoute backends ({name, port, weight}) with CANARY_WEIGHT percent on the canary's Service.

    A side at weight 0 stays listed: the gateway keeps it known, and the route says where traffic would go.
    """
    canary_weight = int(canary_weight)
    return [{'name': stable['service_name'], 'port': int(stable['service_port']), 'weight': 100 - canary_weight},
            {'name': canary['service_name'], 'port': int(canary['service_port']), 'weight': canary_weight}]


def parse_state(config_maps):
    """The recorded state from the k8s_info resources of the rollout ConfigMap (None when there is none or it
    cannot be read: a run then starts over, which is safe, as every step is re-applied and re-gated)."""
    for config_map in config_maps or []:
        text = (config_map.get('data') or {}).get('state')
        if not text:
            continue
        try:
            state = json.loads(text)
        except ValueError:
            return None
        if isinstance(state, dict) and state.get('version') == STATE_VERSION:
            return state
    return None


def stable_vars(recorded, state, canary_vars):
    """The vllm_* values the stable workload runs with since the promotions recorded so far: those of the RECORDED
    state, and CANARY_VARS on top when STATE promotes (a promotion changes the stable workload in place)."""
    carried = dict((recorded or {}).get('stable_vars') or {})
    if (state or {}).get('phase') == 'promoted':
        carried.update(canary_vars or {})
    return carried


def _comparable(value):
    if isinstance(value, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else str(value)


def reverted_vars(state, settings):
    """The vllm_* variables whose value in SETTINGS (the vllm role's converted settings, keys without the prefix)
    differs from what the recorded promotions run: ['vllm_model: promoted Qwen/Qwen3-1.7B, this run Qwen/Qwen3-0.6B']."""
    found = []
    for name, promoted in sorted(((state or {}).get('stable_vars') or {}).items()):
        current = (settings or {}).get(name[len('vllm_'):] if name.startswith('vllm_') else name)
        if _comparable(current) != _comparable(promoted):
            found.append('%s: promoted %s, this run %s' % (name, json.dumps(promoted), json.dumps(current)))
    return found


def _same(a, b):
    return (a or {}).get('name') == (b or {}).get('name')


def decide(state, request):
    """_decide, with the recorded history a resumed rollout carries on ('history', [] otherwise)."""
    decision = _decide(state, request)
    decision['history'] = list((state or {}).get('history') or []) if decision['action'] in ('resume', 'rollback') else []
    return decision


def _decide(state, request):
    """Where this run starts, from the recorded STATE and the REQUEST (mode, steps, stable, canary, ab_weight).

    Returns {'action': start|resume|done|blocked|rollback, 'step_index': int, 'message': str}:
      start   a new rollout (nothing recorded, or the recorded one finished and this is another canary);
      resume  the recorded rollout of this canary was interrupted: continue at its recorded step;
      done    the recorded rollout of this canary finished (promoted or rolled back), or the A/B split is in
              place: nothing to change;
      blocked the recorded state disagrees with the variables (another canary in progress, or the stable
              workload is not the one the last rollout promoted): change nothing and say what to set;
      rollback REQUEST['abort'] on a recorded rollout of this canary that has not finished.
    """
    steps = list(request['steps'])
    if request.get('abort'):
        if state is not None and _same(state.get('canary'), request['canary']) and state.get('phase') not in FINAL_PHASES:
            return {'action': 'rollback', 'step_index': int(state.get('step_index') or 0),
                    'message': 'rollout_abort: rolling %s back' % request['canary']['name']}
        return {'action': 'done', 'step_index': 0, 'message': 'rollout_abort: no unfinished rollout of %s to roll back'
                % request['canary']['name']}
    if state is None:
        return {'action': 'start', 'step_index': 0, 'message': 'no rollout recorded: starting'}
    recorded_canary = state.get('canary') or {}
    recorded_stable = state.get('stable') or {}
    phase = state.get('phase')
    same_canary = _same(recorded_canary, request['canary'])
    if same_canary and phase in FINAL_PHASES:
        return {'action': 'done', 'step_index': len(steps),
                'message': 'the rollout of %s was %s: nothing to do' % (
                    recorded_canary.get('name'), phase.replace('_', ' '))}
    if not same_canary and phase == 'promoted' and not _same(recorded_stable, request['stable']):
        return {'action': 'blocked', 'step_index': 0,
                'message': ('the last rollout promoted %s, but vllm_name is %s: set the vllm_* variables to the '
                            'promoted workload (vllm_name: %s, vllm_service_name: %s, vllm_served_model_name: %s) '
                            'before rolling out another one'
                            % (recorded_stable.get('name'), request['stable']['name'], recorded_stable.get('name'),
                               recorded_stable.get('service_name'), recorded_stable.get('served_model_name')))}
    if not same_canary and phase not in FINAL_PHASES:
        return {'action': 'blocked', 'step_index': 0,
                'message': ('a %s of %s is recorded as in progress: re-run with rollout_canary_name: %s to finish '
                            'it, or set rollout_abort: true with it to roll it back'
                            % (state.get('mode', 'canary'), recorded_canary.get('name'), recorded_canary.get('name')))}
    if not same_canary:
        return {'action': 'start', 'step_index': 0,
                'message': 'the last rollout (%s) finished: starting %s' % (
                    recorded_canary.get('name'), request['canary']['name'])}
    if request['mode'] == 'ab':
        if state.get('mode') == 'ab' and state.get('backends') == request.get('backends') \
                and (state.get('rules') or []) == (request.get('rules') or []):
            return {'action': 'done', 'step_index': 0, 'message': 'the A/B split is in place: nothing to change'}
        return {'action': 'start', 'step_index': 0, 'message': 'setting the A/B split'}
    if state.get('mode') == 'ab':
        return {'action': 'start', 'step_index': 0, 'message': 'the A/B test of this canary becomes a gated rollout'}
    weight = int(state.get('weight') or 0)
    index = next((i for i, step in enumerate(steps) if step >= weight), len(steps) - 1)
    return {'action': 'resume', 'step_index': index,
            'message': 'resuming the rollout of %s at step %d (%d%%)' % (
                request['canary']['name'], index + 1, steps[index])}


def new_state(request, phase, weight, step_index, backends_list, history, gates=None, message='', rules=None):
    """The JSON-able state recorded in the ConfigMap (no timestamps: re-recording the same state is no change)."""
    return {
        'version': STATE_VERSION,
        'mode': request['mode'],
        'phase': phase,
        'stable': request['stable'],
        'canary': request['canary'],
        'steps': list(request['steps']),
        'step_index': int(step_index),
        'weight': int(weight),
        'backends': backends_list,
        'rules': rules or [],
        'gates': gates or [],
        'history': history or [],
        'message': message,
    }


def history_entry(step_index, weight, verdict):
    return {'step': int(step_index) + 1, 'weight': int(weight), 'passed': verdict['passed'],
            'failed': verdict['failed'],
            'gates': dict((gate['gate'], {'canary': gate['canary'], 'stable': gate['stable'], 'ok': gate['ok']})
                          for gate in verdict['gates'])}


def _cell(value, gate):
    if gate == 'error_ratio':
        return _fmt(value, '%')
    if gate == 'traffic':
        return _fmt(value)
    return _fmt(value, 's')


def report_markdown(state, title='Rollout'):
    """A Markdown report of the recorded state: outcome, the route's backends, every gate of the last step."""
    phase = state.get('phase') or ''
    # A running A/B test has no outcome yet: the title alone.
    lines = ['# %s' % title if phase == 'ab' else '# %s: %s' % (title, phase.replace('_', ' ')), '']
    lines.append('- mode: %s' % state.get('mode'))
    for side in SIDES:
        workload = state.get(side) or {}
        lines.append('- %s: %s (Service %s, served model %s)' % (side, workload.get('name'), workload.get('service_name'),
                                                                 workload.get('served_model_name')))
    if state.get('mode') != 'ab':
        lines.append('- steps: %s' % ', '.join('%s%%' % step for step in state.get('steps') or []))
    lines.append('- route backends: %s' % ', '.join(
        '%s:%s=%s' % (b['name'], b['port'], b['weight']) for b in state.get('backends') or []))
    if state.get('message'):
        lines += ['', state['message']]
    if state.get('gates'):
        lines += ['', '| gate | what | canary | stable | limit | result |', '|---|---|---|---|---|---|']
        for gate in state['gates']:
            lines.append('| %s | %s | %s | %s | %s | %s |' % (
                gate['gate'], gate['what'], _cell(gate['canary'], gate['gate']), _cell(gate['stable'], gate['gate']),
                _cell(gate['limit'], gate['gate']), 'ok' if gate['ok'] else 'FAILED: ' + gate['why']))
    if state.get('history'):
        lines += ['', '## Steps', '']
        for entry in state['history']:
            lines.append('- step %s (%s%%): %s' % (entry['step'], entry['weight'],
                                                   'passed' if entry['passed'] else 'failed ' + ', '.join(entry['failed'])))
    return '\n'.join(lines) + '\n'
