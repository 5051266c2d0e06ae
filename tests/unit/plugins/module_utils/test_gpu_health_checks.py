"""plugins/module_utils/gpu_health.py: each check on recorded H200 output with only the field under test changed."""
import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.gpu_health import (
    DEFAULT_OPTIONS,
    attribute_xid_events,
    check_params,
    evaluate,
    is_healthy,
    summarize,
)
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvidia_smi import parse_query_xml, parse_xid_events
from nvidia_smi_recorded import KERNEL_LOG_DIR, derive, read_recorded, with_gpus


def problems_of(text, xid_events=(), **options):
    return evaluate(parse_query_xml(text), list(xid_events), options)


def checks(problems):
    return sorted((problem['gpu'], problem['check'], problem['severity']) for problem in problems)


def test_idle_h200_has_no_problem(idle_xml):
    assert problems_of(idle_xml, expected_gpu_count=1, expected_product='H200', min_driver_version='580.159.04') == []


def test_busy_h200_at_its_power_cap_is_healthy(busy_xml):
    """A software power cap at 100 % load is normal operation, not a fault."""
    problems = problems_of(busy_xml)
    assert problems == []
    assert is_healthy(problems)


# (fault, edits to the recorded idle XML, expected (gpu, check, severity))
FAULTS = [
    ('uncorrectable ECC since driver load',
     [('<dram_correctable>0</dram_correctable>\n\t\t\t\t<dram_uncorrectable>0</dram_uncorrectable>\n\t\t\t</volatile>',
       '<dram_correctable>0</dram_correctable>\n\t\t\t\t<dram_uncorrectable>1</dram_uncorrectable>\n\t\t\t</volatile>')],
     (0, 'ecc_uncorrected_volatile', 'critical')),
    ('uncorrectable ECC over the lifetime',
     [('<dram_correctable>0</dram_correctable>\n\t\t\t\t<dram_uncorrectable>0</dram_uncorrectable>\n\t\t\t\t<sram_threshold_exceeded>',
       '<dram_correctable>0</dram_correctable>\n\t\t\t\t<dram_uncorrectable>4</dram_uncorrectable>\n\t\t\t\t<sram_threshold_exceeded>')],
     (0, 'ecc_uncorrected_aggregate', 'warning')),
    ('pending row remap', [('<remapped_row_pending>No</remapped_row_pending>', '<remapped_row_pending>Yes</remapped_row_pending>')],
     (0, 'remapped_rows', 'critical')),
    ('row remap failure', [('<remapped_row_failure>No</remapped_row_failure>', '<remapped_row_failure>Yes</remapped_row_failure>')],
     (0, 'remapped_rows', 'critical')),
    ('too hot', [('<gpu_temp>39 C</gpu_temp>', '<gpu_temp>91 C</gpu_temp>')], (0, 'temperature', 'critical')),
    ('degraded PCIe width', [('<current_link_width>16x</current_link_width>', '<current_link_width>8x</current_link_width>')],
     (0, 'pcie_width', 'critical')),
    ('lower PCIe generation (idle power saving)', [('<current_link_gen>5</current_link_gen>', '<current_link_gen>1</current_link_gen>')],
     (0, 'pcie_gen', 'warning')),
    ('persistence mode off', [('<persistence_mode>Enabled</persistence_mode>', '<persistence_mode>Disabled</persistence_mode>')],
     (0, 'persistence_mode', 'warning')),
    ('hardware slowdown', [('<clocks_event_reason_hw_slowdown>Not Active<', '<clocks_event_reason_hw_slowdown>Active<')],
     (0, 'clocks_event_reasons', 'critical')),
    ('hardware thermal slowdown', [('<clocks_event_reason_hw_thermal_slowdown>Not Active<', '<clocks_event_reason_hw_thermal_slowdown>Active<')],
     (0, 'clocks_event_reasons', 'critical')),
    ('hardware power brake', [('<clocks_event_reason_hw_power_brake_slowdown>Not Active<', '<clocks_event_reason_hw_power_brake_slowdown>Active<')],
     (0, 'clocks_event_reasons', 'critical')),
    ('software thermal slowdown', [('<clocks_event_reason_sw_thermal_slowdown>Not Active<', '<clocks_event_reason_sw_thermal_slowdown>Active<')],
     (0, 'clocks_event_reasons', 'critical')),
    ('MIG enabled', [('<current_mig>Disabled</current_mig>', '<current_mig>Enabled</current_mig>'),
                     ('<pending_mig>Disabled</pending_mig>', '<pending_mig>Enabled</pending_mig>')],
     (0, 'mig_mode', 'critical')),
    ('MIG change pending a reset', [('<pending_mig>Disabled</pending_mig>', '<pending_mig>Enabled</pending_mig>')],
     (0, 'mig_mode', 'warning')),
    ('driver asks for a reset', [('<gpu_recovery_action>None</gpu_recovery_action>', '<gpu_recovery_action>Reset</gpu_recovery_action>')],
     (0, 'recovery_action', 'critical')),
    ('GPU missing from the listing', [('<attached_gpus>1</attached_gpus>', '<attached_gpus>2</attached_gpus>')],
     (None, 'gpu_count', 'critical')),
]


