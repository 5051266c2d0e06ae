"""The three report forms carry the same findings; the JSON schema is stable; the HTML page is self-contained."""
import json
import re

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose_report import (
    render_html,
    render_json,
    render_markdown,
    report_document,
)

FINDINGS = [
    {'id': 'pod_pending_insufficient_gpu', 'severity': 'critical', 'object': 'Pod/llm-serving/vllm-server-abc',
     'evidence': '0/3 nodes are available: 1 node(s) didn\'t match | 2 Insufficient nvidia.com/gpu. <b>',
     'remedy': 'lower vllm_tensor_parallel_size'},
    {'id': 'spot_preference_unsatisfiable', 'severity': 'info', 'object': 'Node', 'evidence': 'no spot node',
     'remedy': 'Set vllm_prefer_spot: false'},
]
TARGET = {'namespace': 'llm-serving', 'name': 'vllm-server', 'served_model_name': 'qwen3-0.6b'}


def document():
    return report_document(FINDINGS, TARGET, '2026-12-01T16:00:00Z')


def test_json_schema():
    data = json.loads(render_json(document()))
    assert set(data) == {'schema_version', 'generated_at', 'target', 'counts', 'findings'}
    assert data['schema_version'] == 1
    assert data['counts'] == {'critical': 1, 'warning': 0, 'info': 1}
    for item in data['findings']:
        assert set(item) == {'id', 'severity', 'object', 'evidence', 'remedy'}
        assert item['severity'] in ('critical', 'warning', 'info')


def test_markdown_has_a_row_and_a_section_per_finding():
    text = render_markdown(document())
    assert text.startswith('# Diagnose: llm-serving/vllm-server (qwen3-0.6b)\n')
    assert '1 critical, 0 warning, 1 info' in text
    # The pipe in the evidence is quoted in code blocks, not table cells; the table stays three columns.
    rows = [line for line in text.splitlines() if line.startswith('| ') and '---' not in line]
    assert len(rows) == 3 and all(row.count(' | ') == 2 for row in rows)
    assert '## CRITICAL `pod_pending_insufficient_gpu`: Pod/llm-serving/vllm-server-abc' in text
    assert 'Remedy: lower vllm_tensor_parallel_size' in text


def test_html_is_self_contained_and_escaped():
    page = render_html(document())
    assert page.startswith('<!DOCTYPE html>')
    assert not re.search(r'<(script|link|img|iframe)\b', page)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert 'url(' not in page
    assert '&lt;b&gt;' in page and '<b>' not in page
    assert page.count('<h2 ') == len(FINDINGS)


def test_no_finding_says_so():
    empty = report_document([], TARGET, '2026-12-01T16:00:00Z')
    assert 'No finding' in render_markdown(empty)
    assert json.loads(render_json(empty))['findings'] == []
