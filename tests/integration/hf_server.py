"""A real Hugging Face-protocol server on loopback for model cache tests: olah serving local git repositories.

olah (PyPI, pinned in requirements.txt) serves repositories found under
`<mirrors>/models/<org>/<name>` (git, branch `main`). Large files are stored as
git-LFS pointers in the tree with their content at
`.git/lfs/objects/<aa>/<bb>/<sha256>`, exactly where git-lfs keeps them; olah
reports them in the tree API with `lfs.sha256`, answers HEAD with the sha256 as
ETag and serves the content on `/resolve/`. No git-lfs binary is needed to lay
that out. olah's local mirrors ignore HTTP Range (they always answer 200 with
the whole file).

olah checks no token for local mirrors; the Hub answers an invalid token with
401 "Invalid credentials in Authorization header". To test that path the server
here wraps olah's real app in a small ASGI gate that gives that same answer when
the bearer token is not the expected one. Everything else is olah's.

StaticServer is Starlette's StaticFiles under uvicorn (both come with olah):
a plain file server that honours HTTP Range, for the `url` source's resume.

Run as a script (`python hf_server.py olah CONFIG PORT [TOKEN]`, or
`python hf_server.py static DIR PORT`), used by the servers below and by
benchmarks/model_cache/.
"""
import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

GIT_ENV = {'GIT_AUTHOR_NAME': 'llmscale', 'GIT_AUTHOR_EMAIL': 'tests@llmscale.invalid',
           'GIT_COMMITTER_NAME': 'llmscale', 'GIT_COMMITTER_EMAIL': 'tests@llmscale.invalid',
           'GIT_CONFIG_GLOBAL': os.devnull, 'GIT_CONFIG_NOSYSTEM': '1'}
LFS_POINTER = 'version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n'
# The Hub stores files above 10 MB (and binaries) with LFS; tests pick a lower bar to have both kinds.
DEFAULT_LFS_MIN_SIZE = 1024 * 1024
CHUNK = 4 * 1024 * 1024


