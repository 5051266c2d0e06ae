"""The analysis on objects recorded from the local cluster.

tests/fixtures/diagnose/*.json are the diagnose module's arguments (facts and settings) as
tests/integration/test_diagnose.py gathered them from the local cluster (LLMSCALE_DIAGNOSE_RECORD=<dir>):
the real scheduler's FailedScheduling events, the real HPA controller's conditions.
"""
import json
import os

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import analyse, quantity, summary_line
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


def by_id(findings):
    found = {}
    for item in findings:
        found.setdefault(item['id'], []).append(item)
    return found


def test_claim_bound_to_the_other_nodes_volume():
    facts, settings = recorded('test_claim_bound_to_the_other_nodes_volume.json')
    found = by_id(analyse(facts, settings))
    (conflict,) = found['pod_pending_volume_node_conflict']
    # The claim of the StatefulSet's volumeClaimTemplates, named in the pod's volumes by the controller.
    (pod,) = [p for p in facts['pods'] if p['metadata']['name'] == 'vllm-server-0']
    (claim,) = [v['persistentVolumeClaim']['claimName'] for v in pod['spec']['volumes'] if v['name'] == 'model-cache']
    assert claim == 'model-cache-vllm-server-0'
    (bound,) = [c for c in facts['pvcs'] if c['metadata']['name'] == claim]
    (volume,) = [v for v in facts['pvs'] if v['metadata']['name'] == bound['spec']['volumeName']]
    node = volume['spec']['nodeAffinity']['required']['nodeSelectorTerms'][0]['matchExpressions'][0]['values'][0]
    assert '%s bound to %s on %s' % (claim, volume['metadata']['name'], node) in conflict['evidence']
    assert "didn't match PersistentVolume's node affinity" in conflict['evidence']
    assert 'gpu-node-0 (NVIDIA-H100-80GB-HBM3): 0 of 8 free' in found['pod_pending_insufficient_gpu'][0]['evidence']


def test_taint_without_toleration_names_the_taint_and_prometheus_unreachable():
    facts, settings = recorded('test_taint_without_toleration.json')
    found = by_id(analyse(facts, settings))
    taints = ['%s=%s:%s' % (t['key'], t.get('value', ''), t['effect'])
              for n in facts['nodes'] for t in n['spec'].get('taints') or []]
    assert 'llmscale.test/maintenance=diagnose:NoSchedule' in taints
    assert 'llmscale.test/maintenance=diagnose:NoSchedule' in found['pod_pending_untolerated_taint'][0]['evidence']
    assert facts['prometheus']['queried'] and not facts['prometheus']['answered']
    assert found['prometheus_unreachable'][0]['evidence'].endswith(facts['prometheus']['error'])


def test_hpa_at_max_with_a_pending_scale_up_and_replicas_on_different_gpus():
    facts, settings = recorded('test_why_it_did_not_scale_and_why_replicas_differ.json')
    found = by_id(analyse(facts, settings))
    (hpa,) = facts['hpas']
    (limited,) = [c for c in hpa['status']['conditions'] if c['type'] == 'ScalingLimited']
    assert found['replicas_at_max'][0]['evidence'] == 'ScalingLimited=True TooManyReplicas: %s (desired %s, max 3)' % (
        limited['message'], hpa['status']['desiredReplicas'])
    pending = [p['metadata']['name'] for p in facts['pods'] if p['status']['phase'] == 'Pending']
    assert found['scale_up_pending'][0]['evidence'] == 'desired %d replicas (min 1, max 3); 1 of 3 serving pods Pending: %s' % (
        hpa['status']['desiredReplicas'], pending[0])
    # metrics-server's usage of each running replica (kwok's simulated 30 CPUs) against its request of 8.
    usage = dict((m['metadata']['name'], m['containers'][0]['usage']['cpu']) for m in facts['pod_metrics'])
    assert len(found['cpu_request_too_low']) == len(usage) == 2
    for item in found['cpu_request_too_low']:
        assert item['evidence'] == 'uses %.1f CPUs, requests 8.0' % quantity(usage[item['object'].split('/')[-1]])
    assert set(found) >= {'replica_product_mismatch', 'replica_driver_mismatch', 'pod_pending_insufficient_gpu'}


def test_the_same_fleet_within_its_requests_and_below_max_gives_no_scaling_finding():
    facts, settings = recorded('test_why_it_did_not_scale_and_why_replicas_differ.json')
    for metric in facts['pod_metrics']:
        for container in metric['containers']:
            container['usage']['cpu'] = '7500m'
    for condition in facts['hpas'][0]['status']['conditions']:
        if condition['type'] == 'ScalingLimited':
            condition.update(status='False', reason='DesiredWithinRange')
    found = by_id(analyse(facts, settings))
    assert not {'cpu_request_too_low', 'replicas_at_max'} & set(found)


def test_the_autoscalers_model_name_absent_in_prometheus():
    facts, settings = recorded('test_the_autoscalers_metric_in_prometheus.json')
    (absent,) = by_id(analyse(facts, settings))['metric_absent_in_prometheus']
    (elsewhere,) = facts['prometheus']['elsewhere']
    assert absent['evidence'].endswith('namespace/model_name: %s/%s' % (elsewhere['namespace'], elsewhere['model_name']))
    assert settings['autoscaling_served_model_name'] != elsewhere['model_name'] == settings['vllm_served_model_name']
    # Prometheus answering with the series: nothing to say.
    facts['prometheus']['series'] = 1
    assert 'metric_absent_in_prometheus' not in by_id(analyse(facts, settings))
