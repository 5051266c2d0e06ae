"""Every metric the alert rules and dashboards query exists in vLLM's V1 engine or the DCGM exporter.

The vLLM allowlist is tests/vllm_metrics.py (shared with the integration
tests' simulated vLLM exporter); the DCGM names are the counters that the
gpu_operator role's counters file exports (the exporter's default list plus the
volatile ECC counters, roles/gpu_operator/files/dcgm-metrics.csv).
Names of the original design that vLLM never had must appear nowhere.
"""
import glob
import json
import os
import re

import pytest
import yaml

from dcgm_counters import exported_metrics  # pylint: disable=import-error
from helpers import REPO_ROOT  # pylint: disable=import-error
from vllm_metrics import VLLM_COUNTERS, VLLM_GAUGES, VLLM_HISTOGRAMS, VLLM_LABELS  # pylint: disable=import-error

ROLE_FILES = os.path.join(REPO_ROOT, 'roles', 'monitoring', 'files')

# Labels Prometheus adds from the ServiceMonitor's target.
TARGET_LABELS = {'job', 'namespace', 'pod', 'service', 'instance', 'container', 'endpoint'}
# Only what the gpu_operator role's counters file makes the exporter publish: a
# panel or alert on any other DCGM field would read nothing.
DCGM_FIELDS = exported_metrics()
PROMETHEUS_SERIES = {'up'}
ALLOWED = (VLLM_GAUGES | VLLM_COUNTERS | DCGM_FIELDS | PROMETHEUS_SERIES
           | {name + suffix for name in VLLM_HISTOGRAMS for suffix in ('_bucket', '_sum', '_count')})

# Names from the original design that vLLM does not have.
FORBIDDEN = ['vllm:requests_total', 'vllm:inference_time_bucket', 'vllm:gpu_memory_used',
             'vllm_queue_size', 'vllm_inference_time']
SCANNED_DIRS = ['roles', 'plugins', 'playbooks', 'inventories', 'docs']
SAYS_IT_DOES_NOT_EXIST = re.compile(r"(does not|do not|doesn't|don't|never) exist", re.IGNORECASE)

PROMQL_KEYWORDS = {'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2'}


