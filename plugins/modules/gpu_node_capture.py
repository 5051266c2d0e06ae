#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_node_capture
short_description: Capture a GPU node's raw nvidia-smi XML and kernel XID lines for a support bundle
version_added: 0.1.0
description:
  - "Runs C(nvidia-smi -q -x) once and reads the kernel log since boot (C(journalctl -k), else C(dmesg)) with the
    same command runner as M(llmscale.gpu_serving.gpu_health), and returns the XML as printed and every
    C(NVRM: Xid) line."
  - Only reads.
author:
  - llmscale platform team (@llmscale)
options:
  nvidia_smi:
    description: Path (containing a V(/)) or name looked up on E(PATH) of the nvidia-smi executable.
    type: str
    default: nvidia-smi
attributes:
  check_mode:
    support: full
    description: Only reads, so it runs unchanged in check mode.
  diff_mode:
    support: none
    description: No diff.
"""

EXAMPLES = r"""
- name: Capture the GPUs' state for the bundle
  llmscale.gpu_serving.gpu_node_capture:
  become: true
  register: capture
"""

RETURN = r"""
nvidia_smi_xml:
  description: Output of C(nvidia-smi -q -x); null when it could not run (see RV(errors)).
  returned: success
  type: str
xid_lines:
  description: "Every C(NVRM: Xid) kernel log line since boot."
  returned: success
  type: list
  elements: str
kernel_log_source:
  description: V(journalctl) or V(dmesg); null when neither could be read.
  returned: success
  type: str
errors:
  description: What could not be captured, in words (a bundle is still worth writing without it).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.gpu_health import (
    GpuHealthError,
    command_runner,
    read_kernel_log,
)
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvidia_smi import describe_exit_code, parse_xid_events


def main():
    module = AnsibleModule(argument_spec=dict(nvidia_smi=dict(type='str', default='nvidia-smi')), supports_check_mode=True)
    errors = []
    xml = None
    try:
        runner = command_runner(module, module.params['nvidia_smi'])
    except GpuHealthError as exc:
        module.fail_json(msg=str(exc))
    if runner.available('nvidia_smi'):
        # The raw XML, as printed: the bundle keeps what nvidia-smi said, not our parse of it.
        result = runner.result('nvidia_smi')
        if result.rc == 0:
            xml = result.stdout
        else:
            errors.append('%s -q -x exited with %d: %s %s' % (
                result.argv[0], result.rc, describe_exit_code(result.rc), result.last_line()))
    else:
        errors.append('nvidia-smi not found (%s)' % module.params['nvidia_smi'])
    source, kernel_log = read_kernel_log(runner)
    if source is None:
        errors.append('kernel log not read: %s' % kernel_log)
    lines = [event['line'] for event in parse_xid_events(kernel_log)] if source else []
    module.exit_json(changed=False, nvidia_smi_xml=xml, xid_lines=lines, kernel_log_source=source, errors=errors)


if __name__ == '__main__':
    main()