def _git(repo, *args):
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(['git', '-C', repo] + list(args), check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def _store_lfs_object(repo, source_path):
    """Copy a file into the repo's LFS object store; return (sha256, size)."""
    hasher = hashlib.sha256()
    staging = os.path.join(repo, '.git', 'lfs', 'tmp-object')
    os.makedirs(os.path.dirname(staging), exist_ok=True)
    size = 0
    with open(source_path, 'rb') as source, open(staging, 'wb') as target:
        while True:
            block = source.read(CHUNK)
            if not block:
                break
            hasher.update(block)
            target.write(block)
            size += len(block)
    oid = hasher.hexdigest()
    final = os.path.join(repo, '.git', 'lfs', 'objects', oid[:2], oid[2:4], oid)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.replace(staging, final)
    return oid, size


def commit_files(repo, files, message='update', lfs_min_size=DEFAULT_LFS_MIN_SIZE, tag=None):
    """Add or replace files in a mirror repository and commit on main; return the commit sha.

    files maps a repo path to a local file path (or to bytes). Files of at least
    lfs_min_size bytes go to the LFS object store with a pointer in the tree.
    Returns (commit, {path: {'size', 'sha256'}}) for what was committed.
    """
    if not os.path.isdir(os.path.join(repo, '.git')):
        os.makedirs(repo, exist_ok=True)
        _git(repo, 'init', '-q', '-b', 'main')
    facts = {}
    for path, content in sorted(files.items()):
        target = os.path.join(repo, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(content, bytes):
            with open(target, 'wb') as handle:
                handle.write(content)
            source = target
        else:
            source = content
        size = os.path.getsize(source)
        if size >= lfs_min_size:
            oid, size = _store_lfs_object(repo, source)
            with open(target, 'w') as handle:
                handle.write(LFS_POINTER % (oid, size))
            facts[path] = {'size': size, 'sha256': oid, 'lfs': True}
        else:
            if source != target:
                with open(source, 'rb') as src, open(target, 'wb') as dst:
                    dst.write(src.read())
            with open(target, 'rb') as handle:
                facts[path] = {'size': size, 'sha256': hashlib.sha256(handle.read()).hexdigest(), 'lfs': False}
    _git(repo, 'add', '-A')
    _git(repo, 'commit', '-q', '-m', message)
    if tag:
        _git(repo, 'tag', tag)
    return _git(repo, 'rev-parse', 'HEAD'), facts


def generate_file(path, size):
    """A file of `size` random (incompressible) bytes, written in chunks."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        written = 0
        while written < size:
            piece = os.urandom(min(CHUNK, size - written))
            handle.write(piece)
            written += len(piece)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def write_config(path, mirrors, repos, port):
    with open(path, 'w') as handle:
        handle.write('\n'.join([
            '[basic]',
            'host = "127.0.0.1"',
            'port = %d' % port,
            'repos-path = "%s"' % repos,
            'mirror-url = "http://127.0.0.1:%d"' % port,
            'mirror-lfs-url = "http://127.0.0.1:%d"' % port,
            'mirrors-path = ["%s"]' % mirrors,
            '[accessibility]',
            'offline = true',
            '[[accessibility.proxy]]',
            'repo = "*"',
            'allow = true',
            '[[accessibility.cache]]',
            'repo = "*"',
            'allow = true',
            '',
        ]))


class _ServerProcess(object):
    """This file run as a server in a child process on 127.0.0.1:<free port>."""

    def __init__(self, workdir, name):
        self.workdir = workdir
        self.port = free_port()
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        self.process = None
        self.log_path = os.path.join(workdir, name + '.log')

    def arguments(self):
        raise NotImplementedError

    def start(self, timeout=90):
        args = [sys.executable, os.path.abspath(__file__)] + self.arguments()
        log = open(self.log_path, 'w')  # pylint: disable=consider-using-with  # lives as long as the server
        self.process = subprocess.Popen(args, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('the server exited with %s:\n%s' % (self.process.returncode, self.log()))
            try:
                urllib.request.urlopen(self.endpoint + '/health-llmscale', timeout=2)  # nosec: loopback only
            except urllib.error.HTTPError:
                return self  # any HTTP answer means it is serving
            except OSError:
                time.sleep(0.3)
                continue
            return self
        self.stop()
        raise RuntimeError('the server did not answer within %ss:\n%s' % (timeout, self.log()))

    def log(self):
        with open(self.log_path) as handle:
            return handle.read()[-4000:]

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class OlahServer(_ServerProcess):
    """olah serving `mirrors`, behind a bearer-token gate when token is set."""

    def __init__(self, workdir, mirrors, token=None):
        super().__init__(workdir, 'olah')
        self.mirrors = mirrors
        self.token = token

    def arguments(self):
        config = os.path.join(self.workdir, 'olah.toml')
        write_config(config, self.mirrors, os.path.join(self.workdir, 'olah-repos'), self.port)
        return ['olah', config, str(self.port)] + ([self.token] if self.token else [])


class StaticServer(_ServerProcess):
    """Starlette's StaticFiles serving `directory` (honours Range)."""

    def __init__(self, workdir, directory):
        super().__init__(workdir, 'static')
        self.directory = directory

    def arguments(self):
        return ['static', self.directory, str(self.port)]


def token_gate(app, token):
    """ASGI wrapper answering like the Hub when the bearer token is not `token`."""
    expected = ('Bearer %s' % token).encode()

    async def gated(scope, receive, send):
        if scope['type'] == 'http':
            headers = dict(scope.get('headers') or [])
            if headers.get(b'authorization') != expected:
                body = b'{"error":"Invalid credentials in Authorization header"}'
                await send({'type': 'http.response.start', 'status': 401, 'headers': [
                    (b'content-type', b'application/json'), (b'content-length', str(len(body)).encode()),
                    (b'x-error-message', b'Invalid credentials in Authorization header')]})
                await send({'type': 'http.response.body', 'body': body})
                return
        await app(scope, receive, send)
    return gated


def serve_static(directory, port):
    import uvicorn  # pylint: disable=import-outside-toplevel  # only in the server process
    from starlette.staticfiles import StaticFiles  # pylint: disable=import-outside-toplevel
    uvicorn.run(StaticFiles(directory=directory), host='127.0.0.1', port=port, log_level='warning')


def serve(config, port, token=None):
    os.environ['OLAH_CONFIG'] = config
    os.environ.setdefault('OLAH_LOG_PATH', os.path.join(os.path.dirname(config), 'olah-logs'))
    import uvicorn  # pylint: disable=import-outside-toplevel  # only in the server process
    from olah.server import app  # pylint: disable=import-outside-toplevel  # reads OLAH_CONFIG on import
    uvicorn.run(token_gate(app, token) if token else app, host='127.0.0.1', port=port, log_level='warning')


if __name__ == '__main__':
    if sys.argv[1] == 'static':
        serve_static(sys.argv[2], int(sys.argv[3]))
    else:
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
