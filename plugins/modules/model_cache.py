#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: model_cache
short_description: Ensure a model revision is fully present in a node-local cache directory
version_added: 0.1.0
description:
  - Downloads a model repository revision from the Hugging Face Hub (or a mirror speaking its protocol, such as olah),
    or a list of HTTP(S) URLs with their sha256, into a directory, so that vLLM can start with C(HF_HUB_OFFLINE=1).
  - Every file is written to a temporary name under C(<root>/.llmscale/incomplete) and renamed into place once its size
    and hash are verified, so no partial file ever sits at a final path. An interrupted run is resumed by the next one
    (with an HTTP Range request where the server honours it, else that file starts again).
  - Sizes and hashes are the ones the hub states (sha256 for LFS files, the git blob sha1 for small files). A manifest
    in C(<root>/.llmscale/manifest.json) records what was verified, so a re-run on a warm cache compares C(stat) only
    and returns C(changed=false) without rehashing; a file whose size or mtime changed is rehashed and repaired.
  - Free space is checked before anything is downloaded. Check mode reports what would be downloaded and how many bytes.
author:
  - llmscale platform team (@llmscale)
requirements:
  - huggingface_hub on the target host for O(source=hf) (tested with 2.4.0). O(source=url) needs only the standard library.
attributes:
  check_mode:
    support: full
    description: Resolves the revision, plans and verifies, and reports RV(to_download) and RV(bytes_to_download).
  diff_mode:
    support: none
    description: The result lists the files that were or would be downloaded instead of a diff.
