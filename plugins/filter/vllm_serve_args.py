# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vllm_extra_args read the way `vllm serve` 0.33 reads them (plugins/module_utils/vllm_args.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: vllm_serve_args
short_description: Read extra vllm serve arguments as vLLM's own parser does
version_added: 0.2.0
description:
  - Parses a list of C(vllm serve) arguments against the options of vLLM 0.33 (one flag and its value as two items,
    underscores and dashes equal, C(=) forms, aliases and prefixes as argparse accepts them).
  - Returns C(errors) (flags the role renders, unknown or removed flags, C(--config), C(--disable-log-stats), an item
    holding a flag and its value), C(warnings), C(multi_node) options, and C(gpus_per_pod), vLLM's world size on one
    pod for the given tensor and pipeline parallel sizes.
options:
  _input:
    description: The extra arguments.
    type: list
    elements: str
    required: true
  managed_flags:
    description: Flags the role renders itself, refused in the extra arguments.
    type: list
    elements: str
    default: []
  tensor_parallel_size:
    description: The role's tensor parallel size.
    type: int
    default: 1
  pipeline_parallel_size:
    description: The role's pipeline parallel size.
    type: int
    default: 1
author:
  - llmscale platform team (@llmscale)
'''

EXAMPLES = r'''
parsed: "{{ ['--enable-prefix-caching'] | llmscale.gpu_serving.vllm_serve_args(['--port'], 2, 1) }}"
'''

RETURN = r'''
_value:
  description: C(errors), C(warnings), C(multi_node) and C(gpus_per_pod).
  type: dict
'''

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.vllm_args import gpus_per_pod, parse_extra_args


def vllm_serve_args(items, managed_flags=None, tensor_parallel_size=1, pipeline_parallel_size=1):
    parsed = parse_extra_args(list(items or []), managed_flags=list(managed_flags or []))
    return {
        'errors': parsed['errors'],
        'warnings': parsed['warnings'],
        'multi_node': parsed['multi_node'],
        'gpus_per_pod': gpus_per_pod(tensor_parallel_size, pipeline_parallel_size, parsed['parallelism']),
    }


class FilterModule(object):
    def filters(self):
        return {'vllm_serve_args': vllm_serve_args}
