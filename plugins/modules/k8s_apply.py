#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: k8s_apply
short_description: Server-side apply a whole plan of Kubernetes objects, dry-run first
version_added: 0.2.0
description:
  - The one path the collection's roles write Kubernetes objects through (roles/_common, tasks_from apply).
  - Every object is looked up and dry-run by the API server (server-side apply, C(dryRun=All)) before the first
    write; any refusal fails the task with every error at once and nothing applied. An object whose namespace is
    created by the same plan is dry-run in the C(default) namespace.
  - Only objects whose dry-run result differs from the live object are applied. Objects are applied with the field
    manager O(field_manager), conflicts forced, Namespaces and CRDs first.
  - Secrets (O(secrets)) are applied like the other objects, but their values never appear in the result or the diff.
author:
  - llmscale platform team (@llmscale)
requirements:
  - kubernetes (the Python client, as kubernetes.core needs it)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Dry-runs every object and reports what would change; nothing is written.
  diff_mode:
    support: full
    description: One diff per object that changes (live before, API server's dry-run result after); Secret values redacted.
options:
  objects:
    description: The objects, as rendered Kubernetes manifests.
    type: list
    elements: dict
    default: []
  secrets:
    description:
      - Secret objects without their values (their C(data) is taken from O(secret_data)); they are applied like the
        other objects, but no value ever appears in the result or the diff.
    type: list
    elements: dict
    default: []
  secret_data:
    description:
      - The C(data) of each Secret of O(secrets), in the same order. The only no_log option, so that Ansible's masking
        of no_log values does not also hide the Secrets' names and labels in the output.
    type: list
    elements: dict
    default: []
  field_manager:
    description: Server-side apply field manager.
    type: str
    default: llmscale.gpu_serving
  create_only:
    description:
      - Dotted field paths (C(spec.replicas)) set when an object is created and left alone afterwards, so a re-run
        never undoes what a controller changed since (the replica count under an autoscaler).
    type: list
    elements: str
    default: []
  prune:
    description:
      - Delete objects that carry a selection's O(prune[].label_selector) but are no longer in the plan (after the
        plan is applied).
    type: list
    elements: dict
    default: []
    suboptions:
      label_selector:
        description: Label selector of the objects this plan owns.
        type: str
        required: true
      namespace:
        description: Namespace to look in for namespaced kinds.
        type: str
      kinds:
        description: Kinds to look for, each with C(api_version) and C(kind).
        type: list
        elements: dict
        required: true
  replace:
    description:
      - Objects the plan replaces (a Deployment that became a StatefulSet). Each one that exists, carries
        C(label_selector) and is not itself in the plan is deleted, and waited for until gone, before anything
        is applied.
    type: list
    elements: dict
    default: []
    suboptions:
      api_version:
        description: API version.
        type: str
        required: true
      kind:
        description: Kind.
        type: str
        required: true
      name:
        description: Name.
        type: str
        required: true
      namespace:
        description: Namespace.
        type: str
      label_selector:
        description: Equality-based labels the object must carry (k=v,k2=v2), so nothing foreign is deleted.
        type: str
  wait:
    description: Wait for Deployments, StatefulSets and DaemonSets of the plan to roll out and Jobs to complete.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 300
'''

EXAMPLES = r'''
- name: Apply the serving objects (normally through roles/_common, tasks_from apply)
  llmscale.gpu_serving.k8s_apply:
    kubeconfig: "{{ llmscale_kubeconfig | default(omit, true) }}"
    objects: "{{ rendered_objects }}"
    create_only: [spec.replicas]
    wait: true
'''

RETURN = r'''
objects:
  description: Every object of the plan with the action taken (create, update, unchanged, delete).
  returned: always
  type: list
  elements: dict
  sample: [{kind: Deployment, namespace: llm-serving, name: vllm-server, action: unchanged}]
summary:
  description: Number of objects per action.
  returned: always
  type: dict
  sample: {unchanged: 7, update: 1}
'''

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.k8s_apply import run_module


def main():
    argument_spec = dict(
        objects=dict(type='list', elements='dict', default=[]),
        # Shapes only: the values are in secret_data, the one no_log option.
        secrets=dict(type='list', elements='dict', default=[], no_log=False),
        secret_data=dict(type='list', elements='dict', default=[], no_log=True),
        field_manager=dict(type='str', default='llmscale.gpu_serving'),
        create_only=dict(type='list', elements='str', default=[]),
        prune=dict(type='list', elements='dict', default=[], options=dict(
            label_selector=dict(type='str', required=True),
            namespace=dict(type='str'),
            kinds=dict(type='list', elements='dict', required=True),
        )),
        replace=dict(type='list', elements='dict', default=[], options=dict(
            api_version=dict(type='str', required=True),
            kind=dict(type='str', required=True),
            name=dict(type='str', required=True),
            namespace=dict(type='str'),
            label_selector=dict(type='str'),
        )),
        wait=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=300),
    )
    argument_spec.update(AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda value: json.dumps(value, indent=2, sort_keys=True) + '\n')


if __name__ == '__main__':
    main()
