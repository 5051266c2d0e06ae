"""The analysis on recorded nvidia-smi output (GPU health findings) and Kubernetes quantities."""
import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import (
    analyse,
    quantity,
)
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.gpu_health import evaluate
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvidia_smi import parse_query_xml
from nvidia_smi_recorded import derive, read_recorded


def test_quantities():
    assert quantity('500m') == 0.5
    assert quantity('64Gi') == 64 * 2 ** 30
    assert quantity('8') == 8.0
    assert quantity('1234567n') == pytest.approx(0.001234567)
    assert quantity(None) is None
    assert quantity('lots') is None


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
