# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: role_default
short_description: The default of a variable of another role of this collection, read from that role's defaults
version_added: 0.2.0
description:
  - Returns the value in C(roles/<role>/defaults/main.yml) of each variable named (the role is the one whose prefix the
    name carries, C(vllm_name) -> vllm), so a role can default to another role's variable when that role is not in
    the play, without copying its value (C("{{ vllm_name | default(lookup('llmscale.gpu_serving.role_default',
    'vllm_name')) }}")).
options:
  _terms:
    description: Variable names.
    required: true
    type: list
    elements: str
author:
  - llmscale platform team (@llmscale)
'''

EXAMPLES = r'''
autoscaling_target_name: "{{ vllm_name | default(lookup('llmscale.gpu_serving.role_default', 'vllm_name')) }}"
'''

RETURN = r'''
_raw:
  description: The defaults, in the order asked.
  type: list
'''

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.llmscale.gpu_serving.plugins.plugin_utils.role_settings import (
    COLLECTION_ROLES_DIR,
    load_role_defaults,
)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        defaults = load_role_defaults(COLLECTION_ROLES_DIR)
        values = []
        for name in terms:
            owners = [role for role in defaults if name in defaults[role]]
            if not owners:
                raise AnsibleLookupError('role_default: no role of llmscale.gpu_serving defines %s' % name)
            values.append(defaults[owners[0]][name])
        return values
