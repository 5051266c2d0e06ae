# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parsers for what NVIDIA tools print: ``nvidia-smi -q -x`` and kernel ``NVRM: Xid`` lines.

Nothing here runs a command; callers pass the text. Element names differ
between driver branches, so every lookup lists the names it accepts, newest
first, and "N/A"-style placeholders become None instead of errors.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    # defusedxml refuses entity expansion and external references; nvidia-smi
    # never needs them, so prefer it where it is installed.
    from defusedxml.ElementTree import fromstring as _xml_fromstring
    from defusedxml.ElementTree import ParseError as _XmlParseError
    HAS_DEFUSEDXML = True
except ImportError:
    from xml.etree.ElementTree import fromstring as _xml_fromstring
    from xml.etree.ElementTree import ParseError as _XmlParseError
    HAS_DEFUSEDXML = False

try:
    from defusedxml import DefusedXmlException as _DefusedXmlException
except ImportError:
    class _DefusedXmlException(ValueError):
        """Stand-in so the except clause below works without defusedxml."""


# nvidia-smi(1), RETURN VALUE.
EXIT_CODE_MEANINGS = {
    2: 'a supplied argument or flag is invalid',
    3: 'the requested operation is not available on the target device',
    4: 'the current user does not have permission to access this device or perform this operation',
    6: 'a query to find an object was unsuccessful (no such device)',
    8: "a device's external power cables are not properly attached",
    9: 'the NVIDIA driver is not loaded',
    10: 'the NVIDIA kernel detected an interrupt issue with a GPU',
    12: 'the NVML shared library could not be found or loaded',
    13: 'the local version of NVML does not implement this function',
    14: 'the infoROM is corrupted',
    15: 'the GPU has fallen off the bus or has otherwise become inaccessible',
    255: 'another error or an internal driver error occurred',
}

# What nvidia-smi prints where a value does not apply or cannot be read,
# with or without square brackets.
_UNAVAILABLE = frozenset((
    '', 'N/A', 'Not Supported', 'Unknown Error', 'Insufficient Permissions',
    'Requested functionality has been deprecated', 'GPU requires reset', 'No data',
))

# Clock event reasons were called clocks throttle reasons before driver 530.
_CLOCK_REASON_GROUPS = (
    ('clocks_event_reasons', 'clocks_event_reason_'),
    ('clocks_throttle_reasons', 'clocks_throttle_reason_'),
)

_LEADING_NUMBER = re.compile(r'^\s*(-?\d+(?:\.\d+)?)')

# "NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has fallen off the bus."
# Very old drivers leave out the "PCI:" prefix.
_XID_LINE = re.compile(
    r'NVRM: Xid \((?:PCI:)?(?P<domain>[0-9A-Fa-f]+):(?P<bus>[0-9A-Fa-f]+):(?P<device>[0-9A-Fa-f]+)(?:\.[0-9A-Fa-f]+)?\):'
    r'\s*(?P<code>\d+)\s*(?:,\s*(?P<detail>.*))?$')


class NvidiaSmiParseError(ValueError):
    """The text is not the XML that ``nvidia-smi -q -x`` prints."""


def describe_exit_code(rc):
    """Say what an nvidia-smi exit code means, in words."""
    return EXIT_CODE_MEANINGS.get(rc, 'an unknown error (exit code not documented by nvidia-smi)')


def _clean(text):
    if text is None:
        return None
    value = text.strip()
    if value.strip('[]').strip() in _UNAVAILABLE:
        return None
    return value


def _text(elem, *paths):
    """The first available text among ``paths`` under ``elem``, or None."""
    if elem is None:
        return None
    for path in paths:
        found = elem.find(path)
        if found is not None:
            value = _clean(found.text)
            if value is not None:
                return value
    return None


