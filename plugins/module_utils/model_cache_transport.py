# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network side of the model cache: hub metadata through huggingface_hub, bytes over HTTP(S).

Metadata (revision to commit, file list with sizes and hashes) comes from
huggingface_hub, so mirrors and the Hub's error codes are handled as the `hf`
CLI handles them. Bytes come from a plain HTTP GET of the resolve URL with
ansible's open_url: that path needs only the standard library (the `url`
source), resumes with a Range request, and drops the token when a redirect
leaves the endpoint's host (the Hub redirects large files to a CDN).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import socket
import traceback

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urljoin, urlparse
from ansible.module_utils.urls import open_url

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache import (
    ModelCacheError,
    hash_file,
    hub_tree_to_files,
    new_hasher,
)

HF_IMPORT_ERROR = None
try:
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import build_hf_headers
    HAS_HF = True
except ImportError:
    HAS_HF = False
    HF_IMPORT_ERROR = traceback.format_exc()

USER_AGENT = 'llmscale.gpu_serving-model_cache'
MAX_REDIRECTS = 10
COPY_CHUNK = 1024 * 1024
REDIRECT_CODES = (301, 302, 303, 307, 308)
DEFAULT_ENDPOINT = 'https://huggingface.co'


class TransferError(ModelCacheError):
    """A network failure worth retrying (connection reset, timeout, 5xx)."""


def _status_of(error):
    response = getattr(error, 'response', None)
    return getattr(response, 'status_code', None)


class HubSource(object):
    """A repository on the Hugging Face Hub or a mirror speaking its protocol."""

    def __init__(self, repo_id, repo_type='model', endpoint=None, token=None):
        if not HAS_HF:
            raise ModelCacheError('source=hf needs the huggingface_hub Python package on the target host: '
                                  'install huggingface_hub (pip install huggingface_hub)')
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip('/')
        # None lets huggingface_hub use HF_TOKEN or the token saved by `hf auth login`, like the CLI.
        self.token = token or None
        self.api = HfApi(endpoint=self.endpoint, token=self.token, library_name=USER_AGENT)

    def headers(self):
        return build_hf_headers(token=self.token, library_name=USER_AGENT)

    def _where(self):
        return '%s %s at %s' % (self.repo_type, self.repo_id, self.endpoint)

    def _explain(self, error, revision):
        status = _status_of(error)
        if isinstance(error, GatedRepoError):
            return ('%s is gated: accept its conditions on the Hub with the account whose token is given (HTTP %s)'
                    % (self._where(), status))
        if isinstance(error, RevisionNotFoundError):
            return 'revision %r not found in %s' % (revision, self._where())
        if isinstance(error, RepositoryNotFoundError):
            return None  # told apart from a missing revision by the caller
        if status == 401:
            return ('the token was rejected by %s (HTTP 401): check `token` (or HF_TOKEN); it is not logged'
                    % self.endpoint)
        if status == 403:
            return 'the token may not read %s (HTTP 403): give it read access' % self._where()
        if isinstance(error, HfHubHTTPError):
            return 'cannot read %s: HTTP %s: %s' % (self._where(), status, str(error).strip().splitlines()[0])
        return 'cannot reach %s: %s' % (self.endpoint, error)

    def resolve(self, revision):
        """The commit a branch, tag or commit names."""
        try:
            return self.api.repo_info(self.repo_id, revision=revision, repo_type=self.repo_type).sha
        except Exception as error:  # pylint: disable=broad-except  # every failure becomes a clear message
            message = self._explain(error, revision)
            if message:
                raise ModelCacheError(message)
        # Olah (and the Hub for some repos) answer "repository not found" for a missing revision as well:
        # if the refs can be listed, the repository exists and the revision is what is missing.
        try:
            refs = self.api.list_repo_refs(self.repo_id, repo_type=self.repo_type)
        except Exception:  # pylint: disable=broad-except  # the repository itself is not there
            raise ModelCacheError('repository %s not found (or the token may not read it): check repo_id, '
                                  'repo_type and token' % self._where())
        raise ModelCacheError('revision %r not found in %s; branches: %s; tags: %s' % (
            revision, self._where(), ', '.join(ref.name for ref in refs.branches) or '-',
            ', '.join(ref.name for ref in refs.tags) or '-'))

    def list_files(self, commit):
        """Every file of the commit, with the sizes and hashes the hub states."""
        try:
            tree = list(self.api.list_repo_tree(self.repo_id, revision=commit, repo_type=self.repo_type,
                                                recursive=True))
        except Exception as error:  # pylint: disable=broad-except  # every failure becomes a clear message
            raise ModelCacheError(self._explain(error, commit) or 'cannot list the files of %s at %s'
                                  % (self._where(), commit))
        entries = []
        for entry in tree:
            if not hasattr(entry, 'blob_id'):
                continue  # a folder
            lfs = getattr(entry, 'lfs', None)
            entries.append({'type': 'file', 'path': entry.path, 'size': entry.size, 'oid': entry.blob_id,
                            'lfs': {'sha256': lfs.sha256, 'size': lfs.size} if lfs else None})
        return hub_tree_to_files(entries, lambda path: hf_hub_url(self.repo_id, path, repo_type=self.repo_type,
                                                                  revision=commit, endpoint=self.endpoint))


