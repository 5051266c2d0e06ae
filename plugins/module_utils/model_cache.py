# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model cache logic that needs no network: paths, patterns, the plan, the manifest, hashing.

A cache holds *objects* (a file in a plain directory, or a blob of the Hugging
Face hub cache) and a manifest recording, per object, the size, digest and
mtime it had when last verified. A warm re-run compares stat() with the
manifest instead of rehashing every byte; anything that differs is rehashed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fnmatch
import hashlib
import json
import os
import re

MANIFEST_VERSION = 1
STATE_DIR = '.llmscale'
HASH_CHUNK = 4 * 1024 * 1024
COMMIT_RE = re.compile(r'^[0-9a-f]{40}$')
SHA256_RE = re.compile(r'^[0-9a-f]{64}$')
REPO_TYPE_PREFIX = {'model': 'models', 'dataset': 'datasets'}


class ModelCacheError(Exception):
    """A failure with a message meant for the person running the play."""


def is_commit_hash(revision):
    return bool(revision) and COMMIT_RE.match(revision) is not None


def repo_folder_name(repo_id, repo_type='model'):
    """Folder of a repository in the hub cache, as huggingface_hub names it."""
    return '--'.join([REPO_TYPE_PREFIX[repo_type]] + repo_id.split('/'))


def safe_relpath(path):
    """Refuse paths from a server or a user that would escape the destination."""
    if not path or path.startswith('/') or '\\' in path or '\x00' in path:
        raise ModelCacheError('refusing unsafe file path %r' % (path,))
    parts = path.split('/')
    if any(part in ('', '.', '..') for part in parts) or parts[0] == STATE_DIR:
        raise ModelCacheError('refusing unsafe file path %r' % (path,))
    return path


def _expand(patterns):
    # Same rule as huggingface_hub: "dir/" means everything below dir.
    return [pattern + '*' if pattern.endswith('/') else pattern for pattern in patterns or []]


def filter_paths(paths, allow_patterns=None, ignore_patterns=None):
    """Paths kept by allow (any match, all when empty) and ignore (no match) glob patterns."""
    allow = _expand(allow_patterns)
    ignore = _expand(ignore_patterns)
    kept = []
    for path in paths:
        if allow and not any(fnmatch.fnmatch(path, pattern) for pattern in allow):
            continue
        if any(fnmatch.fnmatch(path, pattern) for pattern in ignore):
            continue
        kept.append(path)
    return kept


def remote_file(path, size, algo, digest, url):
    """One file to have in the cache. algo is 'sha256' (LFS, url source) or 'git-sha1' (small hub files)."""
    if algo not in ('sha256', 'git-sha1'):
        raise ValueError('unknown digest algorithm %r' % (algo,))
    return {'path': safe_relpath(path), 'size': size, 'algo': algo, 'digest': digest.lower(), 'url': url}


def hub_tree_to_files(entries, url_for):
    """Remote files from hub tree entries ({'type', 'path', 'size', 'oid', 'lfs': {'oid'|'sha256', 'size'}}).

    LFS files carry the sha256 of their content; small files only the git blob
    sha1, which is still a full content hash (sha1 over "blob <size>\\0" + content).
    """
    files = []
    for entry in entries:
        if entry.get('type', 'file') != 'file':
            continue
        lfs = entry.get('lfs') or None
        if lfs:
            digest = lfs.get('sha256') or lfs.get('oid')
            files.append(remote_file(entry['path'], int(lfs.get('size', entry['size'])), 'sha256', digest,
                                     url_for(entry['path'])))
        else:
            files.append(remote_file(entry['path'], int(entry['size']), 'git-sha1', entry['oid'],
                                     url_for(entry['path'])))
    return sorted(files, key=lambda item: item['path'])


def url_files(specs):
    """Remote files from the url source's list of {url, sha256, path?, size?}."""
    files = []
    for index, spec in enumerate(specs):
        digest = (spec.get('sha256') or '').lower()
        if not SHA256_RE.match(digest):
            raise ModelCacheError('files[%d].sha256 must be 64 hex digits, got %r' % (index, spec.get('sha256')))
        url = spec.get('url') or ''
        if not url.startswith(('http://', 'https://')):
            raise ModelCacheError('files[%d].url must be an http(s) URL, got %r' % (index, url))
        path = spec.get('path') or url.split('?', 1)[0].rstrip('/').rsplit('/', 1)[-1]
        size = spec.get('size')
        files.append(remote_file(path, None if size is None else int(size), 'sha256', digest, url))
    paths = [item['path'] for item in files]
    duplicates = sorted(set(path for path in paths if paths.count(path) > 1))
    if duplicates:
        raise ModelCacheError('files: several entries write the same path %s; set path on each' % ', '.join(duplicates))
    return files


