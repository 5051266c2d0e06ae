# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure checks of values that end up in Kubernetes objects, before anything is applied.

Each ``check_*`` function takes the variable's name and value and returns a
list of error strings naming the variable (empty when the value is good), so
a caller can gather every problem of a play in one message. The grammars are
Kubernetes' own: k8s.io/apimachinery resource.Quantity and validation
(IsDNS1123Label, IsDNS1123Subdomain, IsDNS1035Label, IsQualifiedName,
IsValidLabelValue) and the distribution/reference image grammar.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
from decimal import Decimal

# --- resource quantities ---------------------------------------------------------

# <signedNumber><suffix>; the exponent of "e"/"E" is an integer (quantity.go
# parses it with ParseInt); decimal suffixes include n and u (suffix.go).
_QUANTITY = re.compile(
    r'^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))'
    r'(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$')
_BINARY = {'Ki': 2 ** 10, 'Mi': 2 ** 20, 'Gi': 2 ** 30, 'Ti': 2 ** 40, 'Pi': 2 ** 50, 'Ei': 2 ** 60}
_DECIMAL = {'n': Decimal('1e-9'), 'u': Decimal('1e-6'), 'm': Decimal('1e-3'), '': Decimal(1),
            'k': Decimal('1e3'), 'M': Decimal('1e6'), 'G': Decimal('1e9'), 'T': Decimal('1e12'),
            'P': Decimal('1e15'), 'E': Decimal('1e18')}


