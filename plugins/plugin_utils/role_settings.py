# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the roles' argument specs: the one contract of every role's variables (used on the controller)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import yaml

COLLECTION_ROLES_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'roles'))

_SPEC_CACHE = {}
# libyaml where PyYAML has it: every task runs in a fresh worker, so these files are parsed once per task.
_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


def _load_each(roles_dir, relative):
    """{role: parsed roles/<role>/<relative>} of every role that has the file, read once per process."""
    key = (roles_dir, relative)
    if key not in _SPEC_CACHE:
        loaded = {}
        for role in sorted(os.listdir(roles_dir)):
            path = os.path.join(roles_dir, role, relative)
            if os.path.isfile(path):
                with open(path) as handle:
                    loaded[role] = yaml.load(handle, Loader=_LOADER) or {}
        _SPEC_CACHE[key] = loaded
    return _SPEC_CACHE[key]


def load_argument_specs(roles_dir):
    """{role: {entry point: spec}} of every role under roles_dir."""
    return dict((role, document.get('argument_specs', {}))
                for role, document in _load_each(roles_dir, os.path.join('meta', 'argument_specs.yml')).items())


def load_role_defaults(roles_dir):
    """{role: its defaults/main.yml} of every role under roles_dir."""
    return _load_each(roles_dir, os.path.join('defaults', 'main.yml'))


def prefix_of(role):
    """The variable prefix of a role: its name, or llmscale_ for the internal _common role."""
    return 'llmscale_' if role == '_common' else role + '_'


def settings_fact_name(role):
    """The fact holding a role's converted settings: __vllm, __autoscaling, ..., __common."""
    return '__' + role.lstrip('_')


def option_defaults(spec):
    """{option: default} of one entry point's options that have a default."""
    return dict((name, option['default']) for name, option in spec.get('options', {}).items() if 'default' in option)
