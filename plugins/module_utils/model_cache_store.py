# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bringing a cache directory in line with a list of remote files.

Order of work: plan from stat() and the manifest, rehash what is unproven,
check free space for what must be fetched (before any byte is written), fetch
in parallel into staging names under .llmscale/incomplete, verify size and
digest, rename into place, then link the hub-cache snapshot and its ref.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache import (
    MANIFEST_RELPATH,
    STATE_DIR,
    ModelCacheError,
    hash_file,
    is_commit_hash,
    layout_root,
    manifest_record,
    new_manifest,
    object_relpath,
    parse_manifest,
    plan_object,
    render_manifest,
    snapshot_link_target,
    snapshot_relpath,
    space_shortfall,
    staging_relpath,
    throughput,
)
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache_transport import TransferError


def _stat_object(path):
    """(size, mtime_ns) of a regular file, None when absent; a directory in the way is an error."""
    try:
        result = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISDIR(result.st_mode):
        raise ModelCacheError('%s is a directory where a file belongs' % path)
    if not stat.S_ISREG(result.st_mode):
        return None  # a symlink or a special file: replace it with the real content
    return result.st_size, result.st_mtime_ns


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _write_atomically(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = '%s.tmp-%d' % (path, os.getpid())
    with open(temporary, 'w') as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _existing_ancestor(path):
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def free_bytes(path):
    """Bytes an unprivileged writer may still use on the filesystem holding path (or its nearest existing parent)."""
    info = os.statvfs(_existing_ancestor(path))
    return info.f_bavail * info.f_frsize


def _ensure_link(path, target):
    """Make path a symlink to target; True when it had to change. Swapped in by rename, so never half-made."""
    if os.path.islink(path) and os.readlink(path) == target:
        return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = '%s.tmp-link-%d' % (path, os.getpid())
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(target, temporary)
    os.replace(temporary, path)
    return True


class CacheSync(object):
    """One run of the module: a cache root, the files it must hold, and what happened."""

    def __init__(self, layout, dest, items, fetcher, repo_id=None, repo_type='model', commit=None,
                 revision=None, verify='quick', workers=8, reserve_bytes=0, retries=3, sizer=None):
        self.layout = layout
        self.root = layout_root(layout, dest, repo_id, repo_type)
        self.items = items
        self.fetcher = fetcher
        self.sizer = sizer
        self.commit = commit
        self.revision = revision
        self.verify = verify
        self.workers = max(1, workers)
        self.reserve_bytes = reserve_bytes
        self.retries = max(0, retries)
        self.manifest_path = os.path.join(self.root, MANIFEST_RELPATH)
        self.manifest = new_manifest()
        self.report = {'downloaded': [], 'repaired': [], 'hashed': 0, 'bytes_downloaded': 0, 'bytes_resumed': 0,
                       'linked': 0, 'download_seconds': 0.0}

    # -- planning ---------------------------------------------------------
    def _objects(self):
        """relpath of each object -> one item holding it (hub-cache blobs are shared by equal files)."""
        objects = {}
        for item in self.items:
            objects.setdefault(object_relpath(self.layout, item), item)
        return objects

    def _hash_one(self, relpath_item):
        relpath, item = relpath_item
        path = os.path.join(self.root, relpath)
        before = _stat_object(path)
        digest = hash_file(path, item['algo'], item['size'])
        return relpath, item, digest, before

    def plan(self):
        """Objects to fetch: [(relpath, item, reason)]. Proven objects are recorded in the manifest."""
        manifest_text = _read(self.manifest_path)
        self.manifest = parse_manifest(manifest_text) if manifest_text else new_manifest()
        to_fetch, to_hash = [], []
        for relpath, item in sorted(self._objects().items()):
            state = _stat_object(os.path.join(self.root, relpath))
            action, reason = plan_object(item, relpath, state, self.manifest, self.verify)
            if action == 'download':
                to_fetch.append((relpath, item, reason))
            elif action == 'hash':
                to_hash.append((relpath, item))
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for relpath, item, digest, state in pool.map(self._hash_one, to_hash):
                self.report['hashed'] += 1
                if digest == item['digest']:
                    manifest_record(self.manifest, relpath, item, state)
                else:
                    self.manifest['objects'].pop(relpath, None)
                    self.report['repaired'].append(item['path'])
                    reason = 'corrupt: %s %s, expected %s' % (item['algo'], digest, item['digest'])
                    to_fetch.append((relpath, item, reason))
        return to_fetch

    def bytes_to_fetch(self, to_fetch):
        """Bytes still to transfer, counting what staged partial files already hold."""
        needed = 0
        for _relpath, item, _reason in to_fetch:
            if item['size'] is None:
                item['size'] = self.sizer(item)
            staged = os.path.join(self.root, staging_relpath(item))
            partial = os.path.getsize(staged) if os.path.exists(staged) else 0
            needed += max(0, item['size'] - min(partial, item['size']))
        return needed

    # -- doing ------------------------------------------------------------
    def _fetch_one(self, relpath_item):
        relpath, item = relpath_item
        staged = os.path.join(self.root, staging_relpath(item))
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        attempt = 0
        while True:
            try:
                transfer = self.fetcher(item, staged)
                break
            except TransferError:
                attempt += 1
                if attempt > self.retries:
                    raise
                time.sleep(min(2 ** attempt, 10))
        if transfer['size'] != item['size'] or transfer['digest'] != item['digest']:
            os.unlink(staged)  # a wrong file must not be resumed from either
            raise ModelCacheError('%s from %s does not match: %d bytes with %s %s, expected %d bytes with %s'
                                  % (item['path'], item['url'], transfer['size'], item['algo'],
                                     transfer['digest'], item['size'], item['digest']))
        final = os.path.join(self.root, relpath)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(staged, final)
        return relpath, item, transfer, _stat_object(final)

    def fetch_all(self, to_fetch):
        started = time.monotonic()
        failures = []
        try:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                futures = [pool.submit(self._fetch_one, (relpath, item)) for relpath, item, _reason in to_fetch]
                for future in futures:
                    try:
                        relpath, item, transfer, state = future.result()
                    except ModelCacheError as error:
                        failures.append(str(error))
                        continue
                    manifest_record(self.manifest, relpath, item, state)
                    self.report['downloaded'].append(item['path'])
                    self.report['bytes_downloaded'] += transfer['fetched']
                    self.report['bytes_resumed'] += transfer['resumed_from']
        finally:
            self.report['download_seconds'] = time.monotonic() - started
            # What was verified so far stays known, so a re-run after a failure does not rehash it.
            self.save_manifest()
        if failures:
            raise ModelCacheError('%d of %d downloads failed: %s' % (len(failures), len(to_fetch), '; '.join(failures)))

    def link_snapshot(self, check_mode):
        """Hub cache: snapshots/<commit>/<path> -> blobs/<digest> and refs/<revision>; returns how many changed."""
        if self.layout != 'hub_cache':
            return 0
        changed = 0
        for item in self.items:
            path = os.path.join(self.root, snapshot_relpath(self.commit, item['path']))
            target = snapshot_link_target(item['path'], item['digest'])
            if os.path.islink(path) and os.readlink(path) == target:
                continue
            changed += 1
            if not check_mode:
                _ensure_link(path, target)
        if self.revision and not is_commit_hash(self.revision):
            ref = os.path.join(self.root, 'refs', self.revision)
            if (_read(ref) or '').strip() != self.commit:
                changed += 1
                if not check_mode:
                    _write_atomically(ref, self.commit)
        return changed

    def save_manifest(self):
        text = render_manifest(self.manifest)
        if _read(self.manifest_path) != text:
            _write_atomically(self.manifest_path, text)

    def run(self, check_mode=False):
        """Plan, check space, fetch, link; returns the report (with 'changed')."""
        if check_mode:
            return self._run(check_mode)
        # One writer per cache root: a second play (or a run that outlived its ansible-playbook) waits its turn.
        lock_path = os.path.join(self.root, STATE_DIR, 'lock')
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        with open(lock_path, 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._run(check_mode)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _run(self, check_mode):
        started = time.monotonic()
        to_fetch = self.plan()
        needed = self.bytes_to_fetch(to_fetch)
        self.report['to_download'] = [{'path': item['path'], 'size': item['size'], 'reason': reason}
                                      for _relpath, item, reason in to_fetch]
        self.report['bytes_to_download'] = needed
        if to_fetch:
            available = free_bytes(self.root)
            shortfall = space_shortfall(needed, available, self.reserve_bytes)
            if shortfall:
                raise ModelCacheError('%s in %s (%d files); nothing was downloaded' % (shortfall, self.root,
                                                                                       len(to_fetch)))
        if not check_mode:
            if to_fetch:
                self.fetch_all(to_fetch)
            else:
                self.save_manifest()
        self.report['linked'] = self.link_snapshot(check_mode)
        self.report['changed'] = bool(to_fetch or self.report['linked'])
        self.report['seconds'] = time.monotonic() - started
        self.report['throughput_bytes_per_second'] = throughput(self.report['bytes_downloaded'],
                                                                self.report['download_seconds'])
        return self.report
