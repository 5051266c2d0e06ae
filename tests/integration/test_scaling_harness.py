"""The scaling harness's own pieces, without a cluster: the simulated vLLM exposition, the
kwokctl-style transformation of the real KEDA chart, the loopback-only Prometheus relabeling."""
import shutil
import subprocess

import pytest
import yaml

from scaling_harness import (CHART_CERT_DIR, RULES_FILE, local_args, localize_keda_objects,  # pylint: disable=import-error
                             prometheus_config, render_keda_chart, rules_with_for)
from built_tools import tool_dir  # pylint: disable=import-error
from vllm_exporter import SERVED, render_exposition, split_backlog  # pylint: disable=import-error
from vllm_metrics import VLLM_COUNTERS, VLLM_GAUGES, VLLM_HISTOGRAMS  # pylint: disable=import-error

PROMTOOL = shutil.which('promtool') or '/usr/bin/promtool'


def test_the_exposition_parses_with_promtool_and_uses_only_vllm_names():
    text = render_exposition('qwen3-0.6b', '0', {'vllm:num_requests_waiting': 7})
    proc = subprocess.run([PROMTOOL, 'check', 'metrics'], input=text, capture_output=True, text=True, timeout=60,
                          check=False)
    problems = (proc.stdout + proc.stderr).strip().splitlines()
    # promtool's linter objects to the colons in every vLLM name (recording-rule style): only that.
    assert problems and all("should not contain ':'" in line for line in problems), problems
    assert 'vllm:num_requests_waiting{engine="0",model_name="qwen3-0.6b"} 7.0' in text.splitlines()
    types = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith('# TYPE')}
    assert {name for name, kind in types.items() if kind == 'gauge'} <= VLLM_GAUGES
    assert {name for name, kind in types.items() if kind == 'counter'} <= VLLM_COUNTERS
    assert {name for name, kind in types.items() if kind == 'histogram'} <= VLLM_HISTOGRAMS
    assert len(types) == len(SERVED)


@pytest.mark.parametrize('total, count, shares', [(20, 4, [5, 5, 5, 5]), (7, 3, [3, 2, 2]), (0, 2, [0, 0]), (5, 0, [])])
def test_a_backlog_is_split_in_whole_requests(total, count, shares):
    assert split_backlog(total, count) == shares


@pytest.fixture(scope='module')
def chart_objects():
    return render_keda_chart(tool_dir('helm', 'HELM_BIN_DIR', ['helm']) + '/helm')


def test_the_real_chart_is_applied_without_deployments_and_pointed_at_local_processes(chart_objects):
    applied, deployments = localize_keda_objects(chart_objects, 45678)
    kinds = {obj['kind'] for obj in applied}
    assert set(deployments) == {'keda-operator', 'keda-operator-metrics-apiserver'}
    assert 'Deployment' not in kinds and {'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding',
                                          'ServiceAccount', 'APIService', 'Service'} <= kinds
    crds = {obj['metadata']['name'] for obj in applied if obj['kind'] == 'CustomResourceDefinition'}
    assert 'scaledobjects.keda.sh' in crds and len(crds) == 6
    for service in (obj for obj in applied if obj['kind'] == 'Service'):
        assert service['spec'] == {'type': 'ExternalName', 'externalName': '127.0.0.1'}
    (api_service,) = [obj for obj in applied if obj['kind'] == 'APIService']
    assert api_service['metadata']['name'] == 'v1beta1.external.metrics.k8s.io'
    assert api_service['spec']['service'] == {'name': 'keda-operator-metrics-apiserver', 'namespace': 'keda',
                                              'port': 45678}
    # The chart's own objects otherwise: same RBAC as a Helm install.
    rendered_roles = [obj for obj in chart_objects if obj['kind'] == 'ClusterRole']
    assert rendered_roles == [obj for obj in applied if obj['kind'] == 'ClusterRole']


def test_chart_arguments_keep_their_values_except_the_local_ones(chart_objects):
    _applied, deployments = localize_keda_objects(chart_objects, 1)
    args = deployments['keda-operator-metrics-apiserver']['spec']['template']['spec']['containers'][0]['args']
    assert any(arg.startswith('--tls-cert-file=' + CHART_CERT_DIR + '/') for arg in args)
    local = local_args(args, '/tmp/x/keda-tls', ['--secure-port=7443'])
    assert '--tls-cert-file=/tmp/x/keda-tls/tls.crt' in local and '--secure-port=7443' in local
    assert not any(CHART_CERT_DIR + '/' in arg for arg in local)
    assert len([arg for arg in local if arg.startswith('--secure-port=')]) == 1
    assert len(local) == len(args) + (0 if any(arg.startswith('--secure-port=') for arg in args) else 1)


def test_every_target_is_rewritten_to_loopback_or_dropped_before_scraping():
    config = prometheus_config('/k/kubeconfig', ['ns-a'], '/r.yml', '5s', '5s')
    (scrape,) = config['scrape_configs']
    assert scrape['kubernetes_sd_configs'] == [{'role': 'pod', 'kubeconfig_file': '/k/kubeconfig',
                                                'namespaces': {'names': ['ns-a']}}]
    relabel = scrape['relabel_configs']
    rewrite = next(i for i, rule in enumerate(relabel) if rule.get('target_label') == '__address__')
    guard = next(i for i, rule in enumerate(relabel) if rule.get('source_labels') == ['__address__'])
    assert relabel[rewrite]['replacement'].startswith('127.0.0.1:')
    assert relabel[guard] == {'source_labels': ['__address__'], 'regex': r'127\.0\.0\.1:[0-9]+', 'action': 'keep'}
    assert rewrite < guard
    assert {rule.get('target_label') for rule in relabel} >= {'job', 'namespace', 'pod'}


def test_only_the_for_of_the_alerts_changes():
    with open(RULES_FILE, encoding='utf-8') as handle:
        original = yaml.safe_load(handle)
    shortened = rules_with_for('20s')
    pairs = [(a, b) for group_a, group_b in zip(original['groups'], shortened['groups'])
             for a, b in zip(group_a['rules'], group_b['rules'])]
    assert pairs and all(dict(a, **{'for': None}) == dict(b, **{'for': None}) for a, b in pairs)
    assert {b['for'] for a, b in pairs if 'for' in a} == {'20s'}
    assert rules_with_for(None) == original
