"""The real gpu_health module, run by ansible, with nvidia-smi, journalctl and dmesg replaced by scripts on PATH.

The scripts print recorded output (tests/fixtures) and exit with nvidia-smi's
documented exit codes; the module runs them exactly as it runs the real tools.
"""
import os

import pytest

from helpers import VENV_BIN, run_module
from nvidia_smi_recorded import (
    H200_DIR, KERNEL_LOG_DIR, derive, kernel_log_stand_ins, nvidia_smi_stand_in, print_file, read_recorded, write_script,
)

MODULE = 'llmscale.gpu_serving.gpu_health'

GPU_KEYS = {
    'index', 'uuid', 'name', 'pci_bus_id', 'driver_version', 'memory_total_mib', 'memory_used_mib', 'temperature_c',
    'power_draw_w', 'power_limit_w', 'persistence_mode', 'ecc_mode', 'ecc_uncorrected_volatile',
    'ecc_uncorrected_aggregate', 'remapped_rows', 'retired_pages_pending', 'pcie', 'clocks_event_reasons', 'mig_mode',
}


@pytest.fixture
def fake_bin(tmp_path):
    """A directory put first on PATH; by default journalctl has no kernel lines and dmesg no XID."""
    directory = tmp_path / 'bin'
    directory.mkdir()
    kernel_log_stand_ins(directory)
    return directory


def run(fake_bin, args, check=False):
    # `ansible -a '{}'` reads as raw params, so an empty argument set names the default explicitly.
    args = args or {'nvidia_smi': 'nvidia-smi'}
    env = {'PATH': os.pathsep.join([str(fake_bin), VENV_BIN, os.environ.get('PATH', '')])}
    return run_module(MODULE, args, env=env, check=check)


def fake_nvidia_smi(fake_bin, text=None, recorded=None, exit_code=0):
    """nvidia-smi on PATH printing recorded output (or text derived from it) and exiting with exit_code."""
    return nvidia_smi_stand_in(fake_bin / 'nvidia-smi', recorded=recorded, text=text, exit_code=exit_code)


def test_busy_h200_returns_the_whole_contract(fake_bin):
    fake_nvidia_smi(fake_bin, recorded='q-under-load.xml')
    # The default nvidia_smi (a name) is found on PATH.
    rc, result = run(fake_bin, {'expected_gpu_count': 1, 'expected_product': 'H200', 'min_driver_version': '550.54.15'})
    assert rc == 0, result
    assert result['changed'] is False
    assert result['healthy'] is True
    assert result['problems'] == []
    assert result['driver_version'] == '580.159.04'
    assert result['xid_events'] == []
    assert result['kernel_log_source'] == 'dmesg'
    assert result['summary'] == 'healthy: 1 x NVIDIA H200, driver 580.159.04'
    gpu = result['gpus'][0]
    assert GPU_KEYS <= set(gpu)
    assert gpu['clocks_event_reasons'] == ['sw_power_cap']
    assert set(gpu['remapped_rows']) == {'correctable', 'uncorrectable', 'pending', 'failure'}
    assert set(gpu['pcie']) == {'gen_current', 'gen_max', 'width_current', 'width_max'}


def test_unhealthy_gpu_fails_naming_every_problem(fake_bin):
    text = derive(read_recorded('q.xml'),
                  ('<current_link_width>16x</current_link_width>', '<current_link_width>8x</current_link_width>'),
                  ('<remapped_row_pending>No</remapped_row_pending>', '<remapped_row_pending>Yes</remapped_row_pending>'))
    path = fake_nvidia_smi(fake_bin, text=text)
    rc, result = run(fake_bin, {'nvidia_smi': path})
    assert rc != 0
    assert result['failed'] is True
    assert result['healthy'] is False
    assert 'GPU 0 remapped_rows (critical): a row remap is pending' in result['msg']
    assert 'GPU 0 pcie_width (critical): PCIe link runs at x8 of x16' in result['msg']


def test_unhealthy_gpu_is_reported_without_failing_when_asked(fake_bin):
    text = derive(read_recorded('q.xml'), ('<clocks_event_reason_hw_slowdown>Not Active<', '<clocks_event_reason_hw_slowdown>Active<'))
    path = fake_nvidia_smi(fake_bin, text=text)
    rc, result = run(fake_bin, {'nvidia_smi': path, 'fail_on_unhealthy': False}, check=True)
    assert rc == 0, result
    assert result['healthy'] is False
    assert [(p['gpu'], p['check'], p['severity']) for p in result['problems']] == [(0, 'clocks_event_reasons', 'critical')]


def test_xids_come_from_journalctl(fake_bin):
    fake_nvidia_smi(fake_bin, recorded='q.xml')
    write_script(fake_bin / 'journalctl', print_file(os.path.join(KERNEL_LOG_DIR, 'journalctl-k.txt')))
    write_script(fake_bin / 'dmesg', 'echo dmesg must not be read when the journal has kernel lines >&2; exit 1')
    rc, result = run(fake_bin, {'fail_on_unhealthy': False})
    assert rc == 0, result
    assert result['kernel_log_source'] == 'journalctl'
    assert [(event['gpu'], event['code']) for event in result['xid_events']] == [(0, 13), (0, 48), (0, 63), (0, 48)]
    assert [(p['gpu'], p['check']) for p in result['problems']] == [(0, 'xid')]


