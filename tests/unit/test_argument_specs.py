"""Every role's meta/argument_specs.yml is its contract: it must match defaults/main.yml.

A variable in defaults and not in the spec (or the reverse) is drift: the spec
stops validating what users set, or documents a variable that does nothing.
"""
import os

import pytest
import yaml

from helpers import REPO_ROOT

ROLES_DIR = os.path.join(REPO_ROOT, 'roles')


def role_names():
    if not os.path.isdir(ROLES_DIR):
        return []
    return sorted(name for name in os.listdir(ROLES_DIR) if os.path.isdir(os.path.join(ROLES_DIR, name)))


def load_yaml(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def prefixes(role_name):
    """The internal _common role holds the collection-wide llmscale_* variables and the inputs of its task files."""
    return ('llmscale_', '_common_') if role_name == '_common' else (role_name + '_',)


def spec_drift(role_dir, role_name):
    """Return a list of human-readable disagreements between defaults and the argument spec."""
    problems = []
    specs = load_yaml(os.path.join(role_dir, 'meta', 'argument_specs.yml'))
    if not specs or 'main' not in (specs.get('argument_specs') or {}):
        return ['meta/argument_specs.yml is missing or has no "main" entry point']
    # The main entry point's options are the role's variables; a task file's inputs (tasks_from) are declared in
    # its own entry point, with their defaults there or in defaults/main.yml.
    main = specs['argument_specs']['main'].get('options') or {}
    options = dict(main)
    inputs = {}
    for entry_name, entry_point in specs['argument_specs'].items():
        if entry_name != 'main':
            inputs.update(entry_point.get('options') or {})
    options.update(inputs)
    defaults = load_yaml(os.path.join(role_dir, 'defaults', 'main.yml')) or {}
    for name in sorted(set(defaults) - set(options)):
        problems.append('%s is in defaults/main.yml but not in the argument spec' % name)
    for name, option in sorted(options.items()):
        # A default that names another role's variable stays out of the spec (the role's own argument validation
        # would template it where that role is not in the play); its description says what it defaults to.
        others = [other + '_' for other in role_names() if other != role_name and not other.startswith('_')]
        cross_role = (isinstance(defaults.get(name), str) and 'default' not in option
                      and any('{{ ' + prefix in defaults[name] for prefix in others))
        if cross_role and 'Defaults to' not in str(option.get('description')):
            problems.append('%s defaults to another role\'s variable but its description does not say so' % name)
        if name not in defaults:
            if not option.get('required') and not (name in inputs and 'default' in option):
                problems.append('%s is in the argument spec but has no default and is not required' % name)
        elif 'default' in option and option['default'] != defaults[name]:
            problems.append('%s: spec default %r differs from defaults/main.yml %r'
                            % (name, option['default'], defaults[name]))
        if not option.get('description'):
            problems.append('%s has no description' % name)
        if 'type' not in option:
            problems.append('%s has no type' % name)
    for name in sorted(set(defaults) | set(options)):
        if not name.startswith(prefixes(role_name)):
            problems.append('%s is not prefixed with %s' % (name, ' or '.join(prefixes(role_name))))
    return problems


@pytest.mark.parametrize('role', role_names())
def test_role_argument_spec_matches_defaults(role):
    assert spec_drift(os.path.join(ROLES_DIR, role), role) == []


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(data, handle)


def test_drift_is_detected(tmp_path):
    """The check itself must fail on drift in either direction."""
    role = tmp_path / 'demo'
    _write(str(role / 'defaults' / 'main.yml'), {'demo_port': 80, 'demo_only_in_defaults': 1})
    _write(str(role / 'meta' / 'argument_specs.yml'), {'argument_specs': {'main': {'options': {
        'demo_port': {'type': 'int', 'default': 8080, 'description': 'Port.'},
        'demo_only_in_spec': {'type': 'str', 'description': 'Orphan.'},
    }}}})
    problems = spec_drift(str(role), 'demo')
    assert any('demo_only_in_defaults is in defaults' in p for p in problems)
    assert any('demo_only_in_spec is in the argument spec' in p for p in problems)
    assert any('demo_port: spec default 8080' in p for p in problems)


def test_consistent_role_passes(tmp_path):
    role = tmp_path / 'demo'
    _write(str(role / 'defaults' / 'main.yml'), {'demo_port': 80})
    _write(str(role / 'meta' / 'argument_specs.yml'), {'argument_specs': {'main': {'options': {
        'demo_port': {'type': 'int', 'default': 80, 'description': 'Port.'},
        'demo_model': {'type': 'str', 'required': True, 'description': 'Model.'},
    }}}})
    assert spec_drift(str(role), 'demo') == []
