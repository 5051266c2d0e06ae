#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name (plugins/action/settings.py), on the control node.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: settings
short_description: A role's variables, converted to the types of its argument spec, as one fact
version_added: 0.2.0
description:
  - Reads the role's C(meta/argument_specs.yml), takes every option's value (the variable in scope, else the spec's
    default, templated; a default naming another role's variable falls back to that role's spec default), validates
    and converts it with Ansible's ArgumentSpecValidator, and sets the fact C(__<role>) (C(__common) for the internal
    C(_common) role) to a dict of the options without the role prefix. C(no_log) options are left out.
  - C(-e key=value) gives strings; templates that read C(__<role>) get integers, floats and booleans.
  - Fails on a variable with the role's prefix that no argument spec declares, with a suggestion, unless
    C(llmscale_strict_variables) is false.
  - Runs on the control node.
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
  role:
    description: The role of this collection whose settings to read (e.g. C(vllm), C(_common)).
    type: str
    required: true
  entry_point:
    description: The argument spec entry point.
    type: str
    default: main
  strict:
    description: Fail on unknown prefixed variables; defaults to C(llmscale_strict_variables).
    type: bool
'''

EXAMPLES = r'''
- name: Read the vLLM settings
  llmscale.gpu_serving.settings:
    role: vllm

- name: Use them
  ansible.builtin.debug:
    msg: "{{ __vllm.tensor_parallel_size * __vllm.pipeline_parallel_size }} GPUs per pod"
'''

RETURN = r'''
ansible_facts:
  description: C(__<role>), the converted settings.
  returned: success
  type: dict
argument_errors:
  description: Every problem found, each naming its variable.
  returned: failure
  type: list
  elements: str
'''