@pytest.mark.parametrize('edits, expected', [(edits, expected) for _name, edits, expected in FAULTS],
                         ids=[name for name, _edits, _expected in FAULTS])
def test_each_fault_is_found_with_its_severity(idle_xml, edits, expected):
    problems = problems_of(derive(idle_xml, *edits))
    assert checks(problems) == [expected]
    assert is_healthy(problems) == (expected[2] == 'warning')


def test_pre_ampere_pending_page_retirement_is_critical(idle_xml):
    text = derive(idle_xml, ('<pending_retirement>N/A</pending_retirement>', '<pending_retirement>Yes</pending_retirement>'))
    assert checks(problems_of(text)) == [(0, 'retired_pages', 'critical')]


def test_thresholds_are_options(idle_xml):
    hot = derive(idle_xml, ('<gpu_temp>39 C</gpu_temp>', '<gpu_temp>91 C</gpu_temp>'))
    assert problems_of(hot, max_temperature_c=95) == []
    assert checks(problems_of(idle_xml, max_temperature_c=30)) == [(0, 'temperature', 'critical')]
    ecc = derive(idle_xml, ('<dram_correctable>0</dram_correctable>\n\t\t\t\t<dram_uncorrectable>0</dram_uncorrectable>\n\t\t\t</volatile>',
                            '<dram_correctable>0</dram_correctable>\n\t\t\t\t<dram_uncorrectable>2</dram_uncorrectable>\n\t\t\t</volatile>'))
    assert problems_of(ecc, max_ecc_uncorrected_volatile=2) == []
    no_persistence = derive(idle_xml, ('<persistence_mode>Enabled</persistence_mode>', '<persistence_mode>Disabled</persistence_mode>'))
    assert problems_of(no_persistence, require_persistence_mode=False) == []


def test_allowed_clock_reasons_are_an_option(busy_xml):
    assert checks(problems_of(busy_xml, allowed_clocks_event_reasons=['gpu_idle'])) == [(0, 'clocks_event_reasons', 'critical')]


def test_expected_product_count_and_driver(idle_xml):
    assert problems_of(idle_xml, expected_product='h200') == []
    assert checks(problems_of(idle_xml, expected_product='H100')) == [(0, 'product', 'critical')]
    assert checks(problems_of(idle_xml, expected_gpu_count=8)) == [(None, 'gpu_count', 'critical')]
    assert problems_of(idle_xml, min_driver_version='550.54.15') == []
    assert checks(problems_of(idle_xml, min_driver_version='590')) == [(None, 'driver_version', 'critical')]
    # 580.159.04 and 580.159.4 are the same version.
    assert problems_of(idle_xml, min_driver_version='580.159.4') == []