def _describe_http_error(error, url):
    if error.code == 401:
        return 'the token was rejected (HTTP 401) downloading %s' % url
    if error.code == 403:
        return 'access denied (HTTP 403) downloading %s' % url
    if error.code == 404:
        return 'not found (HTTP 404): %s' % url
    return 'HTTP %s downloading %s: %s' % (error.code, url, error.reason)


def open_following_redirects(url, headers, timeout, method='GET'):
    """open_url, following redirects here so the Authorization header never leaves the original host."""
    host = urlparse(url).netloc
    for _attempt in range(MAX_REDIRECTS):
        try:
            return open_url(url, headers=headers, method=method, timeout=timeout, follow_redirects='none',
                            decompress=False, http_agent=USER_AGENT, use_netrc=False)
        except HTTPError as error:
            location = error.headers.get('Location') if error.headers else None
            if error.code in REDIRECT_CODES and location:
                url = urljoin(url, location)
                if urlparse(url).netloc != host:
                    headers = dict((k, v) for k, v in headers.items() if k.lower() != 'authorization')
                continue
            if error.code == 416:
                raise
            message = _describe_http_error(error, url)
            raise TransferError(message) if error.code >= 500 or error.code == 429 else ModelCacheError(message)
        except (URLError, socket.timeout, OSError) as error:
            raise TransferError('cannot download %s: %s' % (url, getattr(error, 'reason', error)))
    raise ModelCacheError('too many redirects downloading %s' % url)


def remote_size(url, headers, timeout):
    """Content-Length from a HEAD request (url files given without a size)."""
    response = open_following_redirects(url, headers, timeout, method='HEAD')
    length = response.headers.get('Content-Length')
    response.close()
    if length is None:
        raise ModelCacheError('%s did not state its size (no Content-Length): give files[].size' % url)
    return int(length)


def fetch(url, staging_path, item, headers, timeout):
    """Download url into staging_path, resuming what a previous run left; return a transfer report.

    The report holds the digest of the staged bytes (hashed while writing, a kept
    prefix hashed first, so the bytes are read once), the staged size, the bytes
    fetched now, and the offset the transfer resumed from (0 when the server
    ignores Range and sends everything again, as olah's local mirrors do).
    """
    offset = os.path.getsize(staging_path) if os.path.exists(staging_path) else 0
    if item['size'] is not None and offset > item['size']:
        offset = 0
    request_headers = dict(headers)
    if offset:
        request_headers['Range'] = 'bytes=%d-' % offset
    try:
        response = open_following_redirects(url, request_headers, timeout)
    except HTTPError as error:  # 416: the staged file already holds everything
        if offset and offset == item['size']:
            return {'fetched': 0, 'resumed_from': offset, 'size': offset,
                    'digest': hash_file(staging_path, item['algo'], offset)}
        raise ModelCacheError(_describe_http_error(error, url))
    if not (offset and response.getcode() == 206):
        offset = 0
    hasher = new_hasher(item['algo'], item['size'] or 0)
    fetched = 0
    try:
        with open(staging_path, 'r+b' if offset else 'wb') as handle:
            _hash_prefix(handle, hasher, offset)
            while True:
                try:
                    block = response.read(COPY_CHUNK)
                except (socket.timeout, OSError) as error:
                    raise TransferError('download of %s interrupted after %d bytes: %s' % (url, fetched, error))
                if not block:
                    break
                handle.write(block)
                hasher.update(block)
                fetched += len(block)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        response.close()
    return {'fetched': fetched, 'resumed_from': offset, 'size': offset + fetched, 'digest': hasher.hexdigest()}


def _hash_prefix(handle, hasher, length):
    """Feed the first `length` bytes of an open file to hasher, leaving the position at `length`."""
    remaining = length
    while remaining > 0:
        block = handle.read(min(COPY_CHUNK, remaining))
        if not block:
            raise TransferError('the partial download shrank while resuming')
        hasher.update(block)
        remaining -= len(block)
