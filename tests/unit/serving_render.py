"""What the serving roles' rendering tests share on top of role_render.py.

Cases render through the roles' own task files (tasks_from: render, and
tasks_from: validate for the variable checks) with real ansible-playbook.
"""
import os

from helpers import REPO_ROOT  # pylint: disable=import-error
from role_render import render  # pylint: disable=import-error


def kubernetes_schema_version():
    """The pinned cluster version as kubernetes-validate names it (v1.37.2 -> 1.37.0)."""
    with open(os.path.join(REPO_ROOT, 'tools', 'versions.env'), encoding='utf-8') as versions:
        for line in versions:
            if line.startswith('KUBERNETES_VERSION='):
                major, minor = line.split('=', 1)[1].strip().lstrip('v').split('.')[:2]
                return '%s.%s.0' % (major, minor)
    raise AssertionError('KUBERNETES_VERSION missing from tools/versions.env')


def render_cases(role, cases, facts):
    """Render every case in one ansible-playbook run; returns one {fact: value} per case."""
    result, rendered = render(role, 'render', cases, facts)
    assert result.rc == 0 and len(rendered) == len(cases), result.describe()
    return rendered


def validation_messages(role, variables):
    """Run the role's variable checks (argument spec + cross-field rules) on one case.

    Returns the failure messages; asserts that the run failed.
    """
    result, _rendered = render(role, 'validate', [variables], [])
    assert result.rc != 0 and result.failed, result.describe()
    return ' '.join(result.failure_messages())
