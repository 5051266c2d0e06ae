# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The settings of a role, checked against its argument spec and converted to the declared types.

`-e key=value` gives strings, and Jinja expressions on strings go wrong quietly ('2' * 2 is '22'). Role
templates therefore never read a role's raw variables: they read the fact this action publishes, `__<role>`,
a dict of every option of the role's argument spec (role prefix dropped), converted by Ansible's own
ArgumentSpecValidator. Unknown variables with the role's prefix are rejected with a suggestion.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

from ansible_collections.llmscale.gpu_serving.plugins.plugin_utils.role_settings import (
    COLLECTION_ROLES_DIR,
    load_argument_specs,
    load_role_defaults,
    prefix_of,
    settings_fact_name,
)
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.unknown_variables import unknown_variables


def _trusted(value):
    """Spec defaults come from the roles' own YAML: trust them as templates, as Ansible does role defaults."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return dict((key, _trusted(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(('role', 'entry_point', 'strict'))

    def _template_with_fallbacks(self, value, task_vars, defaults):
        """Template a value; variables of roles not in scope resolve to those roles' defaults.

        That is what lets autoscaling default to "{{ vllm_namespace }}" when it runs without the vllm role.
        """
        fallbacks = {}
        for role_defaults in defaults.values():
            fallbacks.update(_trusted(role_defaults))
        variables = collections.ChainMap(task_vars, fallbacks)
        return self._templar.copy_with_new_env(available_variables=variables).template(value)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        role = self._task.args.get('role')
        entry_point = self._task.args.get('entry_point', 'main')
        if not role:
            raise AnsibleError('settings: the role argument is required')
        specs = load_argument_specs(COLLECTION_ROLES_DIR)
        if role not in specs or entry_point not in specs[role]:
            raise AnsibleError('settings: no argument spec %s for role %s in %s' % (entry_point, role, COLLECTION_ROLES_DIR))
        options = specs[role][entry_point].get('options', {})
        defaults = load_role_defaults(COLLECTION_ROLES_DIR)
        role_defaults = defaults.get(role, {})

        # __<role>_overrides (internal, set by a caller's include_role vars): values that win over every other
        # source, extra vars included, so one play can plan a second release of a role (playbooks/rollout.yml).
        overrides = self._templar.template(task_vars.get(settings_fact_name(role) + '_overrides') or {})
        unknown = sorted(set(overrides) - set(options))
        if unknown:
            raise AnsibleError('settings: %s_overrides names options the %s role does not have: %s'
                               % (settings_fact_name(role), role, ', '.join(unknown)))
        raw = {}
        for name, option in options.items():
            if name in overrides:
                raw[name] = overrides[name]
            elif name in task_vars:
                raw[name] = task_vars[name]
            elif name in role_defaults:
                raw[name] = _trusted(role_defaults[name])
            elif 'default' in option:
                raw[name] = _trusted(option['default'])
        values = self._template_with_fallbacks(raw, task_vars, defaults)

        validated = ArgumentSpecValidator(options).validate(values)
        errors = ['%s: %s' % (role, message) for message in validated.error_messages]

        strict = self._task.args.get('strict')
        if strict is None:
            strict = self._templar.template(task_vars.get('llmscale_strict_variables', True))
        if isinstance(strict, str):
            strict = strict.lower() in ('1', 'true', 'yes', 'on')
        if strict:
            declared = set()
            for entry_points in specs.values():
                for spec in entry_points.values():
                    declared.update(spec.get('options', {}))
            own = [name for name in task_vars if isinstance(name, str) and name.startswith(prefix_of(role))]
            for name, suggestion in unknown_variables(declared, own):
                errors.append('%s is not a variable of the %s role%s (set llmscale_strict_variables: false to allow '
                              'your own variables with this prefix)'
                              % (name, role, '; did you mean %s?' % suggestion if suggestion else ''))

        if errors:
            result.update(failed=True, msg='; '.join(errors), argument_errors=errors)
            return result

        prefix = prefix_of(role)
        # Secrets stay in their own variables: a fact is shown in verbose output and in fact caches.
        settings = dict((name[len(prefix):], value) for name, value in validated.validated_parameters.items()
                        if name in options and not options[name].get('no_log'))
        fact = settings_fact_name(role)
        result.update(changed=False, ansible_facts={fact: settings}, _ansible_facts_cacheable=False)
        return result
