"""roles/_common/tasks/chart.yml: where a chart comes from and the checks before Helm runs (no cluster).

The air-gapped path: `scripts/charts.sh pull DIR` (`make charts`) on a machine with network
writes the pinned archives and DIR/SHA256SUMS; on the target, llmscale_chart_dir=DIR makes the
roles install DIR/<chart>-<version>.tgz after checking its sha256. No repository is reachable
here, so the pull itself is not run: the directory is made from the real archives of
tests/real_charts.py with `scripts/charts.sh digests`, and what is tested is the check the
roles run on the target. The install itself is tested on the local cluster
(tests/integration/test_gpu_operator.py, test_monitoring.py).
"""
import os
import subprocess

import pytest
import yaml

from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error
from real_charts import copy_with_digests, pinned_version  # pylint: disable=import-error

CHART = 'prometheus-adapter'
CHECK_ONLY = {'_common_chart_step': 'check', '_common_chart_name': CHART, '_common_chart_release': 'adapter',
              '_common_chart_namespace': 'monitoring', '_common_chart_variables': 'autoscaling_prometheus_adapter_chart'}


def check(tmp_path, **variables):
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump([{'name': 'Chart source', 'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'Check', 'ansible.builtin.include_role': {'name': 'llmscale.gpu_serving._common', 'tasks_from': 'chart'},
         'vars': dict(CHECK_ONLY, **variables)}]}]))
    return run_playbook(str(playbook), env={'KUBECONFIG': str(tmp_path / 'none')})


@pytest.fixture
def chart_dir(tmp_path):
    return copy_with_digests(str(tmp_path / 'charts'), charts=[CHART])


def test_digests_file_lists_each_archive_in_sha256sum_format(chart_dir):
    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'charts.sh'), 'verify', chart_dir],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert '%s-%s.tgz: OK' % (CHART, pinned_version(CHART)) in proc.stdout


def test_an_archive_matching_its_digest_passes(tmp_path, chart_dir):
    result = check(tmp_path, llmscale_chart_dir=chart_dir, _common_chart_version=pinned_version(CHART))
    assert result.rc == 0, result.describe()
    (digest,) = result.results_of('Check the digest of %s-%s.tgz' % (CHART, pinned_version(CHART)))
    assert not digest.get('failed') and not digest.get('skipped'), digest


def test_a_tampered_archive_is_refused_before_helm_runs(tmp_path, chart_dir):
    archive = os.path.join(chart_dir, '%s-%s.tgz' % (CHART, pinned_version(CHART)))
    with open(archive, 'ab') as handle:
        handle.write(b'\0')
    result = check(tmp_path, llmscale_chart_dir=chart_dir, _common_chart_version=pinned_version(CHART))
    assert result.rc != 0
    message = ' '.join(result.failure_messages())
    assert archive in message and 'refusing' in message and 'SHA256SUMS' in message, result.describe()
    assert 'Install or upgrade the Helm release adapter' not in result.task_names()
    # The same check on the command line.
    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'charts.sh'), 'verify', chart_dir],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and 'FAILED' in proc.stdout


def test_an_archive_the_digests_file_does_not_list_is_refused(tmp_path, chart_dir):
    with open(os.path.join(chart_dir, 'SHA256SUMS'), 'w', encoding='utf-8') as handle:
        handle.write('0' * 64 + '  other-1.0.0.tgz\n')
    result = check(tmp_path, llmscale_chart_dir=chart_dir, _common_chart_version=pinned_version(CHART))
    assert result.rc != 0
    assert 'does not list it' in ' '.join(result.failure_messages()), result.describe()


def test_a_version_without_its_archive_names_the_file_and_llmscale_chart_dir(tmp_path, chart_dir):
    result = check(tmp_path, llmscale_chart_dir=chart_dir, _common_chart_version='0.0.1')
    assert result.rc != 0
    message = ' '.join(result.failure_messages())
    assert '%s-0.0.1.tgz does not exist' % CHART in message and 'llmscale_chart_dir' in message, result.describe()


def test_a_relative_chart_dir_is_resolved_from_the_working_directory(tmp_path, chart_dir):
    relative = os.path.relpath(chart_dir, REPO_ROOT)  # run_playbook runs from the checkout's root
    result = check(tmp_path, llmscale_chart_dir=relative, _common_chart_version=pinned_version(CHART))
    assert result.rc == 0, result.describe()


def test_a_repository_chart_needs_a_pinned_version_naming_the_role_variable(tmp_path):
    result = check(tmp_path, _common_chart_repo_url='https://prometheus-community.github.io/helm-charts',
                   _common_chart_version='')
    assert result.rc != 0
    assert 'autoscaling_prometheus_adapter_chart_version' in ' '.join(result.failure_messages()), result.describe()


def test_a_missing_chart_path_names_the_role_variable(tmp_path):
    result = check(tmp_path, _common_chart_path=str(tmp_path / 'nowhere.tgz'))
    assert result.rc != 0
    message = ' '.join(result.failure_messages())
    assert 'nowhere.tgz does not exist' in message and 'autoscaling_prometheus_adapter_chart_path' in message


def test_a_chart_dir_without_digests_says_how_to_make_them(tmp_path, chart_dir):
    os.unlink(os.path.join(chart_dir, 'SHA256SUMS'))
    result = check(tmp_path, llmscale_chart_dir=chart_dir, _common_chart_version=pinned_version(CHART))
    assert result.rc != 0
    message = ' '.join(result.failure_messages())
    assert 'no digests file' in message and 'scripts/charts.sh digests' in message, result.describe()
