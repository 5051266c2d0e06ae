# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model_cache module's work: wire the chosen source to a CacheSync and report.

plugins/modules/model_cache.py only builds the AnsibleModule and calls ``run``;
listing comes from model_cache_transport.py, planning and writing from
model_cache_store.py, the pure parts from model_cache.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache import (
    ModelCacheError,
    filter_paths,
    layout_root,
    snapshot_relpath,
    url_files,
)
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache_store import CacheSync
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache_transport import (
    HubSource,
    fetch,
    remote_size,
)


def argument_spec():
    return dict(
        source=dict(type='str', choices=['hf', 'url'], default='hf'),
        repo_id=dict(type='str'),
        repo_type=dict(type='str', choices=['model', 'dataset'], default='model'),
        revision=dict(type='str', default='main'),
        allow_patterns=dict(type='list', elements='str', default=[]),
        ignore_patterns=dict(type='list', elements='str', default=[]),
        token=dict(type='str', no_log=True, fallback=(env_fallback, ['HF_TOKEN'])),
        endpoint=dict(type='str', fallback=(env_fallback, ['HF_ENDPOINT'])),
        files=dict(type='list', elements='dict', default=[], options=dict(
            url=dict(type='str', required=True),
            sha256=dict(type='str', required=True),
            path=dict(type='str'),
            size=dict(type='int'),
        )),
        dest=dict(type='path', required=True),
        layout=dict(type='str', choices=['hub_cache', 'local_dir']),
        verify=dict(type='str', choices=['quick', 'full'], default='quick'),
        workers=dict(type='int', default=8),
        reserve_bytes=dict(type='int', default=0),
        timeout=dict(type='int', default=60),
        retries=dict(type='int', default=3),
    )


REQUIRED_IF = [('source', 'hf', ['repo_id']), ('source', 'url', ['files'])]


def chosen_layout(params):
    """The layout asked for, else the source's natural one."""
    return params['layout'] or ('hub_cache' if params['source'] == 'hf' else 'local_dir')


def check_params(params):
    """Problems with options that depend on each other, as messages; empty when usable."""
    errors = []
    if params['source'] == 'url' and chosen_layout(params) != 'local_dir':
        errors.append('layout=hub_cache needs source=hf: URL files have no hub revision to lay out')
    if params['workers'] < 1 or params['timeout'] < 1 or params['retries'] < 0 or params['reserve_bytes'] < 0:
        errors.append('workers and timeout must be at least 1, retries and reserve_bytes at least 0')
    return errors


def _items_and_source(params):
    """(items, commit, fetcher, sizer) for the chosen source, after the patterns."""
    timeout = params['timeout']
    if params['source'] == 'hf':
        hub = HubSource(params['repo_id'], params['repo_type'], params['endpoint'], params['token'])
        commit = hub.resolve(params['revision'])
        items = hub.list_files(commit)
        headers = hub.headers()
    else:
        items = url_files(params['files'])
        commit = None
        headers = {'Authorization': 'Bearer %s' % params['token']} if params['token'] else {}
    kept = set(filter_paths([item['path'] for item in items], params['allow_patterns'], params['ignore_patterns']))
    items = [item for item in items if item['path'] in kept]

    def fetcher(item, staging_path):
        return fetch(item['url'], staging_path, item, headers, timeout)

    def sizer(item):
        return remote_size(item['url'], headers, timeout)
    return items, commit, fetcher, sizer


def run(params, check_mode):
    """Bring the cache in line with the source; the module's result keys. Raises ModelCacheError."""
    errors = check_params(params)
    if errors:
        raise ModelCacheError('; '.join(errors))
    layout = chosen_layout(params)
    from_hub = params['source'] == 'hf'
    started = time.monotonic()
    items, commit, fetcher, sizer = _items_and_source(params)
    if not items:
        raise ModelCacheError('no files to download: allow_patterns %s and ignore_patterns %s leave nothing of %s'
                              % (params['allow_patterns'], params['ignore_patterns'], params['repo_id'] or 'files'))
    sync = CacheSync(layout, params['dest'], items, fetcher, repo_id=params['repo_id'],
                     repo_type=params['repo_type'], commit=commit,
                     revision=params['revision'] if from_hub else None,
                     verify=params['verify'], workers=params['workers'], reserve_bytes=params['reserve_bytes'],
                     retries=params['retries'], sizer=sizer)
    report = sync.run(check_mode=check_mode)
    root = layout_root(layout, params['dest'], params['repo_id'], params['repo_type'])
    model_path = root if layout == 'local_dir' else '%s/%s' % (root, snapshot_relpath(commit, '').rstrip('/'))
    return dict(
        changed=report['changed'],
        revision=commit,
        requested_revision=params['revision'] if from_hub else None,
        model_path=model_path,
        files=len(items),
        bytes=sum(item['size'] or 0 for item in items),
        downloaded=sorted(report['downloaded']),
        repaired=sorted(report['repaired']),
        to_download=report['to_download'],
        bytes_to_download=report['bytes_to_download'],
        bytes_downloaded=report['bytes_downloaded'],
        bytes_resumed=report['bytes_resumed'],
        hashed=report['hashed'],
        seconds=round(time.monotonic() - started, 3),
        download_seconds=round(report['download_seconds'], 3),
        throughput_bytes_per_second=report['throughput_bytes_per_second'],
    )
