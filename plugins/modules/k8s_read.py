#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: k8s_read
short_description: Read several kinds of Kubernetes objects in one call
version_added: 0.2.0
description:
  - Lists the objects of each query in parallel, in one module run; the collection reads the cluster facts a plan is
    checked against this way, once per run (roles/_common, tasks_from cluster).
  - A kind the cluster does not serve (a CRD not installed) gives C(served=false) and no items instead of an error.
author:
  - llmscale platform team (@llmscale)
requirements:
  - kubernetes (the Python client, as kubernetes.core needs it)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Reads only.
options:
  queries:
    description: What to read.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Key of this query in RV(resources).
        type: str
        required: true
      api_version:
        description: API version of the kind.
        type: str
        required: true
      kind:
        description: Kind.
        type: str
        required: true
      namespace:
        description: Namespace, for namespaced kinds; all namespaces when omitted.
        type: str
      label_selector:
        description: Label selector.
        type: str
  on_error:
    description:
      - What a query that fails does (a kind whose aggregated API server is down, a refused list).
      - C(fail) fails the module; C(record) gives that query C(error) with the message and no items, and reads the rest
        (the diagnose role reads a broken cluster this way).
    type: str
    choices: [fail, record]
    default: fail
'''

EXAMPLES = r'''
- name: Read the GPU nodes and the storage classes
  llmscale.gpu_serving.k8s_read:
    queries:
      - {name: nodes, api_version: v1, kind: Node, label_selector: nvidia.com/gpu.product}
      - {name: storage_classes, api_version: storage.k8s.io/v1, kind: StorageClass}
'''

RETURN = r'''
resources:
  description: Per query name, C(served) (whether the cluster serves the kind) and C(items); C(error) when that query
    failed and O(on_error=record).
  returned: always
  type: dict
  sample: {nodes: {served: true, items: []}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.k8s_apply import run_read_module


def main():
    argument_spec = dict(queries=dict(type='list', elements='dict', required=True, options=dict(
        name=dict(type='str', required=True),
        api_version=dict(type='str', required=True),
        kind=dict(type='str', required=True),
        namespace=dict(type='str'),
        label_selector=dict(type='str'),
    )), on_error=dict(type='str', choices=['fail', 'record'], default='fail'))
    argument_spec.update(AUTH_ARG_SPEC)
    run_read_module(AnsibleModule(argument_spec=argument_spec, supports_check_mode=True))


if __name__ == '__main__':
    main()
