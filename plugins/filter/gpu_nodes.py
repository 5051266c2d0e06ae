# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU nodes among the cluster facts roles/_common reads once per run (tasks_from cluster)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: gpu_nodes
short_description: The GPU nodes of a node list, with their product and allocatable GPUs
version_added: 0.2.0
description:
  - Reduces Node objects to C(name), C(product) (label nvidia.com/gpu.product), C(allocatable_gpus) and C(taints),
    keeping the nodes of the given products (all GPU nodes when none are given).
options:
  _input:
    description: Node objects.
    type: list
    elements: dict
    required: true
  products:
    description: nvidia.com/gpu.product values to keep.
    type: list
    elements: str
    default: []
author:
  - llmscale platform team (@llmscale)
'''

EXAMPLES = r'''
max_gpus: "{{ __common_cluster.nodes | llmscale.gpu_serving.gpu_nodes(['NVIDIA-H100-80GB-HBM3']) | map(attribute='allocatable_gpus') | max }}"
'''

RETURN = r'''
_value:
  description: One dict per GPU node.
  type: list
  elements: dict
'''

PRODUCT_LABEL = 'nvidia.com/gpu.product'


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def gpu_nodes(nodes, products=None):
    found = []
    for node in nodes or []:
        metadata = node.get('metadata') or {}
        product = (metadata.get('labels') or {}).get(PRODUCT_LABEL)
        if product is None or (products and product not in products):
            continue
        found.append({
            'name': metadata.get('name'),
            'product': product,
            'allocatable_gpus': _int(((node.get('status') or {}).get('allocatable') or {}).get('nvidia.com/gpu')),
            'taints': (node.get('spec') or {}).get('taints') or [],
        })
    return found


class FilterModule(object):
    def filters(self):
        return {'gpu_nodes': gpu_nodes}
