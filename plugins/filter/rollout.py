# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of roles/rollout: PromQL of the gates, decisions from Prometheus' answers, the rollout's state."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: rollout_queries
short_description: The PromQL, gate decisions and recorded state of a gated model rollout
version_added: 0.3.0
description:
  - C(rollout_queries) renders the instant queries of one gate evaluation for the stable and canary workloads.
  - C(rollout_gates) decides the gates from Prometheus' answers to them (one C(ansible.builtin.uri) result each).
  - C(rollout_decide) tells from the recorded state where a run starts (start, resume, done, blocked, rollback).
  - C(rollout_backends), C(rollout_state), C(rollout_history_entry), C(rollout_parse_state) and
    C(rollout_report) build the route's weighted backends, the state recorded in the ConfigMap and its report.
  - C(rollout_stable_vars) carries the vllm_* values promotions gave the stable workload; C(rollout_reverted_vars)
    lists the variables of a serving run that would undo them.
  - The logic is in plugins/module_utils/rollout.py.
options:
  _input:
    description: The value the filter works on (see each filter).
    type: raw
    required: true
author:
  - llmscale platform team (@llmscale)
'''

EXAMPLES = r'''
queries: "{{ 'llm-serving' | llmscale.gpu_serving.rollout_queries(workloads, '2m', 0.95) }}"
verdict: "{{ uri_results | llmscale.gpu_serving.rollout_gates(limits) }}"
'''

RETURN = r'''
_value:
  description: See each filter.
  type: raw
'''

from ansible_collections.llmscale.gpu_serving.plugins.module_utils import rollout


def rollout_queries(namespace, workloads, window, quantile):
    return rollout.queries(namespace, workloads, window, quantile)


def rollout_gates(uri_results, limits):
    """URI_RESULTS: the results of a uri loop over dict2items of rollout_queries (item.key, json)."""
    values = dict((result['item']['key'], rollout.query_value(result.get('json'))) for result in uri_results or [])
    return rollout.evaluate(values, limits)


def rollout_decide(state, request):
    return rollout.decide(state, request)


def rollout_backends(canary_weight, stable, canary):
    return rollout.backends(stable, canary, canary_weight)


def rollout_parse_state(config_maps):
    return rollout.parse_state(config_maps)


def rollout_state(request, phase, weight, step_index, backends, history, gates=None, message='', rules=None):
    return rollout.new_state(request, phase, weight, step_index, backends, history, gates, message, rules)


def rollout_history_entry(verdict, step_index, weight):
    return rollout.history_entry(step_index, weight, verdict)


def rollout_stable_vars(recorded, state, canary_vars):
    return rollout.stable_vars(recorded, state, canary_vars)


def rollout_reverted_vars(state, settings):
    return rollout.reverted_vars(state, settings)


def rollout_report(state, title='Rollout'):
    return rollout.report_markdown(state, title)


class FilterModule(object):
    def filters(self):
        return {
            'rollout_queries': rollout_queries,
            'rollout_gates': rollout_gates,
            'rollout_decide': rollout_decide,
            'rollout_backends': rollout_backends,
            'rollout_parse_state': rollout_parse_state,
            'rollout_state': rollout_state,
            'rollout_history_entry': rollout_history_entry,
            'rollout_report': rollout_report,
            'rollout_stable_vars': rollout_stable_vars,
            'rollout_reverted_vars': rollout_reverted_vars,
        }
