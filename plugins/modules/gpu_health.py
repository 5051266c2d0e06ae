#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_health
short_description: Check the health of a node's NVIDIA GPUs
version_added: 0.1.0
description:
  - Runs C(nvidia-smi -q -x) once and reads every GPU's identity, memory, temperature, power, ECC counters,
    row remapping or page retirement state, PCIe link, clock event reasons and MIG mode from that XML.
  - "Reads C(NVRM: Xid) lines from the kernel log since boot (C(journalctl -k), falling back to C(dmesg)
    where the journal holds no kernel lines) and attributes each XID to a GPU by its PCI address."
  - Reports every problem found with a severity. A node is healthy when no problem is C(critical);
    warnings (PCIe generation below its maximum, persistence mode off, lifetime ECC errors) are reported only.
  - Only reads; never changes the GPUs. Use the task keyword C(timeout) to bound a hung nvidia-smi.
author:
  - llmscale platform team (@llmscale)
options:
  nvidia_smi:
    description:
      - Path (containing a V(/)) or name looked up on E(PATH) of the nvidia-smi executable.
    type: str
    default: nvidia-smi
  fail_on_unhealthy:
    description:
      - Fail, with a message naming every problem, when a critical problem is found.
      - When V(false), return RV(healthy=false) instead.
    type: bool
    default: true
  expected_gpu_count:
    description:
      - Number of GPUs nvidia-smi must list. Not checked when omitted.
    type: int
  expected_product:
    description:
      - Substring every GPU's product name must contain, case-insensitive (for example V(H100)). Not checked when omitted.
    type: str
  min_driver_version:
    description:
      - Oldest acceptable driver version, dotted numbers (for example V(550.54.15)). Not checked when omitted.
    type: str
  max_temperature_c:
    description:
      - Highest acceptable GPU temperature in degrees Celsius.
    type: int
    default: 85
  max_ecc_uncorrected_volatile:
    description:
      - Most uncorrectable ECC errors since the driver loaded before the GPU is critical.
    type: int
    default: 0
  max_ecc_uncorrected_aggregate:
    description:
      - Most uncorrectable ECC errors over the GPU's lifetime before a warning.
    type: int
    default: 0
  require_persistence_mode:
    description:
      - Warn when persistence mode is off (the driver then re-initializes the GPU for every new process).
    type: bool
    default: true
  allowed_clocks_event_reasons:
    description:
      - Clock event reasons (clock throttle reasons before driver 530) that are normal operation.
      - Any other active reason, such as V(hw_slowdown), V(hw_thermal_slowdown), V(hw_power_brake_slowdown)
        or V(sw_thermal_slowdown), is a critical problem.
      - "Known names: V(gpu_idle), V(applications_clocks_setting), V(sw_power_cap), V(hw_slowdown), V(hw_thermal_slowdown),
        V(hw_power_brake_slowdown), V(sync_boost), V(sw_thermal_slowdown), V(display_clocks_setting)."
    type: list
    elements: str
    default: [gpu_idle, applications_clocks_setting, sw_power_cap]
  expected_mig_mode:
    description:
      - MIG mode every GPU must be in. GPUs without MIG support count as V(disabled). V(any) skips the check.
    type: str
    choices: [disabled, enabled, any]
    default: disabled
  xid_critical_codes:
    description:
      - XID codes that make a GPU critical when logged since boot. Other XIDs are returned in RV(xid_events) only.
      - The default lists XIDs that need a GPU reset, a reboot or a replacement rather than an application fix.
    type: list
    elements: int
    default: [48, 61, 62, 64, 74, 79, 92, 95, 119, 120, 140, 143]
notes:
  - XIDs stay in the kernel log until the next boot, so a GPU stays unhealthy after an XID until the node reboots.
  - Reading the kernel log may need root (C(become)) where C(kernel.dmesg_restrict) is set;
    when it cannot be read the module reports a C(kernel_log) warning.
seealso:
  - name: nvidia-smi documentation
    description: Exit codes and the meaning of each field.
    link: https://docs.nvidia.com/deploy/nvidia-smi/index.html
  - name: NVIDIA XID errors
    description: What each XID code means and what to do about it.
    link: https://docs.nvidia.com/deploy/xid-errors/index.html
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs unchanged in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
"""

EXAMPLES = r"""
- name: Check the GPUs of an 8 x H100 node, failing on any critical problem
  llmscale.gpu_serving.gpu_health:
    expected_gpu_count: 8
    expected_product: H100
    min_driver_version: "550.54.15"
  become: true
  timeout: 120

- name: Report without failing, and treat XID 31 (page fault) as critical too
  llmscale.gpu_serving.gpu_health:
    fail_on_unhealthy: false
    xid_critical_codes: [31, 48, 61, 62, 64, 74, 79, 92, 95, 119, 120, 140, 143]
  register: health

- name: Show the verdict
  ansible.builtin.debug:
    msg: "{{ health.summary }}"
"""

RETURN = r"""
healthy:
  description: True when no critical problem was found.
  returned: success
  type: bool
  sample: true
summary:
  description: One line with the verdict, the GPUs, the driver and every problem.
  returned: success
  type: str
  sample: "healthy: 8 x NVIDIA H100 80GB HBM3, driver 580.159.04"
driver_version:
  description: NVIDIA driver version.
  returned: success
  type: str
  sample: "580.159.04"
cuda_version:
  description: Highest CUDA version the driver supports.
  returned: success
  type: str
  sample: "13.0"
kernel_log_source:
  description: Where XID events were read from, V(journalctl) or V(dmesg); null when neither could be read.
  returned: success
  type: str
  sample: journalctl
