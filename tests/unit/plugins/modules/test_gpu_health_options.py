"""gpu_health's options live once in code (module_utils/gpu_health.py); the YAML copies must agree with it.

Ansible reads the module's DOCUMENTATION and the role's defaults and argument
spec as YAML, so they repeat the values: these tests fail when one of them
drifts from the module's argument spec.
"""
import os

import pytest
import yaml

from helpers import REPO_ROOT
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.gpu_health import (
    CLOCKS_EVENT_REASONS,
    argument_spec,
)
from ansible_collections.llmscale.gpu_serving.plugins.modules import gpu_health as gpu_health_module

ROLE_DIR = os.path.join(REPO_ROOT, 'roles', 'gpu_health')
# What the module and the role's argument spec say about an option.
KEYS = ('type', 'elements', 'default', 'choices')


def load_yaml(*parts):
    with open(os.path.join(ROLE_DIR, *parts), encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def described(option):
    return dict((key, option.get(key)) for key in KEYS)


SPEC = argument_spec()
DOCUMENTED = yaml.safe_load(gpu_health_module.DOCUMENTATION)['options']
ROLE_DEFAULTS = load_yaml('defaults', 'main.yml')
ROLE_OPTIONS = load_yaml('meta', 'argument_specs.yml')['argument_specs']['main']['options']


def test_documentation_names_every_option_of_the_argument_spec():
    assert sorted(DOCUMENTED) == sorted(SPEC)


@pytest.mark.parametrize('name', sorted(SPEC))
def test_documentation_agrees_with_the_argument_spec(name):
    assert described(DOCUMENTED[name]) == described(SPEC[name])


@pytest.mark.parametrize('name', sorted(SPEC))
def test_role_default_equals_the_module_default(name):
    assert ROLE_DEFAULTS['gpu_health_' + name] == SPEC[name].get('default')


@pytest.mark.parametrize('name', sorted(SPEC))
def test_role_argument_spec_agrees_with_the_module(name):
    expected = described(SPEC[name])
    if name == 'allowed_clocks_event_reasons':
        # The module checks these names itself (for a message listing them); the role declares them as choices.
        expected['choices'] = list(CLOCKS_EVENT_REASONS)
    assert described(ROLE_OPTIONS['gpu_health_' + name]) == expected


def test_options_are_not_shared_between_modules():
    first = argument_spec()
    first['xid_critical_codes']['default'].append(31)
    assert 31 not in argument_spec()['xid_critical_codes']['default']