def test_mig_expectation(idle_xml):
    assert checks(problems_of(idle_xml, expected_mig_mode='enabled')) == [(0, 'mig_mode', 'critical')]
    enabled = derive(idle_xml, ('<current_mig>Disabled</current_mig>', '<current_mig>Enabled</current_mig>'),
                     ('<pending_mig>Disabled</pending_mig>', '<pending_mig>Enabled</pending_mig>'))
    assert problems_of(enabled, expected_mig_mode='enabled') == []
    assert problems_of(enabled, expected_mig_mode='any') == []


def test_one_sick_gpu_among_eight_is_named(idle_xml):
    text = with_gpus(idle_xml, 8)
    # Only the fourth GPU's link is degraded.
    fourth = text.index('00000000:00:09.0')
    head, tail = text[:fourth], text[fourth:]
    tail = tail.replace('<current_link_width>16x</current_link_width>', '<current_link_width>4x</current_link_width>', 1)
    problems = problems_of(head + tail, expected_gpu_count=8)
    assert checks(problems) == [(3, 'pcie_width', 'critical')]
    assert 'x4 of x16' in problems[0]['detail']


def test_critical_xids_are_attributed_and_counted(idle_xml):
    inventory = parse_query_xml(idle_xml)
    events = attribute_xid_events(parse_xid_events(read_recorded('journalctl-k.txt', KERNEL_LOG_DIR)), inventory['gpus'])
    assert [event['gpu'] for event in events] == [0, 0, 0, 0]
    problems = evaluate(inventory, events, {})
    # XID 13 (application fault) and 63 (remap recorded) are not in the critical list; 48 twice makes one problem.
    assert checks(problems) == [(0, 'xid', 'critical')]
    assert 'XID 48' in problems[0]['detail'] and '2 time(s)' in problems[0]['detail']
    assert evaluate(inventory, events, {'xid_critical_codes': [13]})[0]['detail'].startswith('XID 13')


def test_xid_at_an_address_without_a_listed_gpu_is_node_wide(idle_xml):
    inventory = parse_query_xml(idle_xml)
    events = attribute_xid_events(parse_xid_events(read_recorded('dmesg.txt', KERNEL_LOG_DIR)), inventory['gpus'])
    assert [(event['gpu'], event['code']) for event in events] == [(None, 79), (0, 31), (None, 79)]
    assert checks(evaluate(inventory, events, {})) == [(None, 'xid', 'critical'), (None, 'xid', 'critical')]


def test_summary_names_the_verdict_and_every_problem(idle_xml, busy_xml):
    assert summarize(parse_query_xml(busy_xml), []) == 'healthy: 1 x NVIDIA H200, driver 580.159.04'
    hot = derive(idle_xml, ('<gpu_temp>39 C</gpu_temp>', '<gpu_temp>91 C</gpu_temp>'))
    line = summarize(parse_query_xml(hot), problems_of(hot))
    assert line.startswith('UNHEALTHY: 1 x NVIDIA H200')
    assert 'GPU 0 temperature (critical): temperature 91 C is above the maximum 85 C' in line


def test_default_options_are_valid():
    assert check_params(DEFAULT_OPTIONS) == []


@pytest.mark.parametrize('option, value, message', [
    ('expected_gpu_count', -1, 'expected_gpu_count must be 0 or more'),
    ('min_driver_version', 'latest', 'min_driver_version'),
    ('max_temperature_c', -5, 'max_temperature_c must be 0 or more'),
    ('allowed_clocks_event_reasons', ['gpu_idle', 'sw_power_capp'], 'allowed_clocks_event_reasons: unknown reason(s) sw_power_capp'),
    ('xid_critical_codes', [79, 0], 'xid_critical_codes must be positive'),
])
def test_bad_options_are_named(option, value, message):
    params = dict(DEFAULT_OPTIONS)
    params[option] = value
    errors = check_params(params)
    assert len(errors) == 1 and message in errors[0]
