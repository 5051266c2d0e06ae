# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small HTTPS transport to the Kubernetes API for the apply path, for the common kinds of access.

Importing the kubernetes Python client costs about half a second per module run, more than the API calls of
a no-change apply. For the access most kubeconfigs describe (a server with a CA, and a client certificate, a
bearer token or basic auth), this transport talks to the API with the standard library. For anything else (exec
credential plugins, auth providers, proxies, impersonation, several merged kubeconfig files) load_access()
returns None and the caller uses kubernetes.core's client instead (k8s_apply.K8sTransport), so every access
kubernetes.core supports keeps working.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json
import os
import ssl
import tempfile
import threading

try:
    from http.client import HTTPSConnection, HTTPConnection
    from urllib.parse import urlencode, urlparse, quote
except ImportError:  # pragma: no cover - Python 2 is not supported by this collection
    HTTPSConnection = HTTPConnection = urlencode = urlparse = quote = None

# Module parameters (kubernetes.core's auth options) this transport does not handle: any of them set means the
# kubernetes client is used.
_UNSUPPORTED_PARAMS = ('proxy', 'no_proxy', 'proxy_headers', 'impersonate_user', 'impersonate_groups',
                       'persist_config')


class AccessError(Exception):
    pass


def _read_kubeconfig(path):
    import yaml
    with open(os.path.expanduser(path)) as handle:
        return yaml.safe_load(handle) or {}


def _named(items, name):
    for item in items or []:
        if item.get('name') == name:
            return item
    return None


def _relative(path, base_dir):
    if path and not os.path.isabs(os.path.expanduser(path)):
        return os.path.join(base_dir, path)
    return os.path.expanduser(path) if path else path


def access_from_kubeconfig(config, context_name=None, base_dir='.'):
    """The server and credentials of a kubeconfig's context, or None when this transport cannot use them."""
    context_name = context_name or config.get('current-context')
    context = (_named(config.get('contexts'), context_name) or {}).get('context')
    if not context:
        return None
    cluster = (_named(config.get('clusters'), context.get('cluster')) or {}).get('cluster') or {}
    user = (_named(config.get('users'), context.get('user')) or {}).get('user') or {}
    if not cluster.get('server') or cluster.get('proxy-url') or user.get('exec') or user.get('auth-provider') \
            or user.get('as') or user.get('as-groups'):
        return None
    access = {
        'server': cluster['server'].rstrip('/'),
        'insecure': bool(cluster.get('insecure-skip-tls-verify')),
        'server_name': cluster.get('tls-server-name'),
        'ca_file': _relative(cluster.get('certificate-authority'), base_dir),
        'ca_data': cluster.get('certificate-authority-data'),
        'cert_file': _relative(user.get('client-certificate'), base_dir),
        'cert_data': user.get('client-certificate-data'),
        'key_file': _relative(user.get('client-key'), base_dir),
        'key_data': user.get('client-key-data'),
        'token': user.get('token'),
        'username': user.get('username'),
        'password': user.get('password'),
    }
    if user.get('tokenFile'):
        with open(_relative(user['tokenFile'], base_dir)) as handle:
            access['token'] = handle.read().strip()
    return access


def load_access(params, environ=None):
    """Access from the module's kubernetes.core auth options, K8S_AUTH_* variables and kubeconfig, or None."""
    environ = os.environ if environ is None else environ

    def param(name):
        value = params.get(name)
        if value is None:
            value = environ.get('K8S_AUTH_' + name.upper())
        return value

    if any(params.get(name) for name in _UNSUPPORTED_PARAMS) or any(
            environ.get('K8S_AUTH_' + name.upper()) for name in ('proxy', 'no_proxy', 'impersonate_user')):
        return None
    if param('host'):
        validate = param('validate_certs')
        return {'server': param('host').rstrip('/'), 'token': param('api_key'), 'username': param('username'),
                'password': param('password'), 'ca_file': param('ca_cert'), 'cert_file': param('client_cert'),
                'key_file': param('client_key'),
                'insecure': validate is not None and str(validate).lower() in ('false', 'no', '0')}
    kubeconfig = param('kubeconfig')
    if isinstance(kubeconfig, dict):
        return access_from_kubeconfig(kubeconfig, param('context'))
    if not kubeconfig:
        paths = [path for path in environ.get('KUBECONFIG', '').split(os.pathsep) if path]
        if len(paths) > 1:
            return None  # kubeconfig merging: the kubernetes client's job
        kubeconfig = paths[0] if paths else '~/.kube/config'
        if not os.path.exists(os.path.expanduser(kubeconfig)):
            return _in_cluster(environ)
    path = os.path.expanduser(kubeconfig)
    return access_from_kubeconfig(_read_kubeconfig(path), param('context'), os.path.dirname(os.path.abspath(path)))


