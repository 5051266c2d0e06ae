# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Support bundle contents (pure): what goes into the tarball, with every secret taken out.

Secrets keep their name, type and key names; their values never leave this
module. Variables whose name says they hold a credential are replaced, and every
known secret value (Secret data, credential variables) is scrubbed from every
text that goes in: logs, object YAML, the variables themselves.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import json
import re

REDACTED = '<redacted>'
# Variable and environment names that hold credentials; names of Secrets (..._secret_name) are not credentials.
CREDENTIAL_NAME = re.compile(r'(token|password|passwd|secret|api_?key|credential|private_?key)', re.IGNORECASE)
NOT_CREDENTIAL_NAME = re.compile(r'(_name|_names|_ref|_key_name)$', re.IGNORECASE)
# kubectl apply keeps the whole previous object (a Secret's data included) in this annotation.
LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration'
# Short values ("1", "true") would scrub unrelated text.
MIN_SCRUB_LENGTH = 6


def is_credential_name(name):
    return bool(CREDENTIAL_NAME.search(name or '')) and not NOT_CREDENTIAL_NAME.search(name or '')


def secret_values(secrets, variables):
    """Every value to scrub: Secret data (decoded and as stored) and stringData, and credential variables."""
    values = set()
    for secret in secrets or []:
        for key, value in (secret.get('data') or {}).items():
            values.add(value)
            try:
                values.add(base64.b64decode(value).decode('utf-8'))
            except (ValueError, UnicodeDecodeError):
                pass
        values.update(str(value) for value in (secret.get('stringData') or {}).values())
    for name, value in _flatten(variables):
        if is_credential_name(name) and isinstance(value, str):
            values.add(value)
    return sorted((value for value in values if value and len(value) >= MIN_SCRUB_LENGTH), key=len, reverse=True)


def _flatten(value, name=''):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _flatten(item, name)
    else:
        yield name, value


def scrub(text, values):
    for value in values:
        text = text.replace(value, REDACTED)
    return text


def redact_secret(secret):
    """Name, namespace, type and key names of a Secret; no value, no annotation that could hold one."""
    metadata = secret.get('metadata') or {}
    keys = sorted(set(list((secret.get('data') or {}).keys()) + list((secret.get('stringData') or {}).keys())))
    return {'apiVersion': secret.get('apiVersion', 'v1'), 'kind': 'Secret',
            'metadata': {'name': metadata.get('name'), 'namespace': metadata.get('namespace'),
                         'labels': metadata.get('labels') or {}},
            'type': secret.get('type'), 'data': dict((key, REDACTED) for key in keys)}


def redact_object(obj):
    """Any other object: without last-applied-configuration and managedFields, credential env values replaced."""
    obj = copy.deepcopy(obj)
    if obj.get('kind') == 'Secret':
        return redact_secret(obj)
    metadata = obj.get('metadata') or {}
    metadata.pop('managedFields', None)
    (metadata.get('annotations') or {}).pop(LAST_APPLIED, None)
    for container in _containers(obj):
        for variable in container.get('env') or []:
            if 'value' in variable and is_credential_name(variable.get('name')):
                variable['value'] = REDACTED
    return obj


def _containers(obj):
    spec = obj.get('spec') or {}
    template = (spec.get('template') or {}).get('spec') or {}
    for pod_spec in (spec, template):
        for key in ('containers', 'initContainers'):
            yield from pod_spec.get(key) or []


def redact_variables(variables):
    """Variables in effect, credential values replaced (nested dicts and lists too)."""
    if isinstance(variables, dict):
        return dict((key, REDACTED if is_credential_name(str(key)) and value not in ('', None)
                     else redact_variables(value)) for key, value in variables.items())
    if isinstance(variables, list):
        return [redact_variables(item) for item in variables]
    return variables


def _yaml_like(obj):
    # JSON is YAML: no YAML library is needed on the controller side and the files stay readable.
    return json.dumps(obj, indent=2, sort_keys=True) + '\n'


def bundle_files(objects, logs, node_captures, variables, collection_version, extra=None):
    """{archive path: text} of the bundle; every text scrubbed of every secret value.

    objects: {kind: [objects]} (Secrets among them under 'Secret'); logs: {pod: {container: {current, previous}}};
    node_captures: {node: {nvidia_smi_xml, xid_lines}}.
    """
    values = secret_values(objects.get('Secret'), variables)
    files = {}
    for kind, items in sorted(objects.items()):
        for obj in items or []:
            metadata = obj.get('metadata') or {}
            prefix = (metadata.get('namespace') + '/') if metadata.get('namespace') else ''
            path = 'objects/%s/%s%s.yaml' % (kind, prefix, metadata.get('name'))
            files[path] = _yaml_like(redact_object(obj))
    for pod, containers in sorted((logs or {}).items()):
        for container, texts in sorted(containers.items()):
            for which in ('current', 'previous'):
                if texts.get(which) is not None:
                    files['logs/%s/%s.%s.log' % (pod, container, which)] = texts[which]
    for node, capture in sorted((node_captures or {}).items()):
        if capture.get('nvidia_smi_xml') is not None:
            files['nodes/%s/nvidia-smi-q.xml' % node] = capture['nvidia_smi_xml']
        files['nodes/%s/xid.log' % node] = ''.join(line + '\n' for line in capture.get('xid_lines') or [])
    files['variables.yaml'] = _yaml_like(redact_variables(variables))
    files['VERSION'] = 'llmscale.gpu_serving %s\n' % collection_version
    files.update(extra or {})
    return dict((path, scrub(text, values)) for path, text in files.items())
