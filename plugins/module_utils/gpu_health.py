# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU health: pure checks over parsed nvidia-smi output, and the two commands that feed them.

``check_params`` and ``evaluate`` are pure functions (unit-tested on recorded
output). ``run_nvidia_smi`` and ``read_kernel_log`` only run the commands declared
in COMMANDS through the collection's command runner and hand the text to
plugins/module_utils/nvidia_smi.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.command_runner import (
    Command,
    CommandError,
    CommandRunner,
)
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvidia_smi import (
    NvidiaSmiParseError,
    describe_exit_code,
    parse_query_xml,
    parse_xid_events,
    pci_location,
    version_tuple,
)

CRITICAL = 'critical'
WARNING = 'warning'

# Every clock event reason nvidia-smi -q -x reports (names without their prefix).
CLOCKS_EVENT_REASONS = (
    'gpu_idle', 'applications_clocks_setting', 'sw_power_cap', 'hw_slowdown', 'hw_thermal_slowdown',
    'hw_power_brake_slowdown', 'sync_boost', 'sw_thermal_slowdown', 'display_clocks_setting',
)
# Normal operation: an idle GPU, clocks an administrator set, and a busy GPU at its power limit.
DEFAULT_ALLOWED_CLOCKS_EVENT_REASONS = ('gpu_idle', 'applications_clocks_setting', 'sw_power_cap')

# XIDs that mean the GPU (not the application) needs a reset, a reboot or a
# replacement: 48 double-bit ECC, 61/62 internal micro-controller breakpoint/halt,
# 64 row-remapper or page-retirement failure, 74 NVLink error, 79 fallen off the bus,
# 92 high single-bit ECC rate, 95 uncontained ECC error, 119/120 GSP timeout/error,
# 140 unrecovered ECC error, 143 GPU initialization failure.
DEFAULT_XID_CRITICAL_CODES = (48, 61, 62, 64, 74, 79, 92, 95, 119, 120, 140, 143)

MIG_MODES = ('disabled', 'enabled', 'any')

# The module's options with their types, defaults and choices: the one place in code.
# The module's DOCUMENTATION and the role's defaults/main.yml and meta/argument_specs.yml
# say the same in YAML; tests/unit/plugins/modules/test_gpu_health_options.py keeps them equal.
_ARGUMENT_SPEC = dict(
    nvidia_smi=dict(type='str', default='nvidia-smi'),
    fail_on_unhealthy=dict(type='bool', default=True),
    expected_gpu_count=dict(type='int'),
    expected_product=dict(type='str'),
    min_driver_version=dict(type='str'),
    max_temperature_c=dict(type='int', default=85),
    max_ecc_uncorrected_volatile=dict(type='int', default=0),
    max_ecc_uncorrected_aggregate=dict(type='int', default=0),
    require_persistence_mode=dict(type='bool', default=True),
    # Checked by check_params against CLOCKS_EVENT_REASONS, for a message listing the known names.
    allowed_clocks_event_reasons=dict(type='list', elements='str', default=list(DEFAULT_ALLOWED_CLOCKS_EVENT_REASONS)),
    expected_mig_mode=dict(type='str', choices=list(MIG_MODES), default='disabled'),
    xid_critical_codes=dict(type='list', elements='int', default=list(DEFAULT_XID_CRITICAL_CODES)),
)


def argument_spec():
    """The module's argument spec (a fresh copy: AnsibleModule may keep what it is given)."""
    return copy.deepcopy(_ARGUMENT_SPEC)


# The options evaluate() reads, with their defaults (None: not checked).
DEFAULT_OPTIONS = dict((name, spec.get('default')) for name, spec in _ARGUMENT_SPEC.items()
                       if name not in ('nvidia_smi', 'fail_on_unhealthy'))


class GpuHealthError(Exception):
    """nvidia-smi could not be found, run or understood; the message names the cause."""


