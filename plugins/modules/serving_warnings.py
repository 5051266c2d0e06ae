#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name (plugins/action/serving_warnings.py), on the control node.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: serving_warnings
short_description: Warn about risky but valid vLLM settings
version_added: 0.2.0
description:
  - One warning each, in the run's output, for a placeholder or example host in C(vllm_ingress_host) or
    C(vllm_route_hostnames), a mutable image tag without a digest (C(latest), C(main), ...), and a startup budget
    shorter than a model load can take.
  - With O(as_errors) (C(llmscale_warnings_as_errors)), the task fails instead, before anything is applied.
  - Runs on the control node (plugins/module_utils/serving_warnings.py).
author:
  - llmscale platform team (@llmscale)
attributes:
  check_mode:
    support: full
    description: Reads variables only.
  diff_mode:
    support: none
    description: Reads variables only.
options:
  settings:
    description: The vllm role's converted settings (C(__vllm)).
    type: dict
    required: true
  as_errors:
    description: Fail on any warning.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Warn about risky vLLM settings
  llmscale.gpu_serving.serving_warnings:
    settings: "{{ __vllm }}"
    as_errors: "{{ llmscale_warnings_as_errors }}"
'''

RETURN = r'''
serving_warnings:
  description: The warnings found.
  returned: always
  type: list
  elements: str
'''