problems:
  description: Every problem found, critical and warning.
  returned: success
  type: list
  elements: dict
  contains:
    gpu:
      description: Index of the GPU concerned; null for node-wide problems (GPU count, driver, unattributed XID).
      type: int
      sample: 3
    check:
      description:
        - The check that found it, one of V(gpu_count), V(driver_version), V(product), V(ecc_uncorrected_volatile),
          V(ecc_uncorrected_aggregate), V(remapped_rows), V(retired_pages), V(temperature), V(pcie_width), V(pcie_gen),
          V(persistence_mode), V(clocks_event_reasons), V(mig_mode), V(recovery_action), V(xid), V(kernel_log).
      type: str
      sample: pcie_width
    severity:
      description: V(critical) makes the node unhealthy; V(warning) does not.
      type: str
      sample: critical
    detail:
      description: What was seen, in words.
      type: str
      sample: PCIe link runs at x8 of x16
xid_events:
  description: "Every C(NVRM: Xid) line in the kernel log since boot, critical or not."
  returned: success
  type: list
  elements: dict
  contains:
    gpu:
      description: Index of the GPU at the event's PCI address; null when no listed GPU is there.
      type: int
      sample: 0
    pci_bus_id:
      description: PCI address as the kernel printed it.
      type: str
      sample: "0000:00:06"
    code:
      description: XID number.
      type: int
      sample: 79
    detail:
      description: The rest of the kernel line after the XID number.
      type: str
      sample: "pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
    line:
      description: The whole kernel log line.
      type: str
      sample: "Nov 27 08:01:02 gpu-node-0 kernel: NVRM: Xid (PCI:0000:00:06): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
gpus:
  description: One entry per GPU in nvidia-smi's index order. Values nvidia-smi reports as N/A are null.
  returned: success
  type: list
  elements: dict
  contains:
    index:
      description: nvidia-smi index of the GPU.
      type: int
      sample: 0
    uuid:
      description: GPU UUID.
      type: str
      sample: GPU-695ed85e-b1c2-887f-8f65-f0747f640f12
    name:
      description: Product name.
      type: str
      sample: NVIDIA H200
    architecture:
      description: Product architecture.
      type: str
      sample: Hopper
    serial:
      description: Board serial number.
      type: str
      sample: "1653824069987"
    pci_bus_id:
      description: PCI bus id as nvidia-smi prints it.
      type: str
      sample: "00000000:00:06.0"
    driver_version:
      description: Driver version.
      type: str
      sample: "580.159.04"
    memory_total_mib:
      description: Total framebuffer memory in MiB.
      type: int
      sample: 143771
    memory_used_mib:
      description: Used framebuffer memory in MiB.
      type: int
      sample: 0
    temperature_c:
      description: GPU temperature in degrees Celsius.
      type: int
      sample: 39
    power_draw_w:
      description: Power draw in watts (instantaneous where the driver reports it).
      type: float
      sample: 128.38
    power_limit_w:
      description: Power limit in force, in watts.
      type: float
      sample: 700.0
    persistence_mode:
      description: Whether persistence mode is on.
      type: bool
      sample: true
    ecc_mode:
      description: Current ECC mode, V(enabled) or V(disabled).
      type: str
      sample: enabled
    ecc_uncorrected_volatile:
      description: Uncorrectable ECC errors since the driver loaded, all memory kinds.
      type: int
      sample: 0
    ecc_uncorrected_aggregate:
      description: Uncorrectable ECC errors over the GPU's lifetime, all memory kinds.
      type: int
      sample: 0
    remapped_rows:
      description: Row remapping state (Ampere and later); null on GPUs without a row remapper.
      type: dict
      contains:
        correctable:
          description: Rows remapped for correctable errors.
          type: int
        uncorrectable:
          description: Rows remapped for uncorrectable errors.
          type: int
        pending:
          description: A remap waits for a GPU reset.
          type: bool
        failure:
          description: A remap failed.
          type: bool
    retired_pages_pending:
      description: A page retirement waits for a reset (before Ampere); null on GPUs that remap rows instead.
      type: bool
      sample: null
    pcie:
      description: PCIe link generation and width, current and maximum.
      type: dict
      contains:
        gen_current:
          description: Current link generation.
          type: int
        gen_max:
          description: Highest link generation of the GPU and its slot.
          type: int
        width_current:
          description: Current link width (lanes).
          type: int
        width_max:
          description: Maximum link width (lanes).
          type: int
    clocks_event_reasons:
      description: Names of the active clock event reasons.
      type: list
      elements: str
      sample: [sw_power_cap]
    mig_mode:
      description: Current MIG mode, V(enabled) or V(disabled); null on GPUs without MIG.
      type: str
      sample: disabled
    mig_mode_pending:
      description: MIG mode after the next GPU reset.
      type: str
      sample: disabled
    recovery_action:
      description: Recovery action the driver asks for (driver 570 and later), V(none) when all is well.
      type: str
      sample: none
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.gpu_health import (
    GpuHealthError,
    argument_spec,
    check_node,
    check_params,
    describe_problem,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    errors = check_params(module.params)
    if errors:
        module.fail_json(msg='Invalid parameters: %s' % '; '.join(errors))
    try:
        result = check_node(module, module.params)
    except GpuHealthError as exc:
        module.fail_json(msg=str(exc))
    if module.params['fail_on_unhealthy'] and not result['healthy']:
        every_problem = '; '.join(describe_problem(problem) for problem in result['problems'])
        module.fail_json(msg='GPU health check failed: %s' % every_problem, **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