def check_params(params):
    """Problems with the options, as messages naming the option; empty when they are usable."""
    errors = []
    count = params.get('expected_gpu_count')
    if count is not None and count < 0:
        errors.append('expected_gpu_count must be 0 or more, got %d' % count)
    if params.get('min_driver_version') is not None:
        try:
            version_tuple(params['min_driver_version'])
        except ValueError as exc:
            errors.append('min_driver_version: %s' % exc)
    for name in ('max_temperature_c', 'max_ecc_uncorrected_volatile', 'max_ecc_uncorrected_aggregate'):
        value = params.get(name)
        if value is not None and value < 0:
            errors.append('%s must be 0 or more, got %d' % (name, value))
    unknown = [reason for reason in params.get('allowed_clocks_event_reasons') or [] if reason not in CLOCKS_EVENT_REASONS]
    if unknown:
        errors.append('allowed_clocks_event_reasons: unknown reason(s) %s; known: %s'
                      % (', '.join(unknown), ', '.join(CLOCKS_EVENT_REASONS)))
    bad_codes = [code for code in params.get('xid_critical_codes') or [] if code <= 0]
    if bad_codes:
        errors.append('xid_critical_codes must be positive XID numbers, got %s' % ', '.join(str(code) for code in bad_codes))
    return errors


def _problem(gpu, check, severity, detail):
    return {'gpu': gpu, 'check': check, 'severity': severity, 'detail': detail}


def _node_checks(inventory, options):
    problems = []
    gpus = inventory['gpus']
    expected = options.get('expected_gpu_count')
    if expected is not None and len(gpus) != expected:
        problems.append(_problem(None, 'gpu_count', CRITICAL, 'nvidia-smi lists %d GPU(s), expected %d' % (len(gpus), expected)))
    attached = inventory.get('attached_gpus')
    if attached is not None and attached != len(gpus):
        problems.append(_problem(None, 'gpu_count', CRITICAL,
                                 'nvidia-smi reports %d attached GPU(s) but describes %d' % (attached, len(gpus))))
    minimum = options.get('min_driver_version')
    if minimum is not None:
        driver = inventory.get('driver_version')
        try:
            too_old = driver is None or version_tuple(driver) < version_tuple(minimum)
        except ValueError:
            too_old = True
        if too_old:
            problems.append(_problem(None, 'driver_version', CRITICAL,
                                     'driver %s is older than the minimum %s' % (driver or 'unknown', minimum)))
    return problems


def _memory_checks(gpu, options):
    problems = []
    index = gpu['index']
    volatile = gpu['ecc_uncorrected_volatile']
    if volatile is not None and volatile > options['max_ecc_uncorrected_volatile']:
        problems.append(_problem(index, 'ecc_uncorrected_volatile', CRITICAL,
                                 '%d uncorrectable ECC error(s) since the driver loaded (maximum %d)'
                                 % (volatile, options['max_ecc_uncorrected_volatile'])))
    aggregate = gpu['ecc_uncorrected_aggregate']
    if aggregate is not None and aggregate > options['max_ecc_uncorrected_aggregate']:
        problems.append(_problem(index, 'ecc_uncorrected_aggregate', WARNING,
                                 '%d uncorrectable ECC error(s) over the GPU lifetime (maximum %d)'
                                 % (aggregate, options['max_ecc_uncorrected_aggregate'])))
    rows = gpu['remapped_rows'] or {}
    if rows.get('pending'):
        problems.append(_problem(index, 'remapped_rows', CRITICAL, 'a row remap is pending: the GPU needs a reset'))
    if rows.get('failure'):
        problems.append(_problem(index, 'remapped_rows', CRITICAL, 'row remapping failed: the GPU needs replacing'))
    if gpu['retired_pages_pending']:
        problems.append(_problem(index, 'retired_pages', CRITICAL, 'a page retirement is pending: the GPU needs a reset'))
    return problems


