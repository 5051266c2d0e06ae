"""The monitoring role's alert rules, checked and unit-tested by the real promtool.

`promtool check rules` reads the very file the role wraps into a
PrometheusRule; `promtool test rules` runs tests/promtool/*.test.yml, which
feed it series named and labelled as vLLM V1 and the DCGM exporter publish
them. promtool comes from Debian's prometheus package (`make setup`).
"""
import glob
import os
import shutil
import subprocess

import pytest
import yaml

from helpers import REPO_ROOT  # pylint: disable=import-error

RULES_FILE = os.path.join(REPO_ROOT, 'roles', 'monitoring', 'files', 'vllm-gpu.rules.yml')
RULE_TESTS = sorted(glob.glob(os.path.join(REPO_ROOT, 'tests', 'promtool', '*.test.yml')))
PROMTOOL = shutil.which('promtool') or '/usr/bin/promtool'


def promtool(*args):
    if not os.path.exists(PROMTOOL):
        pytest.fail('promtool is missing: `make setup` installs Debian\'s prometheus package')
    return subprocess.run([PROMTOOL] + list(args), capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules_accepts_the_role_rules_file():
    proc = promtool('check', 'rules', RULES_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'SUCCESS' in proc.stdout


def test_promtool_check_rules_rejects_a_broken_rule(tmp_path):
    # The check can fail: the same file with one expression broken.
    with open(RULES_FILE, encoding='utf-8') as handle:
        rules = yaml.safe_load(handle)
    rules['groups'][0]['rules'][0]['expr'] = 'sum by (model_name (vllm:num_requests_waiting)'
    broken = tmp_path / 'broken.rules.yml'
    broken.write_text(yaml.safe_dump(rules))
    proc = promtool('check', 'rules', str(broken))
    assert proc.returncode != 0


def test_every_alert_has_a_promtool_unit_test():
    with open(RULES_FILE, encoding='utf-8') as handle:
        alerts = {rule['alert'] for group in yaml.safe_load(handle)['groups'] for rule in group['rules'] if 'alert' in rule}
    tested = set()
    for path in RULE_TESTS:
        with open(path, encoding='utf-8') as handle:
            for case in yaml.safe_load(handle)['tests']:
                tested |= {check['alertname'] for check in case.get('alert_rule_test', []) if check.get('exp_alerts')}
    assert alerts - tested == set(), 'alerts never seen firing in a promtool test'


@pytest.mark.parametrize('test_file', RULE_TESTS, ids=[os.path.basename(p) for p in RULE_TESTS])
def test_promtool_test_rules_passes(test_file):
    proc = promtool('test', 'rules', test_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
