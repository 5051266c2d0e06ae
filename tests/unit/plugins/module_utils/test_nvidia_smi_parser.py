"""plugins/module_utils/nvidia_smi.py on output recorded on a real H200 (driver 580), and variants derived from it."""
import csv
import io

import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.nvidia_smi import (
    NvidiaSmiParseError,
    describe_exit_code,
    parse_query_xml,
    parse_xid_events,
    pci_location,
    version_tuple,
)
from nvidia_smi_recorded import KERNEL_LOG_DIR, derive, read_recorded, with_gpus


def test_idle_h200_is_read_field_by_field(idle_xml):
    parsed = parse_query_xml(idle_xml)
    assert parsed['driver_version'] == '580.159.04'
    assert parsed['cuda_version'] == '13.0'
    assert parsed['attached_gpus'] == 1
    assert parsed['gpus'] == [{
        'index': 0,
        'uuid': 'GPU-695ed85e-b1c2-887f-8f65-f0747f640f12',
        'name': 'NVIDIA H200',
        'architecture': 'Hopper',
        'serial': '1653824069987',
        'pci_bus_id': '00000000:00:06.0',
        'driver_version': '580.159.04',
        'memory_total_mib': 143771,
        'memory_used_mib': 0,
        'temperature_c': 39,
        'power_draw_w': 128.38,
        'power_limit_w': 700.0,
        'persistence_mode': True,
        'ecc_mode': 'enabled',
        'ecc_uncorrected_volatile': 0,
        'ecc_uncorrected_aggregate': 0,
        'remapped_rows': {'correctable': 0, 'uncorrectable': 0, 'pending': False, 'failure': False},
        # Hopper answers the retired-pages fields with N/A: it remaps rows instead.
        'retired_pages_pending': None,
        'pcie': {'gen_current': 5, 'gen_max': 5, 'width_current': 16, 'width_max': 16},
        'clocks_event_reasons': ['gpu_idle'],
        'mig_mode': 'disabled',
        'mig_mode_pending': 'disabled',
        'recovery_action': 'none',
    }]


def test_busy_h200_shows_the_power_cap_and_its_load(busy_xml):
    gpu = parse_query_xml(busy_xml)['gpus'][0]
    assert gpu['clocks_event_reasons'] == ['sw_power_cap']
    assert gpu['memory_used_mib'] == 1139
    assert gpu['power_draw_w'] == 696.13
    assert gpu['temperature_c'] == 60


def _csv_rows(name):
    return list(csv.DictReader(io.StringIO(read_recorded(name)), skipinitialspace=True))


def test_xml_agrees_with_the_csv_query_recorded_on_the_same_gpu(idle_xml):
    """Two independent nvidia-smi outputs: the fields that do not move with load must agree."""
    gpu = parse_query_xml(idle_xml)['gpus'][0]
    row = _csv_rows('query-gpu.csv')[0]
    assert gpu['index'] == int(row['index'])
    assert gpu['uuid'] == row['uuid']
    assert gpu['name'] == row['name']
    assert gpu['serial'] == row['serial']
    assert gpu['pci_bus_id'] == row['pci.bus_id']
    assert gpu['driver_version'] == row['driver_version']
    assert gpu['persistence_mode'] == (row['persistence_mode'] == 'Enabled')
    assert gpu['memory_total_mib'] == int(row['memory.total [MiB]'].split()[0])
    assert gpu['pcie'] == {'gen_current': int(row['pcie.link.gen.current']), 'gen_max': int(row['pcie.link.gen.max']),
                           'width_current': int(row['pcie.link.width.current']), 'width_max': int(row['pcie.link.width.max'])}
    assert gpu['ecc_mode'] == row['ecc.mode.current'].lower()
    assert gpu['ecc_uncorrected_volatile'] == int(row['ecc.errors.uncorrected.volatile.total'])
    assert gpu['ecc_uncorrected_aggregate'] == int(row['ecc.errors.uncorrected.aggregate.total'])
    assert gpu['mig_mode'] == row['mig.mode.current'].lower()
    # clocks_event_reasons.active is a bit mask; 0x1 is GPU idle.
    assert int(row['clocks_event_reasons.active'], 16) == 0x1 and gpu['clocks_event_reasons'] == ['gpu_idle']
    remap = _csv_rows('query-remapped-rows.csv')[0]
    assert gpu['remapped_rows'] == {'correctable': int(remap['remapped_rows.correctable']),
                                    'uncorrectable': int(remap['remapped_rows.uncorrectable']),
                                    'pending': remap['remapped_rows.pending'] == 'Yes',
                                    'failure': remap['remapped_rows.failure'] == 'Yes'}


