"""vLLM log lines -> findings, on real lines from public issues and on vLLM 0.33.0's own messages.

The messages below are quoted from vLLM 0.33.0 (the PyPI release; files named per message), each printed the way
vLLM's logger prints it (vllm/logger.py: "(%(vllm_process_name)s pid=%(process)d) %(levelname)s %(asctime)s
[%(fileinfo)s:%(lineno)d] %(message)s", date format "%m-%d %H:%M:%S").
"""
import os

import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import analyse, scan_log
from helpers import REPO_ROOT

LOG_DIR = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'vllm-logs')

# vllm/v1/core/kv_cache_planning.py, _check_enough_kv_cache_memory (the f-string with its values filled in).
V033_KV_CACHE_TOO_SMALL = (
    "To serve at least one request with the model's max seq len (40960), (4.38 GiB KV cache is needed, which is "
    "larger than the available KV cache memory (1.02 GiB). Based on the available memory, the estimated maximum "
    "model length is 9536. Try increasing `gpu_memory_utilization` (which also controls CPU memory on the CPU "
    "backend) or decreasing `max_model_len` when initializing the engine. See "
    "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.")
# vllm/v1/core/kv_cache_planning.py, _check_enough_kv_cache_memory (available_memory <= 0).
V033_NO_KV_MEMORY = (
    "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine "
    "(this flag also controls CPU memory reservation on the CPU backend, despite its name). See "
    "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.")
# vllm/v1/worker/gpu_model_runner.py, load_model (logger.error of the combined message).
V033_WEIGHTS_OOM = (
    "Failed to load model - not enough GPU memory. Try lowering --gpu-memory-utilization to free memory for "
    "weights, increasing --tensor-parallel-size, or using --quantization. See "
    "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more tips. (original error: CUDA out of "
    "memory. Tried to allocate 1.50 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.02 GiB is free.)")
# vllm/envs.py, get_vllm_port.
V033_VLLM_PORT_URI = (
    "VLLM_PORT 'tcp://10.96.0.15:80' appears to be a URI. This may be caused by a Kubernetes service discovery "
    "issue,check the warning in: https://docs.vllm.ai/en/latest/configuration/env_vars.html")

SETTINGS = {'vllm_namespace': 'llm-serving', 'vllm_name': 'vllm-server', 'vllm_gpu_memory_utilization': 0.9,
            'vllm_max_model_len': None, 'vllm_tensor_parallel_size': 1, 'vllm_gpu_products': ['NVIDIA-H100-80GB-HBM3']}


def logged(level, fileinfo, lineno, message, process='EngineCore'):
    return '(%s pid=316) %s 12-01 10:21:07 [%s:%d] %s' % (process, level, fileinfo, lineno, message)


def read_log(name):
    with open(os.path.join(LOG_DIR, name), encoding='utf-8') as handle:
        return handle.read()


@pytest.mark.parametrize('name, signature, quoted_start', [
    ('kv-cache-too-small.vllm-34076.log', 'vllm_kv_cache_too_small', "To serve at least one request with the models's"),
    ('vllm-port-uri.vllm-34199.log', 'vllm_port_uri', "VLLM_PORT 'tcp://169.169.193.120:6785' appears to be a URI."),
    ('cuda-oom.dots-ocr-196.log', 'vllm_cuda_oom', 'CUDA out of memory. Tried to allocate 74.16 GiB.'),
])
def test_real_issue_logs_are_recognised(name, signature, quoted_start):
    matches = scan_log(read_log(name))
    assert [match[0] for match in matches] == [signature]
    assert matches[0][1].startswith(quoted_start)


def test_kv_cache_estimate_of_a_real_log_becomes_the_remedy():
    signature, _quoted, groups = scan_log(read_log('kv-cache-too-small.vllm-34076.log'))[0]
    assert signature == 'vllm_kv_cache_too_small'
    assert groups == ('262144', '24.0', '3.18', '34736')


def crash_looping_pod(previous_log):
    pod = {'kind': 'Pod', 'metadata': {'name': 'vllm-server-0', 'namespace': 'llm-serving',
                                       'labels': {'app.kubernetes.io/name': 'vllm'}},
           'spec': {'containers': [{'name': 'vllm'}], 'nodeName': 'gpu-node-0'},
           'status': {'phase': 'Running', 'containerStatuses': [{
               'name': 'vllm', 'ready': False, 'restartCount': 4,
               'state': {'waiting': {'reason': 'CrashLoopBackOff'}},
               'lastState': {'terminated': {'reason': 'Error', 'exitCode': 1}}}]}}
    facts = {'workload': {'spec': {'selector': {'matchLabels': {'app.kubernetes.io/name': 'vllm'}}}}, 'pods': [pod],
             'logs': {'vllm-server-0': {'vllm': {'previous': previous_log, 'current': ''}}}}
    return analyse(facts, SETTINGS)


@pytest.mark.parametrize('message, fileinfo, lineno, finding_id, remedy_names', [
    (V033_KV_CACHE_TOO_SMALL, 'kv_cache_planning.py', 77, 'vllm_kv_cache_too_small', ['vllm_max_model_len to 9536']),
    (V033_NO_KV_MEMORY, 'kv_cache_planning.py', 57, 'vllm_kv_cache_too_small', ['vllm_gpu_memory_utilization']),
    (V033_WEIGHTS_OOM, 'gpu_model_runner.py', 5086, 'vllm_cuda_out_of_memory',
     ['vllm_tensor_parallel_size', 'vllm_quantization', 'vllm_max_model_len']),
    (V033_VLLM_PORT_URI, 'envs.py', 541, 'vllm_port_environment', ['vllm_service_name']),
])
def test_vllm_033_messages_become_one_finding_with_the_variable_to_change(message, fileinfo, lineno, finding_id,
                                                                          remedy_names):
    log = '\n'.join([logged('INFO', 'core.py', 101, 'Initializing a V1 LLM engine (v0.33.0)'),
                     logged('ERROR', fileinfo, lineno, message)])
    findings = crash_looping_pod(log)
    assert [item['id'] for item in findings] == [finding_id]
    item = findings[0]
    assert item['severity'] == 'critical'
    assert item['object'] == 'Pod/llm-serving/vllm-server-0 container vllm'
    assert item['evidence'] in message
    for name in remedy_names:
        assert name in item['remedy']


def test_a_crash_loop_without_a_known_message_says_so():
    findings = crash_looping_pod(logged('INFO', 'api_server.py', 1201, 'vLLM API server version 0.33.0'))
    assert [(item['id'], item['evidence']) for item in findings] == [
        ('container_crash_loop', 'CrashLoopBackOff, 4 restarts, last exit: Error (exit code 1)')]
