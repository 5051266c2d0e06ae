#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: support_bundle
short_description: Write the support bundle tarball from gathered objects, logs and node captures, secrets removed
version_added: 0.1.0
description:
  - Writes one C(.tar.gz) with object YAML (C(objects/<Kind>/<namespace>/<name>.yaml)), pod logs
    (C(logs/<pod>/<container>.current.log) and C(.previous.log)), per GPU node C(nvidia-smi -q -x) and kernel XID
    lines (C(nodes/<node>/)), the variables in effect (C(variables.yaml)) and the collection version (C(VERSION)).
  - Secrets keep only their name, type and key names. Variables and environment values whose name says they hold
    a credential are replaced by C(<redacted>), and every Secret value and credential variable value is scrubbed
    from every file, logs included.
author:
  - llmscale platform team (@llmscale)
options:
  objects:
    description: Objects by kind, as returned by C(kubernetes.core.k8s_info) (C(Secret) among them is redacted).
    type: dict
    required: true
  logs:
    description: "Container logs, C({pod: {container: {current: text, previous: text}}})."
    type: dict
    default: {}
  node_captures:
    description: Per GPU node, C({nvidia_smi_xml, xid_lines}) from the C(gpu_node_capture) module.
    type: dict
    default: {}
  variables:
    description: The collection variables in effect (credentials are redacted here).
    type: dict
    default: {}
  extra_files:
    description: More files, archive path to text (the diagnose report, for example); scrubbed too.
    type: dict
    default: {}
  collection_version:
    description: Version of llmscale.gpu_serving, written to C(VERSION).
    type: str
    required: true
  dest:
    description: Path of the tarball to write.
    type: path
    required: true
notes:
  - The redaction is plugins/module_utils/support_bundle.py, unit-tested.
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; the list of files is returned.
  diff_mode:
    support: none
    description: No diff.
"""

EXAMPLES = r"""
- name: Write the bundle
  llmscale.gpu_serving.support_bundle:
    objects: "{{ {'Pod': pods.resources, 'Secret': secrets.resources} }}"
    collection_version: 0.1.0
    dest: /tmp/llmscale-support.tar.gz
  no_log: true
"""

RETURN = r"""
dest:
  description: Path of the tarball.
  returned: success
  type: str
  sample: /tmp/llmscale-support-20261201T160000Z.tar.gz
members:
  description: Paths inside the tarball.
  returned: success
  type: list
  elements: str
"""

import io
import os
import tarfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.support_bundle import bundle_files


def write_tarball(dest, files, root):
    temporary = dest + '.partial'
    with tarfile.open(temporary, 'w:gz') as archive:
        for path, text in sorted(files.items()):
            data = text.encode('utf-8')
            info = tarfile.TarInfo('%s/%s' % (root, path))
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(data))
    os.chmod(temporary, 0o600)
    os.rename(temporary, dest)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            objects=dict(type='dict', required=True),
            logs=dict(type='dict', default={}),
            node_captures=dict(type='dict', default={}),
            # Not no_log: Ansible would then mask every short value of it ("1", "0") in every result, the
            # tarball's path included; the task is no_log and the module redacts credentials itself.
            variables=dict(type='dict', default={}),  # no_log is the task's, see above
            extra_files=dict(type='dict', default={}),
            collection_version=dict(type='str', required=True),
            dest=dict(type='path', required=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    files = bundle_files(params['objects'], params['logs'], params['node_captures'], params['variables'],
                         params['collection_version'], params['extra_files'])
    dest = params['dest']
    root = os.path.basename(dest).split('.tar')[0]
    members = sorted('%s/%s' % (root, path) for path in files)
    if module.check_mode:
        module.exit_json(changed=True, dest=dest, members=members)
    try:
        if not os.path.isdir(os.path.dirname(dest)):
            os.makedirs(os.path.dirname(dest))
        write_tarball(dest, files, root)
    except (IOError, OSError, tarfile.TarError) as exc:
        module.fail_json(msg='Cannot write %s: %s' % (dest, exc))
    module.exit_json(changed=True, dest=dest, members=members)


if __name__ == '__main__':
    main()