def test_uncorrectable_ecc_sums_every_memory_kind(idle_xml):
    text = derive(idle_xml,
                  ('<volatile>\n\t\t\t\t<sram_correctable>0</sram_correctable>\n\t\t\t\t<sram_uncorrectable_parity>0',
                   '<volatile>\n\t\t\t\t<sram_correctable>0</sram_correctable>\n\t\t\t\t<sram_uncorrectable_parity>1'),
                  ('<dram_correctable>0</dram_correctable>\n\t\t\t\t<dram_uncorrectable>0</dram_uncorrectable>\n\t\t\t</volatile>',
                   '<dram_correctable>7</dram_correctable>\n\t\t\t\t<dram_uncorrectable>2</dram_uncorrectable>\n\t\t\t</volatile>'))
    gpu = parse_query_xml(text)['gpus'][0]
    assert gpu['ecc_uncorrected_volatile'] == 3
    assert gpu['ecc_uncorrected_aggregate'] == 0


def test_ecc_in_the_double_bit_layout_of_older_drivers(idle_xml):
    start = idle_xml.index('<volatile>')
    end = idle_xml.index('</volatile>') + len('</volatile>')
    old_layout = ('<volatile><single_bit><device_memory>4</device_memory><total>4</total></single_bit>'
                  '<double_bit><device_memory>2</device_memory><register_file>0</register_file><total>2</total></double_bit></volatile>')
    gpu = parse_query_xml(idle_xml[:start] + old_layout + idle_xml[end:])['gpus'][0]
    assert gpu['ecc_uncorrected_volatile'] == 2


def test_clock_throttle_reasons_of_drivers_before_530(busy_xml):
    """Before driver 530 the same element was named clocks_throttle_reasons."""
    text = busy_xml.replace('clocks_event_reason_', 'clocks_throttle_reason_').replace(
        '<clocks_event_reasons>', '<clocks_throttle_reasons>').replace('</clocks_event_reasons>', '</clocks_throttle_reasons>')
    assert 'clocks_event_reason_' not in text
    assert parse_query_xml(text)['gpus'][0]['clocks_event_reasons'] == ['sw_power_cap']


def test_power_readings_of_drivers_before_530(idle_xml):
    text = derive(idle_xml,
                  ('<gpu_power_readings>', '<power_readings>'),
                  ('</gpu_power_readings>', '</power_readings>'),
                  ('\t\t\t<average_power_draw>127.73 W</average_power_draw>\n\t\t\t<instant_power_draw>128.38 W</instant_power_draw>\n'
                   '\t\t\t<current_power_limit>700.00 W</current_power_limit>',
                   '\t\t\t<power_draw>250.50 W</power_draw>\n\t\t\t<enforced_power_limit>400.00 W</enforced_power_limit>'))
    gpu = parse_query_xml(text)['gpus'][0]
    assert (gpu['power_draw_w'], gpu['power_limit_w']) == (250.5, 400.0)


def test_pre_ampere_gpu_reports_retired_pages_and_no_row_remapper(idle_xml):
    start = idle_xml.index('<remapped_rows>')
    end = idle_xml.index('</remapped_rows>') + len('</remapped_rows>')
    text = idle_xml[:start] + '<remapped_rows>N/A</remapped_rows>' + idle_xml[end:]
    text = derive(text,
                  ('<pending_blacklist>N/A</pending_blacklist>', '<pending_blacklist>No</pending_blacklist>'),
                  ('<pending_retirement>N/A</pending_retirement>', '<pending_retirement>Yes</pending_retirement>'))
    gpu = parse_query_xml(text)['gpus'][0]
    assert gpu['remapped_rows'] is None
    assert gpu['retired_pages_pending'] is True


