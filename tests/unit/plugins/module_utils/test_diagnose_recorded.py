"""The analysis on objects recorded from the local cluster.

tests/fixtures/diagnose/*.json are the diagnose module's arguments (facts and settings) as
tests/integration/test_diagnose.py gathered them from the local cluster (LLMSCALE_DIAGNOSE_RECORD=<dir>):
the real scheduler's FailedScheduling events, the real HPA controller's conditions.
"""
import json
import os

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import (
    analyse,
)
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