def layout_root(layout, dest, repo_id=None, repo_type='model'):
    """The folder that owns the manifest and the staging area."""
    if layout == 'hub_cache':
        return os.path.join(dest, repo_folder_name(repo_id, repo_type))
    return dest


def object_relpath(layout, item):
    """Where an object's bytes live, relative to the root: a blob (hub cache) or the file itself."""
    if layout == 'hub_cache':
        return 'blobs/' + item['digest']
    return item['path']


def snapshot_relpath(commit, path):
    return 'snapshots/%s/%s' % (commit, path)


def snapshot_link_target(path, digest):
    """Relative symlink target from snapshots/<commit>/<path> to blobs/<digest>, as huggingface_hub makes it."""
    depth = len(path.split('/')) + 1
    return '../' * depth + 'blobs/' + digest


def staging_relpath(item):
    """The temporary name a download is written to: never a final path, same filesystem for the rename."""
    tag = hashlib.sha1(item['path'].encode('utf-8')).hexdigest()[:12]
    return '%s/incomplete/%s-%s' % (STATE_DIR, tag, item['digest'][:16])


MANIFEST_RELPATH = STATE_DIR + '/manifest.json'


def new_manifest():
    return {'version': MANIFEST_VERSION, 'objects': {}}


def parse_manifest(text):
    """A manifest from its JSON text; an unreadable or foreign one counts as empty (everything is rehashed)."""
    try:
        data = json.loads(text)
    except ValueError:
        return new_manifest()
    if not isinstance(data, dict) or data.get('version') != MANIFEST_VERSION or not isinstance(data.get('objects'), dict):
        return new_manifest()
    return data


def render_manifest(manifest):
    return json.dumps(manifest, indent=1, sort_keys=True) + '\n'


def manifest_record(manifest, relpath, item, stat_result):
    manifest['objects'][relpath] = {'size': item['size'], 'algo': item['algo'], 'digest': item['digest'],
                                    'mtime_ns': stat_result[1]}


def plan_object(item, relpath, stat_result, manifest, verify):
    """Decide what one object needs: ('keep' | 'hash' | 'download', reason).

    stat_result is (size, mtime_ns) of the object, or None when absent.
    """
    if stat_result is None:
        return 'download', 'missing'
    size, mtime_ns = stat_result
    if item['size'] is not None and size != item['size']:
        return 'download', 'size %d, expected %d' % (size, item['size'])
    if verify == 'full':
        return 'hash', 'full verification'
    known = manifest['objects'].get(relpath)
    if (known and known.get('digest') == item['digest'] and known.get('algo') == item['algo']
            and known.get('size') == size and known.get('mtime_ns') == mtime_ns):
        return 'keep', 'unchanged since verified'
    return 'hash', 'not verified yet' if not known else 'changed since verified'


def new_hasher(algo, size):
    if algo == 'sha256':
        return hashlib.sha256()
    hasher = hashlib.sha1()
    hasher.update(b'blob %d\x00' % size)
    return hasher


def hash_file(path, algo, size, chunk=HASH_CHUNK):
    """Digest of a file as the hub states it: sha256 of the content, or the git blob sha1."""
    hasher = new_hasher(algo, size)
    with open(path, 'rb') as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            hasher.update(block)
    return hasher.hexdigest()


def space_shortfall(needed, available, reserve=0):
    """A message when `needed` bytes plus `reserve` do not fit in `available`, else None."""
    if needed + reserve <= available:
        return None
    return ('not enough free space: %s to download%s, only %s available'
            % (human_bytes(needed), ' plus a reserve of %s' % human_bytes(reserve) if reserve else '',
               human_bytes(available)))


def human_bytes(count):
    value = float(count)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return ('%d %s' % (value, unit)) if unit == 'B' else ('%.1f %s' % (value, unit))
        value /= 1024.0
    return '%d B' % count  # pragma: no cover  # the loop always returns


def throughput(byte_count, seconds):
    """Bytes per second, 0 when nothing was timed."""
    return int(byte_count / seconds) if seconds > 0 else 0
