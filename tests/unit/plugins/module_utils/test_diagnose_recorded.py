"""The analysis on objects recorded from the local cluster.

tests/fixtures/diagnose/*.json are the diagnose module's arguments (facts and settings) as
tests/integration/test_diagnose.py gathered them from the local cluster (LLMSCALE_DIAGNOSE_RECORD=<dir>):
the real scheduler's FailedScheduling events, the real HPA controller's conditions.
"""
import json
import os

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import analyse, summary_line
from helpers import REPO_ROOT

RECORDED = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'diagnose')


def recorded(name):
    with open(os.path.join(RECORDED, name), encoding='utf-8') as handle:
        args = json.load(handle)
    return args['facts'], args['settings']


def ids(findings):
    return [item['id'] for item in findings]


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
