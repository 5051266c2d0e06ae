#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: diagnose
short_description: Analyse gathered cluster facts of the serving workload and write the diagnose report
version_added: 0.1.0
description:
  - Takes the Kubernetes objects, container logs and GPU health results gathered by the C(diagnose) role and
    returns findings, each with an id, a severity, the object concerned, the evidence and a remedy naming the
    collection variable to change.
  - Writes the report as Markdown (C(diagnose.md)), JSON (C(diagnose.json)) and a self-contained HTML page
    (C(diagnose.html)) into O(report_dir) when given.
  - Never talks to the cluster; never fails because of a finding (the playbook decides, see C(diagnose_fail_on)).
author:
  - llmscale platform team (@llmscale)
options:
  facts:
    description:
      - "Gathered facts: C(workload), C(pods), C(events), C(nodes), C(pvcs), C(pvs), C(hpas), C(scaled_objects),
        C(api_services), C(network_policies), C(pod_metrics), C(logs), C(gpu_health), C(node_caches),
        C(prometheus), C(prometheuses), C(service_monitors), C(prometheus_rules), C(dashboards), C(grafana_deployments),
        C(namespaces), C(unread) (kinds not served or whose read failed)."
    type: dict
    required: true
  settings:
    description:
      - The collection variables in effect that the analysis quotes and compares with (C(vllm_*), C(autoscaling_*)).
    type: dict
    required: true
  report_dir:
    description:
      - Directory to write C(diagnose.md), C(diagnose.json) and C(diagnose.html) into; created when missing.
      - The report is the output of a read-only run, so it is written in check mode too.
    type: path
  generated_at:
    description:
      - Timestamp written into the report (the play's start, so the three files agree).
    type: str
    required: true
notes:
  - The analysis is plugins/module_utils/diagnose.py, pure and unit-tested on recorded objects and vLLM log lines.
attributes:
  check_mode:
    support: full
    description: Reads only its arguments; the report files are written in check mode too.
  diff_mode:
    support: none
    description: No diff.
"""

EXAMPLES = r"""
- name: Analyse what the role gathered
  llmscale.gpu_serving.diagnose:
    facts: "{{ gathered }}"
    settings: "{{ {'vllm_name': vllm_name, 'vllm_namespace': vllm_namespace} }}"
    report_dir: /tmp/diagnose
    generated_at: "{{ now(utc=true).isoformat() }}"
  register: diagnosis
"""

RETURN = r"""
findings:
  description: Every finding, critical first.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Stable identifier of the kind of finding.
      type: str
      sample: pod_pending_insufficient_gpu
    severity:
      description: V(critical), V(warning) or V(info).
      type: str
      sample: critical
    object:
      description: The object concerned, Kind/namespace/name.
      type: str
      sample: Pod/llm-serving/vllm-server-5c7d9f-abcde
    evidence:
      description: What was seen, quoted.
      type: str
    remedy:
      description: What to change, naming the collection variable.
      type: str
counts:
  description: Number of findings per severity.
  returned: success
  type: dict
  sample: {critical: 1, warning: 0, info: 0}
lines:
  description: One line per finding (severity, id, object, evidence).
  returned: success
  type: list
  elements: str
reports:
  description: Paths of the written reports, by format; empty without O(report_dir).
  returned: success
  type: dict
  sample: {markdown: /tmp/diagnose/diagnose.md, json: /tmp/diagnose/diagnose.json, html: /tmp/diagnose/diagnose.html}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import analyse, summary_line
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose_report import (
    render_html,
    render_json,
    render_markdown,
    report_document,
)

REPORT_FILES = (('markdown', 'diagnose.md', render_markdown), ('json', 'diagnose.json', render_json),
                ('html', 'diagnose.html', render_html))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            facts=dict(type='dict', required=True),
            settings=dict(type='dict', required=True),
            report_dir=dict(type='path'),
            generated_at=dict(type='str', required=True),
        ),
        supports_check_mode=True,
    )
    settings = module.params['settings']
    findings = analyse(module.params['facts'], settings)
    document = report_document(findings, {'namespace': settings.get('vllm_namespace'), 'name': settings.get('vllm_name'),
                                          'served_model_name': settings.get('vllm_served_model_name')},
                               module.params['generated_at'])
    reports = {}
    if module.params['report_dir']:
        try:
            if not os.path.isdir(module.params['report_dir']):
                os.makedirs(module.params['report_dir'])
            for key, name, render in REPORT_FILES:
                path = os.path.join(module.params['report_dir'], name)
                with open(path, 'w') as handle:
                    handle.write(render(document))
                reports[key] = path
        except (IOError, OSError) as exc:
            module.fail_json(msg='Cannot write the report into %s: %s' % (module.params['report_dir'], exc))
    module.exit_json(changed=False, findings=findings, counts=document['counts'],
                     lines=[summary_line(item) for item in findings], reports=reports)


if __name__ == '__main__':
    main()