def _gpu_checks(gpu, options):
    problems = _memory_checks(gpu, options)
    index = gpu['index']
    product = options.get('expected_product')
    if product and product.lower() not in (gpu['name'] or '').lower():
        problems.append(_problem(index, 'product', CRITICAL, 'product is %s, expected %s' % (gpu['name'], product)))
    temperature = gpu['temperature_c']
    if temperature is not None and temperature > options['max_temperature_c']:
        problems.append(_problem(index, 'temperature', CRITICAL,
                                 'temperature %d C is above the maximum %d C' % (temperature, options['max_temperature_c'])))
    pcie = gpu['pcie']
    if None not in (pcie['width_current'], pcie['width_max']) and pcie['width_current'] < pcie['width_max']:
        problems.append(_problem(index, 'pcie_width', CRITICAL,
                                 'PCIe link runs at x%d of x%d' % (pcie['width_current'], pcie['width_max'])))
    # Idle GPUs lower their link generation to save power: only a warning.
    if None not in (pcie['gen_current'], pcie['gen_max']) and pcie['gen_current'] < pcie['gen_max']:
        problems.append(_problem(index, 'pcie_gen', WARNING,
                                 'PCIe link runs at generation %d of %d' % (pcie['gen_current'], pcie['gen_max'])))
    if options['require_persistence_mode'] and gpu['persistence_mode'] is False:
        problems.append(_problem(index, 'persistence_mode', WARNING, 'persistence mode is off'))
    unexpected = [reason for reason in gpu['clocks_event_reasons'] if reason not in options['allowed_clocks_event_reasons']]
    if unexpected:
        problems.append(_problem(index, 'clocks_event_reasons', CRITICAL, 'clocks reduced by %s' % ', '.join(unexpected)))
    expected_mig = options['expected_mig_mode']
    # A GPU without MIG support reports N/A (None): it is in effect "disabled".
    mig = gpu['mig_mode'] or 'disabled'
    if expected_mig != 'any' and mig != expected_mig:
        problems.append(_problem(index, 'mig_mode', CRITICAL, 'MIG mode is %s, expected %s' % (mig, expected_mig)))
    if gpu['mig_mode'] and gpu['mig_mode_pending'] and gpu['mig_mode_pending'] != gpu['mig_mode']:
        problems.append(_problem(index, 'mig_mode', WARNING,
                                 'MIG mode %s is pending a GPU reset' % gpu['mig_mode_pending']))
    if gpu['recovery_action'] not in (None, 'none'):
        problems.append(_problem(index, 'recovery_action', CRITICAL, 'the driver asks for recovery action %s' % gpu['recovery_action']))
    return problems


def attribute_xid_events(events, gpus):
    """Add to each XID event the index of the GPU at its PCI address (None when no listed GPU is there)."""
    by_location = dict((pci_location(gpu['pci_bus_id']), gpu['index']) for gpu in gpus)
    return [dict(event, gpu=by_location.get(pci_location(event['pci_bus_id']))) for event in events]


def _xid_checks(xid_events, options):
    """One critical problem per GPU and critical XID code, however often it was logged."""
    critical = set(options['xid_critical_codes'])
    seen = {}
    for event in xid_events:
        if event['code'] in critical:
            key = (event['gpu'], event['pci_bus_id'], event['code'])
            seen.setdefault(key, []).append(event)
    problems = []
    for (gpu, bus_id, code), events in seen.items():
        problems.append(_problem(gpu, 'xid', CRITICAL, 'XID %d at PCI %s logged %d time(s) since boot, last: %s'
                                 % (code, bus_id, len(events), events[-1]['detail'] or events[-1]['line'])))
    return problems


def evaluate(inventory, xid_events, options):
    """Every problem found in a parsed nvidia-smi inventory and the XID events; pure."""
    merged = dict(DEFAULT_OPTIONS)
    # None means "use the default" (or, for the optional checks, "do not check").
    merged.update(dict((key, value) for key, value in options.items() if value is not None))
    problems = _node_checks(inventory, merged)
    for gpu in inventory['gpus']:
        problems.extend(_gpu_checks(gpu, merged))
    problems.extend(_xid_checks(xid_events, merged))
    return problems


def is_healthy(problems):
    """Healthy means no critical problem; warnings are reported but do not fail a node."""
    return not any(problem['severity'] == CRITICAL for problem in problems)


def describe_problem(problem):
    where = 'node' if problem['gpu'] is None else 'GPU %s' % problem['gpu']
    return '%s %s (%s): %s' % (where, problem['check'], problem['severity'], problem['detail'])


