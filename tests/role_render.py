"""Render a role's pure task files with real ansible-playbook, no cluster.

Roles keep what they compute from variables (chart values, objects) in task
files that read nothing from the cluster. render() runs one play per case,
each including such a task file with the case's variables as play vars
(above role defaults, below nothing the role sets), and returns the facts
the task file set, one dict per case.
"""
import json
import os
import tempfile

import yaml

from helpers import run_playbook  # pylint: disable=import-error


def render(role, tasks_from, cases, facts, cli_vars=None):
    """cases: list of dicts of variables; facts: names of the facts to return; cli_vars: `-e name=text` for all.

    Returns (result, [{fact: value}, ...]) with one dict per case; a case
    that failed has no facts and the result says why.
    """
    plays = []
    for index, variables in enumerate(cases):
        plays.append({
            'name': 'Case %d' % index,
            'hosts': 'localhost',
            'gather_facts': False,
            'vars': variables,
            'tasks': [
                {'name': 'Render', 'ansible.builtin.include_role': {'name': role, 'tasks_from': tasks_from}},
                {'name': 'Report', 'ansible.builtin.debug': {'msg': {fact: '{{ %s }}' % fact for fact in facts}}},
            ],
        })
    with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as handle:
        yaml.safe_dump(plays, handle)
        path = handle.name
    try:
        result = run_playbook(path, cli_vars=cli_vars)
    finally:
        os.unlink(path)
    rendered = []
    for play in result.output.get('plays', []):
        values = {}
        for task in play.get('tasks', []):
            if task['task']['name'] == 'Report':
                values = task['hosts']['localhost']['msg']
        rendered.append(values)
    return result, rendered


def dumps(value):
    """Stable text of a rendered value, for assertion messages."""
    return json.dumps(value, indent=1, sort_keys=True, default=str)