def _number(elem, *paths):
    """The leading number of the first available text ("143771 MiB" -> 143771, "127.73 W" -> 127.73)."""
    value = _text(elem, *paths)
    if value is None:
        return None
    match = _LEADING_NUMBER.match(value)
    if not match:
        return None
    number = match.group(1)
    return float(number) if '.' in number else int(number)


def _integer(elem, *paths):
    value = _number(elem, *paths)
    return None if value is None else int(value)


def _yes_no(elem, *paths):
    value = _text(elem, *paths)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ('yes', 'enabled', 'active', 'true'):
        return True
    if lowered in ('no', 'disabled', 'not active', 'false'):
        return False
    return None


def _lower(elem, *paths):
    value = _text(elem, *paths)
    return None if value is None else value.lower()


def _uncorrected_ecc(ecc_errors, scope):
    """Uncorrectable ECC errors in ``scope`` (volatile or aggregate), summed over memory kinds.

    Drivers before 535 report ``double_bit/total``; later ones report
    ``sram_uncorrectable`` and ``dram_uncorrectable``, and 580 splits SRAM into
    ``sram_uncorrectable_parity`` and ``sram_uncorrectable_secded``.
    """
    if ecc_errors is None:
        return None
    counts = ecc_errors.find(scope)
    if counts is None:
        return None
    if counts.find('double_bit') is not None:
        return _integer(counts, 'double_bit/total')
    values = [_integer(child, '.') for child in counts if 'uncorrectable' in child.tag]
    values = [value for value in values if value is not None]
    return sum(values) if values else None


def _remapped_rows(gpu):
    """Row-remapping state (Ampere and later); None where the GPU has no row remapper."""
    rows = gpu.find('remapped_rows')
    if rows is None or len(rows) == 0:
        return None
    return {
        'correctable': _integer(rows, 'remapped_row_corr'),
        'uncorrectable': _integer(rows, 'remapped_row_unc'),
        'pending': _yes_no(rows, 'remapped_row_pending'),
        'failure': _yes_no(rows, 'remapped_row_failure'),
    }


def _retired_pages_pending(gpu):
    """Whether a page retirement waits for a reboot (before Ampere); None where the GPU remaps rows instead."""
    pages = gpu.find('retired_pages')
    if pages is None:
        return None
    flags = [_yes_no(pages, name) for name in ('pending_retirement', 'pending_blacklist')]
    flags = [flag for flag in flags if flag is not None]
    return any(flags) if flags else None


def _clocks_event_reasons(gpu):
    """Names of the active clock event reasons, without their prefix ("sw_power_cap")."""
    for group, prefix in _CLOCK_REASON_GROUPS:
        reasons = gpu.find(group)
        if reasons is None:
            continue
        active = []
        for child in reasons:
            if child.tag.startswith(prefix) and _clean(child.text) == 'Active':
                active.append(child.tag[len(prefix):])
        return active
    return []


def _pcie(gpu):
    link = gpu.find('pci/pci_gpu_link_info')
    return {
        'gen_current': _integer(link, 'pcie_gen/current_link_gen'),
        'gen_max': _integer(link, 'pcie_gen/max_link_gen'),
        'width_current': _integer(link, 'link_widths/current_link_width'),
        'width_max': _integer(link, 'link_widths/max_link_width'),
    }


