"""The monitoring role's Grafana dashboards are valid JSON that Grafana's sidecar can load.

Which metrics their queries use is checked in test_monitoring_metric_names.py.
"""
import glob
import json
import os

import pytest

from helpers import REPO_ROOT  # pylint: disable=import-error

DASHBOARDS = sorted(glob.glob(os.path.join(REPO_ROOT, 'roles', 'monitoring', 'files', '*.json')))
REQUIRED_PANELS = {
    'vllm-serving.json': ['Request rate', 'End-to-end request latency', 'Time to first token', 'Inter-token latency',
                          'Queue time', 'Requests running and waiting', 'KV cache usage', 'Tokens/s',
                          'GPU utilization', 'GPU memory used'],
    'gpu-dcgm.json': ['GPU utilization', 'Framebuffer memory used', 'Framebuffer memory free', 'Last XID error',
                      'Double-bit ECC errors'],
}


def load(path):
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def test_the_dashboards_the_role_ships_are_all_here():
    assert sorted(os.path.basename(p) for p in DASHBOARDS) == sorted(REQUIRED_PANELS)


@pytest.mark.parametrize('path', DASHBOARDS, ids=os.path.basename)
def test_dashboard_is_valid_json_with_uid_title_and_queries(path):
    dashboard = load(path)
    assert dashboard['uid'] and dashboard['title']
    ids = [panel['id'] for panel in dashboard['panels']]
    assert len(ids) == len(set(ids)), 'panel ids repeat'
    graphs = [panel for panel in dashboard['panels'] if panel['type'] != 'row']
    assert graphs
    for panel in graphs:
        assert panel['targets'], panel['title']
        for target in panel['targets']:
            assert target['expr'].strip(), panel['title']
            # Every query goes to the data source the user picks.
            assert target['datasource']['uid'] == '${datasource}'


@pytest.mark.parametrize('path', DASHBOARDS, ids=os.path.basename)
def test_dashboard_has_the_panels_the_issue_asks_for(path):
    titles = [panel['title'] for panel in load(path)['panels']]
    for wanted in REQUIRED_PANELS[os.path.basename(path)]:
        assert any(title.startswith(wanted) for title in titles), '%s lacks a "%s" panel' % (os.path.basename(path), wanted)


def test_dashboard_uids_are_unique():
    uids = [load(path)['uid'] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))