def parse_quantity(value):
    """The value of a Kubernetes quantity as a Decimal ("500m" -> 0.5, "64Gi" -> 68719476736), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value)
    if not match:
        return None
    number, suffix = Decimal(match.group('number')), match.group('suffix') or ''
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number.scaleb(int(suffix[1:]))


def _quantity_hint(value):
    """A likely meant quantity for common mistakes: "8Gb"/"16GB" -> "8Gi", "8G"."""
    match = re.match(r'^([0-9.]+)\s*([KMGTPE])i?[bB]$', value) or re.match(r'^([0-9.]+)\s*([kKmMgGtTpPeE])i$', value)
    if match:
        number, letter = match.group(1), match.group(2).upper()
        letter_decimal = 'k' if letter == 'K' else letter
        return ' (did you mean %s%si, or %s%s for powers of 1000?)' % (number, letter, number, letter_decimal)
    return ''


def check_quantity(variable, value, minimum=None, allow_zero=True):
    """A resource quantity ("8", "500m", "64Gi", "1e3"), not negative, at least ``minimum`` (a quantity) if given."""
    parsed = parse_quantity(value)
    if parsed is None:
        text = value if isinstance(value, str) else repr(value)
        return ['%s: %r is not a Kubernetes quantity (a number with an optional suffix Ki Mi Gi Ti Pi Ei, '
                'n u m k M G T P E, or an exponent e3)%s' % (variable, text, _quantity_hint(text.strip()) if isinstance(value, str) else '')]
    if parsed < 0 or (parsed == 0 and not allow_zero):
        return ['%s: %r must be %s' % (variable, value, 'positive' if not allow_zero else 'zero or more')]
    if minimum is not None and parsed < parse_quantity(minimum):
        return ['%s: %r is less than %s' % (variable, value, minimum)]
    return []


# --- names -------------------------------------------------------------------------

_LABEL = r'[a-z0-9]([-a-z0-9]*[a-z0-9])?'
_DNS1123_LABEL = re.compile(r'^%s$' % _LABEL)
_DNS1123_SUBDOMAIN = re.compile(r'^%s(\.%s)*$' % (_LABEL, _LABEL))
_DNS1035_LABEL = re.compile(r'^[a-z]([-a-z0-9]*[a-z0-9])?$')
_QUALIFIED_NAME = re.compile(r'^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')
_IANA_SVC_NAME = re.compile(r'^[a-z0-9]([a-z0-9-]*[a-z0-9])?$')

NAME_RULES = {
    'dns1123-label': ('a DNS-1123 label: at most 63 lowercase letters, digits and "-", '
                      'starting and ending with a letter or digit', 63, _DNS1123_LABEL),
    'dns1123-subdomain': ('a DNS-1123 subdomain: at most 253 characters, lowercase letters, digits, '
                          '"-" and ".", each dot-separated part starting and ending with a letter or digit',
                          253, _DNS1123_SUBDOMAIN),
    'dns1035-label': ('a DNS-1035 label: at most 63 lowercase letters, digits and "-", '
                      'starting with a letter and ending with a letter or digit', 63, _DNS1035_LABEL),
}

# The rule Kubernetes applies to metadata.name of each kind the collection
# renders (k8s.io/kubernetes pkg/apis/*/validation). Service names are
# DNS-1035 labels (they become DNS names and environment variables), Namespace
# names DNS-1123 labels; most other kinds accept a DNS-1123 subdomain.
KIND_NAME_RULES = {
    'Namespace': 'dns1123-label',
    'Service': 'dns1035-label',
    'Deployment': 'dns1123-subdomain',
    'StatefulSet': 'dns1123-label',  # a label since Kubernetes made pod hostnames <name>-<ordinal> labels
    'DaemonSet': 'dns1123-subdomain',
    'Pod': 'dns1123-subdomain',
    'PersistentVolumeClaim': 'dns1123-subdomain',
    'PersistentVolume': 'dns1123-subdomain',
    'StorageClass': 'dns1123-subdomain',
    'ConfigMap': 'dns1123-subdomain',
    'Secret': 'dns1123-subdomain',
    'ServiceAccount': 'dns1123-subdomain',
    'Ingress': 'dns1123-subdomain',
    'IngressClass': 'dns1123-subdomain',
    'NetworkPolicy': 'dns1123-subdomain',
    'PodDisruptionBudget': 'dns1123-subdomain',
    'HorizontalPodAutoscaler': 'dns1123-subdomain',
    'PriorityClass': 'dns1123-subdomain',
    'Container': 'dns1123-label',  # spec.containers[].name
}


def check_name(variable, value, rule='dns1123-subdomain'):
    """``value`` follows ``rule`` (a NAME_RULES key)."""
    description, limit, pattern = NAME_RULES[rule]
    if not isinstance(value, str) or not value:
        return ['%s must be a non-empty string, %s' % (variable, description)]
    problems = []
    if len(value) > limit:
        problems.append('is %d characters long' % len(value))
    if not pattern.match(value):
        problems.append('does not match')
    if not problems:
        return []
    hint = ''
    fixed = re.sub(r'[^a-z0-9.-]+', '-', value.lower()).strip('-.')
    if rule != 'dns1123-subdomain':
        fixed = fixed.replace('.', '-')
    if fixed and fixed != value and pattern.match(fixed) and len(fixed) <= limit:
        hint = ' (for example %r)' % fixed
    return ['%s: %r is not %s%s' % (variable, value, description, hint)]


# The StatefulSet controller labels each pod controller-revision-hash=<name>-<hash>,
# the hash up to 10 characters; a label value is at most 63, so a longer name
# is accepted by the API server and then no pod is ever created.
STATEFULSET_NAME_MAX = 52


def check_object_name(variable, value, kind):
    """metadata.name of an object of ``kind``, with the rule Kubernetes uses for that kind."""
    errors = check_name(variable, value, KIND_NAME_RULES[kind])
    if not errors and kind == 'StatefulSet' and len(value) > STATEFULSET_NAME_MAX:
        errors.append('%s: %r is %d characters; a StatefulSet name longer than %d makes its pods\' '
                      'controller-revision-hash label too long' % (variable, value, len(value), STATEFULSET_NAME_MAX))
    return errors


def check_port_name(variable, value):
    """A container or Service port name (IANA_SVC_NAME): at most 15 characters, a letter among them, no "--"."""
    if (isinstance(value, str) and 0 < len(value) <= 15 and _IANA_SVC_NAME.match(value)
            and '--' not in value and re.search('[a-z]', value)):
        return []
    return ['%s: %r is not a port name: at most 15 lowercase letters, digits and "-", with at least one letter, '
            'no "--", not starting or ending with "-"' % (variable, value)]


def check_label_key(variable, key):
    """A label or annotation key: [prefix/]name, prefix a DNS-1123 subdomain, name at most 63 characters."""
    if not isinstance(key, str) or not key:
        return ['%s: label key %r must be a non-empty string' % (variable, key)]
    prefix, _sep, name = key.rpartition('/')
    errors = []
    if _sep and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        errors.append('%s: label key %r has a prefix that is not a DNS-1123 subdomain' % (variable, key))
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        errors.append('%s: label key %r: the name part must be at most 63 letters, digits, "-", "_" and ".", '
                      'starting and ending with a letter or digit' % (variable, key))
    return errors


def check_label_value(variable, value):
    """A label value: empty, or at most 63 letters, digits, "-", "_", "." starting and ending alphanumeric."""
    if isinstance(value, str) and (value == '' or (len(value) <= 63 and _QUALIFIED_NAME.match(value))):
        return []
    return ['%s: label value %r must be at most 63 letters, digits, "-", "_" and ".", starting and ending with '
            'a letter or digit (values with "/" belong in annotations)' % (variable, value)]


def check_labels(variable, labels):
    """A mapping of labels."""
    if not isinstance(labels, dict):
        return ['%s must be a mapping of label keys to values' % variable]
    errors = []
    for key, value in labels.items():
        errors += check_label_key(variable, key)
        errors += check_label_value(variable, value)
    return errors


# --- image references --------------------------------------------------------------

_DOMAIN_COMPONENT = r'(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
_DOMAIN = r'(?:%s(?:\.%s)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?' % (_DOMAIN_COMPONENT, _DOMAIN_COMPONENT)
_PATH_COMPONENT = r'[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*'
_REFERENCE = re.compile(
    r'^(?P<name>(?:(?P<domain>%s)/)?(?P<path>%s(?:/%s)*))(?::(?P<tag>[\w][\w.-]{0,127}))?'
    r'(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$'
    % (_DOMAIN, _PATH_COMPONENT, _PATH_COMPONENT))
_DIGEST_LENGTHS = {'sha256': 64, 'sha384': 96, 'sha512': 128}


def parse_image(reference):
    """{'domain', 'path', 'tag', 'digest'} of an image reference, or None when it is not one.

    As distribution/reference splits it: the first component is a registry
    only when it has a "." or ":" or is "localhost" (else "library/x" on
    Docker Hub); a tag follows ":", a digest "@".
    """
    if not isinstance(reference, str):
        return None
    match = _REFERENCE.match(reference)
    if not match or len(match.group('name')) > 255:
        return None
    domain, path = match.group('domain'), match.group('path')
    if domain and not ('.' in domain or ':' in domain or domain == 'localhost' or domain != domain.lower()):
        # "team/app" is a path on Docker Hub, not a registry called "team".
        path, domain = domain + '/' + path, None
        if not re.match(r'^%s(?:/%s)*$' % (_PATH_COMPONENT, _PATH_COMPONENT), path):
            return None
    return {'domain': domain, 'path': path, 'tag': match.group('tag'), 'digest': match.group('digest')}


def check_image(variable, reference):
    """An image reference registry/repository[:tag][@algorithm:hex]."""
    parsed = parse_image(reference)
    if parsed is None:
        return ['%s: %r is not an image reference ([registry[:port]/]repository[:tag][@sha256:<64 hex>], '
                'repository in lowercase)' % (variable, reference)]
    if parsed['digest']:
        algorithm, hex_digits = parsed['digest'].split(':', 1)
        wanted = _DIGEST_LENGTHS.get(algorithm)
        if wanted and (len(hex_digits) != wanted or hex_digits != hex_digits.lower()):
            return ['%s: %r: a %s digest is %d lowercase hex digits' % (variable, reference, algorithm, wanted)]
    return []


# --- addresses and ports -----------------------------------------------------------

def check_cidr(variable, value, within=None):
    """An IPv4 or IPv6 CIDR with no host bits set (10.0.0.0/8, not 10.0.0.1/8), inside ``within`` if given."""
    if not isinstance(value, str):
        return ['%s: %r is not a CIDR such as 10.0.0.0/8 or fd00::/8' % (variable, value)]
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except (TypeError, ValueError):
            return ['%s: %r is not a CIDR such as 10.0.0.0/8 or fd00::/8' % (variable, value)]
        return ['%s: %r has host bits set; the network is %s' % (variable, value, loose)]
    if '/' not in value:
        return ['%s: %r needs a prefix length, e.g. %s' % (variable, value, network)]
    if within is not None:
        outer = ipaddress.ip_network(within, strict=False)
        if network.version != outer.version or not network.subnet_of(outer):
            return ['%s: %s is not inside %s' % (variable, network, outer)]
    return []


def check_port(variable, value, minimum=1):
    """A TCP/UDP port number, ``minimum``..65535."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        else:
            return ['%s: %r is not a port number' % (variable, value)]
    if not minimum <= value <= 65535:
        return ['%s: %d is not a port number between %d and 65535' % (variable, value, minimum)]
    return []


def check_ingress_host(variable, host):
    """An Ingress rule host: a DNS-1123 subdomain, optionally "*." first; no IP address, no port."""
    if not isinstance(host, str) or not host:
        return ['%s must be a host name such as llm.example.org' % variable]
    try:
        ipaddress.ip_address(host)
        return ['%s: %r is an IP address; an Ingress host must be a DNS name' % (variable, host)]
    except ValueError:
        pass
    name = host[2:] if host.startswith('*.') else host
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return ['%s: %r is not a DNS name: lowercase letters, digits, "-" and ".", optionally "*." first, '
                'no port or scheme' % (variable, host)]
    return []
