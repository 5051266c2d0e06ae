"""Fixtures that give integration tests the local cluster (scripts/cluster.sh).

`kubeconfig` (session) is the contract other test modules rely on: the
absolute path of a kubeconfig for a cluster whose API server is ready, whose
nodes are Ready and where pods can be created. It uses $KUBECONFIG when
scripts/test.sh exported one for our cluster, else runs `scripts/cluster.sh up`
itself (which reuses a running cluster).
"""
import os
import subprocess
import uuid

import pytest
from kubernetes import client, config

from cluster_helpers import poll  # pylint: disable=import-error

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER_SCRIPT = os.path.join(REPO_ROOT, 'scripts', 'cluster.sh')
# kwokctl names the context kwok-<cluster name>.
CLUSTER_CONTEXT = 'kwok-' + os.environ.get('LLMSCALE_CLUSTER_NAME', 'llmscale')
EXPECTED_NODES = {'gpu-node-0', 'gpu-node-1', 'cpu-node-0'}
READY_TIMEOUT_S = 300


def _is_our_cluster(path):
    if not path or not os.path.isfile(path):
        return False
    try:
        contexts, _current = config.list_kube_config_contexts(config_file=path)
    except Exception:  # pylint: disable=broad-except  # unreadable: not ours
        return False
    return any(context['name'] == CLUSTER_CONTEXT for context in contexts)


def _cluster_up():
    proc = subprocess.run(['bash', CLUSTER_SCRIPT, 'up'], capture_output=True, text=True,
                          timeout=3600, check=False, cwd=REPO_ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith('KUBECONFIG='):
        raise RuntimeError('scripts/cluster.sh up failed (rc=%s):\n%s\n%s'
                           % (proc.returncode, proc.stdout[-3000:], proc.stderr[-5000:]))
    return lines[-1].split('=', 1)[1]


def _nodes_ready(core):
    ready = set()
    for node in core.list_node().items:
        if any(c.type == 'Ready' and c.status == 'True' for c in node.status.conditions or []):
            ready.add(node.metadata.name)
    return EXPECTED_NODES <= ready


def _readyz(api):
    response = api.call_api('GET', api.configuration.host + '/readyz', _request_timeout=10)
    return response.status == 200 and response.read() == b'ok'


def _wait_until_usable(path):
    api = config.new_client_from_config(config_file=path)
    try:
        poll(lambda: _readyz(api), READY_TIMEOUT_S, what='kube-apiserver /readyz')
        core = client.CoreV1Api(api)
        poll(lambda: _nodes_ready(core), READY_TIMEOUT_S, what='nodes %s Ready' % sorted(EXPECTED_NODES))
        poll(lambda: core.read_namespaced_service_account('default', 'default'), READY_TIMEOUT_S,
             what='the default service account')
    finally:
        api.close()


@pytest.fixture(scope='session')
def kubeconfig():
    """Absolute path of the local cluster's kubeconfig, once the cluster is usable."""
    path = os.environ.get('KUBECONFIG', '')
    if not _is_our_cluster(path):
        path = _cluster_up()
    path = os.path.abspath(path)
    _wait_until_usable(path)
    return path


@pytest.fixture(scope='session')
def api_client(kubeconfig):  # pylint: disable=redefined-outer-name
    """A kubernetes.client.ApiClient for the local cluster."""
    api = config.new_client_from_config(config_file=kubeconfig)
    yield api
    api.close()


@pytest.fixture
def namespace(api_client):  # pylint: disable=redefined-outer-name
    """A fresh namespace for one test, deleted afterwards."""
    core = client.CoreV1Api(api_client)
    name = 'test-' + uuid.uuid4().hex[:8]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy='Background')


@pytest.fixture(scope='session')
def keda_local(api_client, kubeconfig, tmp_path_factory):  # pylint: disable=redefined-outer-name
    """KEDA's operator and metrics API server running locally against the cluster (tests/integration/scaling_harness.py).

    Tests that create ScaledObjects delete them before this fixture ends: the
    operator removes their finalizers, and the chart's CRDs go away with it.
    """
    from scaling_harness import KedaProcesses  # pylint: disable=import-error,import-outside-toplevel
    keda = KedaProcesses(api_client, kubeconfig, str(tmp_path_factory.mktemp('keda')))
    try:
        yield keda.install().start()
    finally:
        keda.stop()