def _in_cluster(environ):
    host, port = environ.get('KUBERNETES_SERVICE_HOST'), environ.get('KUBERNETES_SERVICE_PORT')
    token = '/var/run/secrets/kubernetes.io/serviceaccount/token'
    if not host or not os.path.exists(token):
        return None
    with open(token) as handle:
        return {'server': 'https://%s:%s' % (host, port), 'token': handle.read().strip(),
                'ca_file': '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'}


def _ssl_context(access):
    if access.get('insecure'):
        context = ssl._create_unverified_context()  # the kubeconfig asked for insecure-skip-tls-verify
    else:
        cadata = base64.b64decode(access['ca_data']).decode() if access.get('ca_data') else None
        context = ssl.create_default_context(cafile=access.get('ca_file') or None, cadata=cadata)
    cert, key = access.get('cert_file'), access.get('key_file')
    if access.get('cert_data') or access.get('key_data'):
        # ssl loads certificates from files only: write them to a private directory just long enough to load.
        directory = tempfile.mkdtemp(prefix='llmscale-k8s-')
        try:
            cert = os.path.join(directory, 'cert.pem')
            key = os.path.join(directory, 'key.pem')
            for target, data, fallback in ((cert, access.get('cert_data'), access.get('cert_file')),
                                           (key, access.get('key_data'), access.get('key_file'))):
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, 'wb') as handle:
                    if data:
                        handle.write(base64.b64decode(data))
                    else:
                        with open(fallback, 'rb') as source:
                            handle.write(source.read())
            context.load_cert_chain(cert, key)
        finally:
            for name in os.listdir(directory):
                os.unlink(os.path.join(directory, name))
            os.rmdir(directory)
    elif cert:
        context.load_cert_chain(cert, key)
    return context


