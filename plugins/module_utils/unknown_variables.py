# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Variables that carry a role's prefix but that no argument spec declares (typos such as
``vllm_tensor_paralel_size``, which Ansible would otherwise ignore).

Pure: the caller passes the option names of every role's meta/argument_specs.yml
and the variable names in scope.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import fnmatch

# One prefix per role, longest first so that a name is owned by the most
# specific prefix. None is a prefix of another today (gpu_health_/gpu_operator_,
# nvidia_driver_/nvidia_container_toolkit_ only share a stem), but sorting by
# length keeps that true if one is added.
ROLE_PREFIXES = tuple(sorted((
    'vllm_', 'autoscaling_', 'network_policy_', 'gpu_operator_', 'monitoring_', 'model_cache_',
    'nvme_storage_', 'gpu_health_', 'nvidia_driver_', 'nvidia_container_toolkit_', 'llmscale_',
), key=len, reverse=True))

# Stems shared by several prefixes: "nvidia_drvier_version" has no role
# prefix but is plainly meant for one; such names count when a declared name
# is close to them (a site's own "gpu_count" is left alone).
SHARED_STEMS = ('nvidia_', 'gpu_')
_CLOSE = 0.8


def declared_options(specs):
    """{role: set of option names} from {role: the parsed meta/argument_specs.yml}, all entry points."""
    declared = {}
    for role, document in specs.items():
        names = declared.setdefault(role, set())
        for entry in ((document or {}).get('argument_specs') or {}).values():
            names.update((entry or {}).get('options') or {})
    return declared


def role_prefix(name):
    """The role prefix ``name`` starts with, or None."""
    for prefix in ROLE_PREFIXES:
        if name.startswith(prefix):
            return prefix
    return None


def unknown_variables(declared, names, allowed=()):
    """[(name, suggestion or None)] for prefixed names no spec declares, sorted by name.

    declared: iterable of option names, or {role: iterable of option names}
    names:    variable names in scope (hostvars keys, extra vars, ...)
    allowed:  names or fnmatch patterns a site keeps for itself (the opt-out)
    """
    if isinstance(declared, dict):
        declared = [option for options in declared.values() for option in options]
    declared = set(declared)
    found = []
    for name in sorted(set(names)):
        if name in declared or any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
            continue
        prefix = role_prefix(name)
        if prefix is None:
            if not name.startswith(SHARED_STEMS):
                continue
            close = difflib.get_close_matches(name, declared, n=1, cutoff=_CLOSE)
            if close:
                found.append((name, close[0]))
            continue
        same_role = [option for option in declared if option.startswith(prefix)]
        close = (difflib.get_close_matches(name, same_role, n=1, cutoff=0.6)
                 or difflib.get_close_matches(name, declared, n=1, cutoff=0.6))
        found.append((name, close[0] if close else None))
    return found


def unknown_variable_errors(declared, names, allowed=(), opt_out='the allow list'):
    """One message per unknown prefixed variable, with its "did you mean".

    opt_out names the variable that holds ``allowed``, for the message.
    """
    messages = []
    for name, suggestion in unknown_variables(declared, names, allowed):
        hint = '; did you mean %s?' % suggestion if suggestion else ''
        messages.append('%s is not a variable of any llmscale.gpu_serving role%s (a site variable of '
                        'its own goes in %s)' % (name, hint, opt_out))
    return messages