def test_xids_come_from_dmesg_when_the_journal_has_no_kernel_lines(fake_bin):
    fake_nvidia_smi(fake_bin, recorded='q.xml')
    write_script(fake_bin / 'journalctl', "echo '-- No entries --'")
    write_script(fake_bin / 'dmesg', print_file(os.path.join(KERNEL_LOG_DIR, 'dmesg.txt')))
    rc, result = run(fake_bin, {'fail_on_unhealthy': False})
    assert rc == 0, result
    assert result['kernel_log_source'] == 'dmesg'
    assert [(event['gpu'], event['code']) for event in result['xid_events']] == [(None, 79), (0, 31), (None, 79)]
    assert result['healthy'] is False
    assert [(p['gpu'], p['check']) for p in result['problems']] == [(None, 'xid'), (None, 'xid')]


def test_unreadable_kernel_log_is_a_warning_not_a_failure(fake_bin):
    fake_nvidia_smi(fake_bin, recorded='q.xml')
    write_script(fake_bin / 'dmesg', 'echo "dmesg: read kernel buffer failed: Operation not permitted" >&2; exit 1')
    rc, result = run(fake_bin, {})
    assert rc == 0, result
    assert result['healthy'] is True
    assert result['kernel_log_source'] is None
    assert result['problems'][0]['check'] == 'kernel_log'
    assert 'Operation not permitted' in result['problems'][0]['detail']


@pytest.mark.parametrize('recorded, exit_code, meaning', [
    ('error-bad-index.txt', 6, 'exited with 6: a query to find an object was unsuccessful (no such device) (No devices were found)'),
    ('version.txt', 9, 'exited with 9: the NVIDIA driver is not loaded'),
    ('version.txt', 15, 'exited with 15: the GPU has fallen off the bus'),
])
def test_nvidia_smi_exit_codes_fail_clearly(fake_bin, recorded, exit_code, meaning):
    fake_nvidia_smi(fake_bin, recorded=recorded, exit_code=exit_code)
    rc, result = run(fake_bin, {})
    assert rc != 0
    assert meaning in result['msg']
    assert 'Traceback' not in str(result)


def test_output_that_is_not_nvidia_smi_xml_fails_clearly(fake_bin):
    # The text report (nvidia-smi -q without -x) of the same GPU.
    fake_nvidia_smi(fake_bin, recorded='q.txt')
    rc, result = run(fake_bin, {})
    assert rc != 0
    assert 'did not print nvidia-smi XML: the output is not well-formed XML' in result['msg']


def test_missing_or_non_executable_nvidia_smi_fails_clearly(fake_bin, tmp_path):
    rc, result = run(fake_bin, {'nvidia_smi': 'nvidia-smi-not-installed'})
    assert rc != 0 and 'nvidia_smi: nvidia-smi-not-installed was not found on PATH' in result['msg']
    not_executable = tmp_path / 'nvidia-smi.xml'
    not_executable.write_text(read_recorded('q.xml'), encoding='utf-8')
    rc, result = run(fake_bin, {'nvidia_smi': str(not_executable)})
    assert rc != 0 and result['msg'] == 'nvidia_smi: %s is not an executable file' % not_executable


@pytest.mark.parametrize('args, message', [
    ({'expected_mig_mode': 'off'}, 'expected_mig_mode must be one of: disabled, enabled, any'),
    ({'allowed_clocks_event_reasons': ['power_cap']}, 'allowed_clocks_event_reasons: unknown reason(s) power_cap'),
    ({'min_driver_version': 'r580'}, "min_driver_version: 'r580' is not a dotted version number"),
    ({'no_such_option': 1}, 'Unsupported parameters'),
])
def test_bad_parameters_fail_before_running_anything(fake_bin, args, message):
    # nvidia-smi would leave a mark if it ran.
    marker = fake_bin.parent / 'ran'
    write_script(fake_bin / 'nvidia-smi', "touch '%s'\n%s" % (marker, print_file(os.path.join(H200_DIR, 'q.xml'))))
    rc, result = run(fake_bin, args)
    assert rc != 0
    assert message in result['msg']
    assert not marker.exists()


def test_gpu_node_capture_returns_the_xml_as_printed_and_the_xid_lines(fake_bin):
    """The support bundle's node capture runs the same nvidia-smi and kernel log runners."""
    fake_nvidia_smi(fake_bin, recorded='q.xml')
    write_script(fake_bin / 'journalctl', print_file(os.path.join(KERNEL_LOG_DIR, 'journalctl-k.txt')))
    env = {'PATH': os.pathsep.join([str(fake_bin), VENV_BIN, os.environ.get('PATH', '')])}
    rc, result = run_module('llmscale.gpu_serving.gpu_node_capture', {'nvidia_smi': 'nvidia-smi'}, env=env, check=True)
    assert rc == 0, result
    assert result['nvidia_smi_xml'] == read_recorded('q.xml')
    assert result['kernel_log_source'] == 'journalctl'
    assert len(result['xid_lines']) == 4 and all('NVRM: Xid' in line for line in result['xid_lines'])
    assert result['errors'] == []
