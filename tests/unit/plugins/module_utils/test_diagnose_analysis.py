"""The analysis on recorded inputs: objects recorded from the local cluster and recorded nvidia-smi output.

tests/fixtures/diagnose/*.json are the diagnose module's arguments (facts and settings) as
tests/integration/test_diagnose.py gathered them from the local cluster (LLMSCALE_DIAGNOSE_RECORD=<dir>):
the real scheduler's FailedScheduling events, the real HPA controller's conditions.
"""
import json
import os

import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import (
    analyse,
    gpu_capacity_by_node,
    quantity,
    summary_line,
)
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.gpu_health import evaluate
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvidia_smi import parse_query_xml
from helpers import REPO_ROOT
from nvidia_smi_recorded import derive, read_recorded

RECORDED = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'diagnose')


def recorded(name):
    with open(os.path.join(RECORDED, name), encoding='utf-8') as handle:
        args = json.load(handle)
    return args['facts'], args['settings']


def ids(findings):
    return [item['id'] for item in findings]


def test_quantities():
    assert quantity('500m') == 0.5
    assert quantity('64Gi') == 64 * 2 ** 30
    assert quantity('8') == 8.0
    assert quantity('1234567n') == pytest.approx(0.001234567)
    assert quantity(None) is None
    assert quantity('lots') is None


def test_sixteen_gpus_asked_on_eight_gpu_nodes():
    facts, settings = recorded('test_pod_asking_more_gpus_than_a_node_has.json')
    findings = analyse(facts, settings)
    assert ids(findings)[0] == 'pod_pending_insufficient_gpu'
    pending = findings[0]
    # The real scheduler's message, quoted whole.
    event = [e for e in facts['events'] if e['reason'] == 'FailedScheduling'][-1]
    assert pending['evidence'].startswith(event['message'] + ' | asked 16 nvidia.com/gpu; ')
    assert 'gpu-node-0 (NVIDIA-H100-80GB-HBM3): 8 of 8 free' in pending['evidence']
    assert 'gpu-node-1 (NVIDIA-H100-80GB-HBM3): 8 of 8 free' in pending['evidence']
    assert 'lower vllm_tensor_parallel_size x vllm_pipeline_parallel_size to at most 8' in pending['remedy']


def test_claim_pinned_to_the_other_node():
    facts, settings = recorded('test_claim_bound_to_the_other_nodes_volume.json')
    found = dict((item['id'], item) for item in analyse(facts, settings))
    assert {'pod_pending_volume_node_conflict', 'pod_pending_insufficient_gpu'} <= set(found)
    assert 'bound to local-nvme-gpu-node-0-sim0 on gpu-node-0' in found['pod_pending_volume_node_conflict']['evidence']
    # gpu-node-0's 8 GPUs are held by the batch pod recorded with it.
    assert gpu_capacity_by_node(facts['nodes'], facts['pods'])['gpu-node-0']['free'] == 0
    assert 'asks 8 GPUs and no node has that many free' in found['pod_pending_insufficient_gpu']['remedy']


def test_hpa_without_custom_metrics_api_and_kubelet_states():
    facts, settings = recorded('test_crash_loops_oom_startup_probe_and_an_hpa_without_metrics.json')
    findings = analyse(facts, settings)
    assert {'container_oom_killed', 'startup_probe_exhausted', 'hpa_metric_unavailable'} <= set(ids(findings))
    hpa = [item for item in findings if item['id'] == 'hpa_metric_unavailable'][0]
    condition = [c for hpa_object in facts['hpas'] for c in hpa_object['status']['conditions']
                 if c['type'] == 'ScalingActive'][0]
    assert hpa['evidence'].startswith('ScalingActive=False %s: %s' % (condition['reason'], condition['message']))
    assert [line.split(' ', 2)[:2] for line in map(summary_line, findings)][0][0] == 'CRITICAL'


def test_the_same_facts_without_the_fault_give_no_critical_finding():
    facts, settings = recorded('test_crash_loops_oom_startup_probe_and_an_hpa_without_metrics.json')
    facts = dict(facts, hpas=[], events=[e for e in facts['events'] if e['reason'] != 'Killing'])
    for pod in facts['pods']:
        for status in pod['status'].get('containerStatuses') or []:
            status['state'] = {'running': {'startedAt': '2026-12-01T16:00:00Z'}}
            status['lastState'] = {}
    assert [item for item in analyse(facts, settings) if item['severity'] == 'critical'] == []


def gpu_facts(*edits):
    problems = evaluate(parse_query_xml(derive(read_recorded('q.xml'), *edits)), [], {})
    return {'workload': {'spec': {'selector': {'matchLabels': {'app.kubernetes.io/name': 'vllm'}}}}, 'pods': [],
            'gpu_health': {'gpu-node-0': {'problems': problems}}}


def test_gpu_health_problems_of_recorded_nvidia_smi_become_findings():
    findings = analyse(gpu_facts(('<current_link_width>16x</current_link_width>', '<current_link_width>8x</current_link_width>'),
                                 ('<clocks_event_reason_hw_slowdown>Not Active<', '<clocks_event_reason_hw_slowdown>Active<')),
                       {'vllm_name': 'vllm-server'})
    assert sorted((item['id'], item['severity'], item['object']) for item in findings) == [
        ('gpu_health_clocks_event_reasons', 'critical', 'Node/gpu-node-0 GPU 0'),
        ('gpu_health_pcie_width', 'critical', 'Node/gpu-node-0 GPU 0')]
    assert 'x8 of x16' in [item for item in findings if item['id'] == 'gpu_health_pcie_width'][0]['evidence']


def test_healthy_recorded_gpu_gives_no_finding():
    assert analyse(gpu_facts(), {'vllm_name': 'vllm-server'}) == []