def _gpu(index, gpu, driver_version):
    power = gpu.find('gpu_power_readings')
    if power is None:
        power = gpu.find('power_readings')
    recovery_action = _text(gpu, 'gpu_recovery_action')
    return {
        'index': index,
        'uuid': _text(gpu, 'uuid'),
        'name': _text(gpu, 'product_name'),
        'architecture': _text(gpu, 'product_architecture'),
        'serial': _text(gpu, 'serial'),
        'pci_bus_id': _text(gpu, 'pci/pci_bus_id') or gpu.get('id'),
        'driver_version': driver_version,
        'memory_total_mib': _integer(gpu, 'fb_memory_usage/total'),
        'memory_used_mib': _integer(gpu, 'fb_memory_usage/used'),
        'temperature_c': _integer(gpu, 'temperature/gpu_temp'),
        'power_draw_w': _number(power, 'instant_power_draw', 'power_draw', 'average_power_draw'),
        'power_limit_w': _number(power, 'current_power_limit', 'enforced_power_limit', 'power_limit'),
        'persistence_mode': _yes_no(gpu, 'persistence_mode'),
        'ecc_mode': _lower(gpu, 'ecc_mode/current_ecc'),
        'ecc_uncorrected_volatile': _uncorrected_ecc(gpu.find('ecc_errors'), 'volatile'),
        'ecc_uncorrected_aggregate': _uncorrected_ecc(gpu.find('ecc_errors'), 'aggregate'),
        'remapped_rows': _remapped_rows(gpu),
        'retired_pages_pending': _retired_pages_pending(gpu),
        'pcie': _pcie(gpu),
        'clocks_event_reasons': _clocks_event_reasons(gpu),
        'mig_mode': _lower(gpu, 'mig_mode/current_mig'),
        'mig_mode_pending': _lower(gpu, 'mig_mode/pending_mig'),
        'recovery_action': None if recovery_action is None else recovery_action.lower(),
    }


def parse_query_xml(text):
    """Parse ``nvidia-smi -q -x`` output.

    Returns ``{'driver_version', 'cuda_version', 'attached_gpus', 'gpus'}``
    with one dict per GPU, in nvidia-smi's index order. Raises
    NvidiaSmiParseError when the text is not that XML.
    """
    if text is None or not text.strip():
        raise NvidiaSmiParseError('the output is empty')
    if isinstance(text, str):
        # ElementTree refuses str input that declares an encoding.
        text = text.encode('utf-8')
    try:
        root = _xml_fromstring(text)
    except (_XmlParseError, _DefusedXmlException) as exc:
        raise NvidiaSmiParseError('the output is not well-formed XML (%s)' % exc)
    if root.tag != 'nvidia_smi_log':
        raise NvidiaSmiParseError('the XML root element is <%s>, not <nvidia_smi_log>' % root.tag)
    driver_version = _text(root, 'driver_version')
    gpus = [_gpu(index, gpu, driver_version) for index, gpu in enumerate(root.findall('gpu'))]
    return {
        'driver_version': driver_version,
        'cuda_version': _text(root, 'cuda_version'),
        'attached_gpus': _integer(root, 'attached_gpus'),
        'gpus': gpus,
    }


def version_tuple(version):
    """'580.159.04' -> (580, 159, 4). Raises ValueError for anything but dotted numbers."""
    parts = str(version).strip().split('.')
    if not parts or not all(part.isdigit() for part in parts):
        raise ValueError('%r is not a dotted version number like 550.54.15' % (version,))
    return tuple(int(part) for part in parts)


def pci_location(bus_id):
    """(domain, bus, device) as integers from '00000000:3B:00.0' or '0000:3b:00'; None when unparsable."""
    if not bus_id:
        return None
    match = re.match(r'^([0-9A-Fa-f]+):([0-9A-Fa-f]+):([0-9A-Fa-f]+)', bus_id)
    if not match:
        return None
    return tuple(int(part, 16) for part in match.groups())


def parse_xid_events(text):
    """Every ``NVRM: Xid`` line of a kernel log (journalctl -k or dmesg output), in order.

    Each event: ``{'pci_bus_id': '0000:3b:00', 'code': 79, 'detail': ..., 'line': ...}``.
    """
    events = []
    for line in (text or '').splitlines():
        match = _XID_LINE.search(line.rstrip())
        if not match:
            continue
        events.append({
            'pci_bus_id': '%s:%s:%s' % (match.group('domain'), match.group('bus'), match.group('device')),
            'code': int(match.group('code')),
            'detail': (match.group('detail') or '').strip(),
            'line': line.strip(),
        })
    return events