options:
  source:
    description: Where the files come from.
    type: str
    choices: [hf, url]
    default: hf
  repo_id:
    description: Repository on the hub, C(org/name). Required with O(source=hf).
    type: str
  repo_type:
    description: Kind of repository.
    type: str
    choices: [model, dataset]
    default: model
  revision:
    description:
      - Branch, tag or commit. A branch or tag is resolved to its commit, which is returned as RV(revision).
    type: str
    default: main
  allow_patterns:
    description: Only files matching one of these glob patterns (all files when empty). C(dir/) means everything below.
    type: list
    elements: str
    default: []
  ignore_patterns:
    description: Files matching any of these glob patterns are left out.
    type: list
    elements: str
    default: []
  token:
    description:
      - Hub access token (or bearer token sent to every URL with O(source=url)). Never logged.
      - Defaults to the E(HF_TOKEN) environment variable, then to huggingface_hub's saved token.
    type: str
  endpoint:
    description:
      - Hub endpoint, for mirrors. Defaults to the E(HF_ENDPOINT) environment variable, then C(https://huggingface.co).
    type: str
  files:
    description: Files to download with O(source=url).
    type: list
    elements: dict
    default: []
    suboptions:
      url:
        description: HTTP(S) URL of the file.
        type: str
        required: true
      sha256:
        description: Expected sha256 of the content, 64 hex digits.
        type: str
        required: true
      path:
        description: Relative path below O(dest). Defaults to the last part of the URL path.
        type: str
      size:
        description: Size in bytes. When missing, a HEAD request asks the server.
        type: int
  dest:
    description:
      - With O(layout=hub_cache), the hub cache directory (what E(HF_HUB_CACHE) points at, usually C($HF_HOME/hub)).
      - With O(layout=local_dir), the directory that receives the files.
    type: path
    required: true
  layout:
    description:
      - C(hub_cache) lays files out as huggingface_hub does (C(models--org--name/blobs), C(snapshots/<commit>), C(refs)),
        so vLLM started with the repository id and E(HF_HUB_OFFLINE=1) finds them.
      - C(local_dir) puts the files directly in O(dest), for C(vllm serve /path). The only layout for O(source=url).
      - Defaults to C(hub_cache) for O(source=hf) and C(local_dir) for O(source=url).
    type: str
    choices: [hub_cache, local_dir]
  verify:
    description:
      - C(quick) rehashes only files not recorded in the manifest or whose size or mtime changed.
      - C(full) rehashes every file, to catch corruption that left size and mtime alone.
    type: str
    choices: [quick, full]
    default: quick
  workers:
    description: Files downloaded (and hashed) in parallel.
    type: int
    default: 8
  reserve_bytes:
    description: Bytes that must stay free on the filesystem after the download.
    type: int
    default: 0
  timeout:
    description: Seconds without data before a connection counts as failed.
    type: int
    default: 60
  retries:
    description: Extra attempts per file after a network failure (resuming where it stopped).
    type: int
    default: 3
notes:
  - Files of earlier revisions are not deleted.
  - Olah's local mirrors ignore HTTP Range, so against them an interrupted file starts again; finished files are kept.
seealso:
  - name: huggingface_hub cache layout
    description: How the hub cache is organised.
    link: https://huggingface.co/docs/huggingface_hub/guides/manage-cache
'''

EXAMPLES = r'''
- name: Pre-warm Llama 3.1 8B Instruct into the hub cache on the NVMe volume
  llmscale.gpu_serving.model_cache:
    repo_id: meta-llama/Llama-3.1-8B-Instruct
    revision: main
    dest: /mnt/nvme/hf/hub
    allow_patterns: ["*.json", "*.safetensors", "tokenizer*"]
    token: "{{ vault_hf_token }}"
    workers: 8

- name: Pre-warm through an olah mirror and force a full rehash
  llmscale.gpu_serving.model_cache:
    repo_id: sentence-transformers/all-MiniLM-L6-v2
    endpoint: http://mirror.internal:8090
    dest: /mnt/nvme/hf/hub
    verify: full

- name: Download files from an object store into a plain directory
  llmscale.gpu_serving.model_cache:
    source: url
    dest: /mnt/nvme/models/my-model
    files:
      - url: https://objects.internal/my-model/model.safetensors
        sha256: 0f3c5b0e8ff3a6a3b4e5a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6
        size: 1048576
'''

RETURN = r'''
revision:
  description: The commit the requested revision resolved to (null for O(source=url)).
  returned: always
  type: str
  sample: 1f6c0f3a1a2b3c4d5e6f708192a3b4c5d6e7f809
requested_revision:
  description: The revision as requested.
  returned: always
  type: str
  sample: main
model_path:
  description: The directory holding the model's files, to give vLLM (the snapshot directory for C(hub_cache)).
  returned: always
  type: str
  sample: /mnt/nvme/hf/hub/models--org--name/snapshots/1f6c0f3a1a2b3c4d5e6f708192a3b4c5d6e7f809
files:
  description: Number of files the revision has (after patterns).
  returned: always
  type: int
  sample: 12
bytes:
  description: Total size of those files.
  returned: always
  type: int
  sample: 16060522496
downloaded:
  description: Files downloaded by this run.
  returned: always
  type: list
  elements: str
  sample: [model-00001-of-00004.safetensors]
repaired:
  description: Files found corrupt (hash mismatch) and downloaded again (or to be, in check mode).
  returned: always
  type: list
  elements: str
  sample: []
to_download:
  description: Files that needed downloading, with size and reason (missing, size, corrupt).
  returned: always
  type: list
  elements: dict
  sample: [{path: config.json, size: 612, reason: missing}]
bytes_to_download:
  description: Bytes that needed downloading (not counting what a partial download already held).
  returned: always
  type: int
  sample: 4976698672
bytes_downloaded:
  description: Bytes transferred by this run.
  returned: always
  type: int
  sample: 4976698672
bytes_resumed:
  description: Bytes kept from partial downloads of an interrupted run.
  returned: always
  type: int
  sample: 0
hashed:
  description: Files rehashed to prove them (zero on a warm re-run with O(verify=quick)).
  returned: always
  type: int
  sample: 0
seconds:
  description: Wall time of the whole run, from resolving the revision to the last rename (Ansible's start-up excluded).
  returned: always
  type: float
  sample: 41.2
download_seconds:
  description: Wall time spent downloading.
  returned: always
  type: float
  sample: 40.8
throughput_bytes_per_second:
  description: RV(bytes_downloaded) divided by RV(download_seconds).
  returned: always
  type: int
  sample: 121977908
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache import ModelCacheError
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache_run import (
    REQUIRED_IF,
    argument_spec,
    run,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_if=REQUIRED_IF, supports_check_mode=True)
    try:
        result = run(module.params, module.check_mode)
    except ModelCacheError as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