@pytest.mark.parametrize('placeholder', ['N/A', '[N/A]', 'Unknown Error', '[Unknown Error]', 'Not Supported'])
def test_placeholders_become_none(idle_xml, placeholder):
    text = derive(idle_xml, ('<gpu_temp>39 C</gpu_temp>', '<gpu_temp>%s</gpu_temp>' % placeholder),
                  ('<persistence_mode>Enabled</persistence_mode>', '<persistence_mode>%s</persistence_mode>' % placeholder))
    gpu = parse_query_xml(text)['gpus'][0]
    assert gpu['temperature_c'] is None
    assert gpu['persistence_mode'] is None


def test_gpus_keep_nvidia_smi_index_order(idle_xml):
    parsed = parse_query_xml(with_gpus(idle_xml, 8))
    assert parsed['attached_gpus'] == 8
    assert [gpu['index'] for gpu in parsed['gpus']] == list(range(8))
    assert [gpu['pci_bus_id'] for gpu in parsed['gpus']][:3] == ['00000000:00:06.0', '00000000:00:07.0', '00000000:00:08.0']
    assert len(set(gpu['uuid'] for gpu in parsed['gpus'])) == 8


@pytest.mark.parametrize('text, reason', [
    ('', 'empty'),
    (read_recorded('error-bad-index.txt'), 'not well-formed XML'),
    (read_recorded('q.txt'), 'not well-formed XML'),
    ('<?xml version="1.0" ?>\n<html><body>proxy error</body></html>', 'root element is <html>'),
    (read_recorded('q.xml')[:5000], 'not well-formed XML'),
])
def test_text_that_is_not_nvidia_smi_xml_is_refused(text, reason):
    with pytest.raises(NvidiaSmiParseError, match=reason):
        parse_query_xml(text)


def test_entity_expansion_is_refused():
    bomb = ('<?xml version="1.0"?><!DOCTYPE nvidia_smi_log [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><nvidia_smi_log><driver_version>&b;</driver_version></nvidia_smi_log>')
    with pytest.raises(NvidiaSmiParseError):
        parse_query_xml(bomb)


def test_xid_lines_from_journalctl():
    events = parse_xid_events(read_recorded('journalctl-k.txt', KERNEL_LOG_DIR))
    assert [(event['pci_bus_id'], event['code']) for event in events] == [
        ('0000:00:06', 13), ('0000:00:06', 48), ('0000:00:06', 63), ('0000:00:06', 48)]
    assert events[1]['detail'].startswith('pid=2211, name=python3, An uncorrectable double bit error')
    assert events[1]['line'].startswith('Nov 27 08:14:37 gpu-node-0 kernel: NVRM: Xid')


def test_xid_lines_from_dmesg_including_the_old_format():
    events = parse_xid_events(read_recorded('dmesg.txt', KERNEL_LOG_DIR))
    assert [(event['pci_bus_id'], event['code']) for event in events] == [
        ('0000:00:07', 79), ('0000:00:06', 31), ('0000:3b:00', 79)]


def test_kernel_log_without_xids():
    assert not parse_xid_events('[    0.000000] Linux version 6.1.0\n[    9.4] NVRM: loading NVIDIA UNIX Open Kernel Module\n')
    assert not parse_xid_events(None)


def test_pci_locations_of_nvidia_smi_and_the_kernel_match():
    assert pci_location('00000000:3B:00.0') == pci_location('0000:3b:00') == (0, 0x3b, 0)
    assert pci_location('garbage') is None


def test_version_tuple():
    assert version_tuple('580.159.04') == (580, 159, 4)
    assert version_tuple('580.159.04') > version_tuple('550.54.15')
    with pytest.raises(ValueError, match='dotted version'):
        version_tuple('latest')


def test_exit_codes_are_described_as_nvidia_smi_documents_them():
    assert describe_exit_code(9) == 'the NVIDIA driver is not loaded'
    assert 'fallen off the bus' in describe_exit_code(15)
    assert 'no such device' in describe_exit_code(6)
    assert 'unknown' in describe_exit_code(42)