def summarize(inventory, problems):
    """One line for a play's output: verdict, GPUs, driver, and every problem."""
    names = sorted(set(gpu['name'] or 'unknown GPU' for gpu in inventory['gpus']))
    gpus = '%d x %s' % (len(inventory['gpus']), ' + '.join(names) if names else 'GPU')
    head = '%s: %s, driver %s' % ('healthy' if is_healthy(problems) else 'UNHEALTHY', gpus, inventory.get('driver_version') or 'unknown')
    if not problems:
        return head
    return '%s; %s' % (head, '; '.join(describe_problem(problem) for problem in problems))


# ---- Running the commands (kept apart from the parsing above) ----

def _inventory_of(result):
    """Parsed ``nvidia-smi -q -x``; its exit code is explained with nvidia-smi's documented meaning."""
    if result.rc != 0:
        message = result.last_line()
        raise GpuHealthError('%s -q -x exited with %d: %s%s' % (
            result.argv[0], result.rc, describe_exit_code(result.rc), (' (%s)' % message) if message else ''))
    try:
        return parse_query_xml(result.stdout)
    except NvidiaSmiParseError as exc:
        raise GpuHealthError('%s -q -x did not print nvidia-smi XML: %s' % (result.argv[0], exc))


# The tools the module runs, declared once (plugins/module_utils/command_runner.py).
COMMANDS = {
    'nvidia_smi': Command('nvidia-smi', ['-q', '-x'], parse=_inventory_of, ok_rcs=None),
    'journalctl': Command('journalctl', ['-k', '--no-pager', '--quiet']),
    'dmesg': Command('dmesg'),
}


def command_runner(module, nvidia_smi):
    """The runner for COMMANDS, nvidia-smi being ``nvidia_smi``: a path (has a /) or a name looked up on PATH."""
    if os.sep in nvidia_smi:
        if not os.path.exists(nvidia_smi):
            raise GpuHealthError('nvidia_smi: %s does not exist' % nvidia_smi)
        if os.path.isdir(nvidia_smi) or not os.access(nvidia_smi, os.X_OK):
            raise GpuHealthError('nvidia_smi: %s is not an executable file' % nvidia_smi)
    return CommandRunner(module, COMMANDS, binaries={'nvidia_smi': nvidia_smi})


def run_nvidia_smi(runner):
    """Run ``nvidia-smi -q -x`` once and return its parsed inventory."""
    try:
        return runner.run('nvidia_smi')
    except CommandError as exc:
        raise GpuHealthError('%s (is the NVIDIA driver installed?)' % exc)


def read_kernel_log(runner):
    """Kernel log since boot: ``journalctl -k``, or ``dmesg`` where the journal has no kernel lines.

    Returns (source, text); source is None when neither could be read.
    """
    attempts = []
    for source in ('journalctl', 'dmesg'):
        if not runner.available(source):
            attempts.append('%s not found' % source)
            continue
        result = runner.result(source)
        # journalctl marks an empty result with "-- No entries --" (without --quiet on old versions).
        if result.rc == 0 and any(line.strip() and not line.startswith('-- ') for line in result.stdout.splitlines()):
            return source, result.stdout
        attempts.append('%s exited with %d%s' % (source, result.rc, (': ' + result.stderr.strip().splitlines()[-1])
                                                 if result.stderr.strip() else ' and printed nothing'))
    return None, '; '.join(attempts)


def check_node(module, params):
    """Run nvidia-smi and read the kernel log, then evaluate; returns the module's result keys."""
    runner = command_runner(module, params['nvidia_smi'])
    inventory = run_nvidia_smi(runner)
    source, kernel_log = read_kernel_log(runner)
    xid_events = attribute_xid_events(parse_xid_events(kernel_log) if source else [], inventory['gpus'])
    options = dict((key, params.get(key)) for key in DEFAULT_OPTIONS)
    problems = evaluate(inventory, xid_events, options)
    if source is None:
        problems.append(_problem(None, 'kernel_log', WARNING, 'XID events not checked: %s' % kernel_log))
    return {
        'gpus': inventory['gpus'],
        'driver_version': inventory['driver_version'],
        'cuda_version': inventory['cuda_version'],
        'xid_events': xid_events,
        'kernel_log_source': source,
        'problems': problems,
        'healthy': is_healthy(problems),
        'summary': summarize(inventory, problems),
    }