class HttpClient(object):
    """JSON requests to one API server, one connection per thread (the apply path runs requests in parallel)."""

    def __init__(self, access, timeout=60):
        self.access = access
        self.timeout = timeout
        url = urlparse(access['server'])
        self._https = url.scheme == 'https'
        self._host, self._port = url.hostname, url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip('/')
        self._context = _ssl_context(access) if self._https else None
        self._local = threading.local()
        self._headers = {'Accept': 'application/json', 'User-Agent': 'llmscale.gpu_serving'}
        if access.get('token'):
            self._headers['Authorization'] = 'Bearer %s' % access['token']
        elif access.get('username'):
            credentials = ('%s:%s' % (access['username'], access.get('password') or '')).encode()
            self._headers['Authorization'] = 'Basic %s' % base64.b64encode(credentials).decode()

    def _connection(self):
        connection = getattr(self._local, 'connection', None)
        if connection is None:
            if self._https:
                connection = HTTPSConnection(self._host, self._port, timeout=self.timeout, context=self._context)
            else:
                connection = HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def request(self, method, path, body=None, query=None, content_type='application/json'):
        """(status, decoded JSON body) of one request; a dropped keep-alive connection is retried once."""
        url = self._prefix + path + (('?' + urlencode(query)) if query else '')
        headers = dict(self._headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers['Content-Type'] = content_type
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, url, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (OSError, IOError) as error:
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise AccessError('%s %s: %s' % (method, url, error))
        try:
            decoded = json.loads(data.decode()) if data else {}
        except ValueError:
            decoded = {'message': data.decode(errors='replace')}
        return response.status, decoded


class HttpTransport(object):
    """The apply path's transport (same interface as k8s_apply.K8sTransport) over HttpClient."""

    def __init__(self, client, field_manager, error_class):
        self.client = client
        self.field_manager = field_manager
        self.error = error_class
        self._groups = {}
        self._lock = threading.Lock()

    def _group_resources(self, api_version):
        with self._lock:
            if api_version not in self._groups:
                path = '/api/v1' if api_version == 'v1' else '/apis/' + api_version
                status, body = self.client.request('GET', path)
                kinds = {}
                if status == 200:
                    for resource in body.get('resources') or []:
                        if '/' not in resource['name']:
                            kinds[resource['kind']] = (resource['name'], resource.get('namespaced', False))
                elif status != 404:
                    raise self.error('discovery of %s: HTTP %s %s' % (api_version, status, body.get('message', '')))
                self._groups[api_version] = kinds
            return self._groups[api_version]

    def _path(self, api_version, kind, namespace=None, name=None):
        plural, namespaced = self._group_resources(api_version)[kind]
        base = '/api/v1' if api_version == 'v1' else '/apis/' + api_version
        if namespaced and namespace:
            base += '/namespaces/' + quote(namespace, safe='')
        base += '/' + plural
        return base + ('/' + quote(name, safe='') if name else '')

    def served(self, api_version, kind):
        return kind in self._group_resources(api_version)

    def namespaced(self, api_version, kind):
        return self._group_resources(api_version)[kind][1]

    def _check(self, status, body, what):
        if status >= 400:
            raise self.error('%s: %s' % (what, body.get('message') or 'HTTP %s' % status))
        return body

    def get(self, obj):
        metadata = obj.get('metadata') or {}
        namespace = metadata.get('namespace') if self.namespaced(obj['apiVersion'], obj['kind']) else None
        status, body = self.client.request('GET', self._path(obj['apiVersion'], obj['kind'], namespace,
                                                             metadata['name']))
        if status == 404:
            return None
        return self._check(status, body, 'reading %s %s' % (obj['kind'], metadata['name']))

    def apply(self, obj, dry_run):
        metadata = obj.get('metadata') or {}
        namespace = metadata.get('namespace') if self.namespaced(obj['apiVersion'], obj['kind']) else None
        query = [('fieldManager', self.field_manager), ('force', 'true')]
        if dry_run:
            query.append(('dryRun', 'All'))
        status, body = self.client.request(
            'PATCH', self._path(obj['apiVersion'], obj['kind'], namespace, metadata['name']), body=obj, query=query,
            content_type='application/apply-patch+yaml')
        return self._check(status, body, 'HTTP %s' % status)

    def delete(self, obj, wait_timeout=None):
        import time
        metadata = obj.get('metadata') or {}
        namespace = metadata.get('namespace') if self.namespaced(obj['apiVersion'], obj['kind']) else None
        policy = 'Foreground' if wait_timeout else 'Background'
        status, body = self.client.request(
            'DELETE', self._path(obj['apiVersion'], obj['kind'], namespace, metadata['name']),
            body={'kind': 'DeleteOptions', 'apiVersion': 'v1', 'propagationPolicy': policy})
        if status == 404:
            return
        self._check(status, body, 'deleting %s %s' % (obj['kind'], metadata['name']))
        deadline = time.monotonic() + (wait_timeout or 0)
        while wait_timeout and self.get(obj) is not None:
            if time.monotonic() >= deadline:
                raise self.error('timed out after %ss waiting for %s %s to be deleted'
                                 % (wait_timeout, obj['kind'], metadata['name']))
            time.sleep(1)

    def list(self, api_version, kind, namespace=None, label_selector=None):
        if not self.served(api_version, kind):
            return []
        namespace = namespace if self.namespaced(api_version, kind) else None
        status, body = self.client.request('GET', self._path(api_version, kind, namespace),
                                           query=[('labelSelector', label_selector)] if label_selector else None)
        items = self._check(status, body, 'listing %s' % kind).get('items') or []
        for item in items:
            item.setdefault('apiVersion', api_version)
            item.setdefault('kind', kind)
        return items
