# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Node object that sets a Node's taints, for the one apply path."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: node_taints
short_description: The Node object that sets a Node's taints through server-side apply
version_added: 0.2.0
description:
  - Turns C({node, taints}) into a minimal Node object for llmscale.gpu_serving.k8s_apply. spec.taints is an atomic
    list, so the list given must hold every taint the Node keeps.
options:
  _input:
    description: A dict with C(node) (the Node name) and C(taints) (the full list of taints).
    type: dict
    required: true
author:
  - llmscale platform team (@llmscale)
'''

EXAMPLES = r'''
node: "{{ {'node': 'gpu-a01', 'taints': []} | llmscale.gpu_serving.node_taints }}"
'''

RETURN = r'''
_value:
  description: A Node object with metadata.name and spec.taints.
  type: dict
'''


def node_taints(plan):
    return {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': plan['node']}, 'spec': {'taints': plan['taints']}}


class FilterModule(object):
    def filters(self):
        return {'node_taints': node_taints}