def metric_names(expr):
    """The series names a PromQL (or Grafana label_values) expression selects."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)  # string literals
    text = re.sub(r'label_values\(\s*(.*?)\s*,\s*\w+\s*\)', r'\1', text)  # Grafana: metric, label
    text = re.sub(r'\{[^}]*\}', ' ', text)  # label matchers
    text = re.sub(r'\[[^\]]*\]', ' ', text)  # ranges, subqueries
    text = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', ' ', text)
    text = re.sub(r'\$\{?\w+\}?', ' ', text)  # Grafana variables
    names = set()
    for match in re.finditer(r'(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?', text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def label_keys_of_vllm_selectors(expr):
    """Label names used in the matchers of vllm:* selectors."""
    keys = set()
    for match in re.finditer(r'(vllm:[\w:]+)\s*\{([^}]*)\}', expr):
        keys |= set(re.findall(r'([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)', match.group(2)))
    return keys


def rule_expressions():
    with open(os.path.join(ROLE_FILES, 'vllm-gpu.rules.yml'), encoding='utf-8') as handle:
        rules = yaml.safe_load(handle)
    return [(rule.get('alert') or rule.get('record'), rule['expr'])
            for group in rules['groups'] for rule in group['rules']]


def dashboard_expressions():
    found = []
    for path in sorted(glob.glob(os.path.join(ROLE_FILES, '*.json'))):
        with open(path, encoding='utf-8') as handle:
            dashboard = json.load(handle)
        name = os.path.basename(path)
        for panel in dashboard.get('panels', []):
            for target in panel.get('targets', []):
                found.append(('%s: %s' % (name, panel['title']), target['expr']))
        for variable in dashboard.get('templating', {}).get('list', []):
            if variable.get('type') == 'query':
                query = variable['query']
                found.append(('%s: $%s' % (name, variable['name']), query['query'] if isinstance(query, dict) else query))
    return found


EXPRESSIONS = rule_expressions() + dashboard_expressions()


def test_the_extractor_finds_metric_names_and_skips_functions_labels_and_variables():
    expr = ('histogram_quantile(0.95, sum by (le, model_name) (rate(vllm:time_to_first_token_seconds_bucket'
            '{model_name=~"$model_name", namespace="a b"}[$__rate_interval]))) > 2 and on (pod) up == 1')
    assert metric_names(expr) == {'vllm:time_to_first_token_seconds_bucket', 'up'}
    assert metric_names('label_values(DCGM_FI_DEV_GPU_UTIL{x="1"}, Hostname)') == {'DCGM_FI_DEV_GPU_UTIL'}
    assert metric_names('sum(vllm_queue_size) / vllm:requests_total') == {'vllm_queue_size', 'vllm:requests_total'}
    assert label_keys_of_vllm_selectors('vllm:num_requests_running{model="x", engine!="1"}') == {'model', 'engine'}


def test_the_dcgm_allowlist_is_the_counters_file():
    assert {'DCGM_FI_DEV_FB_RESERVED', 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL'} <= DCGM_FIELDS
    # Fields the exporter knows but our file does not export, and label fields, are not series.
    assert not {'DCGM_FI_DEV_RETIRED_DBE', 'DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', 'DCGM_FI_DRIVER_VERSION'} & DCGM_FIELDS


def test_rules_and_dashboards_have_queries():
    assert len(rule_expressions()) >= 7
    assert len(dashboard_expressions()) >= 20


@pytest.mark.parametrize('where, expr', EXPRESSIONS, ids=[where for where, _expr in EXPRESSIONS])
def test_every_queried_metric_exists_in_vllm_v1_or_the_dcgm_exporter(where, expr):
    names = metric_names(expr)
    assert names, '%s selects no metric: %s' % (where, expr)
    unknown = names - ALLOWED
    assert not unknown, '%s queries metrics that vLLM V1 / the DCGM exporter do not publish: %s' % (where, sorted(unknown))


@pytest.mark.parametrize('where, expr', EXPRESSIONS, ids=[where for where, _expr in EXPRESSIONS])
def test_vllm_selectors_use_vllm_label_names(where, expr):
    unknown = label_keys_of_vllm_selectors(expr) - VLLM_LABELS - TARGET_LABELS
    assert not unknown, '%s matches vLLM metrics on labels vLLM does not set: %s' % (where, sorted(unknown))


def text_files(directory):
    for root, _dirs, files in os.walk(os.path.join(REPO_ROOT, directory)):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, encoding='utf-8') as handle:
                    yield path, handle.read()
            except (UnicodeDecodeError, OSError):
                continue


def test_no_forbidden_design_metric_name_appears_anywhere():
    pattern = re.compile(r'(?<![\w:])(%s)(?![\w:])' % '|'.join(re.escape(name) for name in FORBIDDEN))
    offending = []
    for directory in SCANNED_DIRS:
        for path, text in text_files(directory):
            for number, line in enumerate(text.splitlines(), 1):
                if pattern.search(line) and not SAYS_IT_DOES_NOT_EXIST.search(line):
                    offending.append('%s:%d: %s' % (os.path.relpath(path, REPO_ROOT), number, line.strip()))
    assert not offending, 'metric names vLLM does not have:\n' + '\n'.join(offending)


def test_the_forbidden_name_scan_catches_a_name_and_allows_a_denial():
    pattern = re.compile(r'(?<![\w:])(%s)(?![\w:])' % '|'.join(re.escape(name) for name in FORBIDDEN))
    assert pattern.search('expr: rate(vllm:requests_total[5m])')
    assert pattern.search('- vllm_queue_size > 3')
    assert not pattern.search('vllm:num_requests_total_x')
    assert SAYS_IT_DOES_NOT_EXIST.search('`vllm_queue_size` does not exist in vLLM')
