"""The local-cluster fixtures (kubeconfig, api_client, namespace), shared by two conftests.

tests/integration/conftest.py (the collection's integration tests) and
tools/tests/conftest.py (the tests of the cluster harness itself) both expose
them. `kubeconfig` (session) is the contract: the absolute path of a
kubeconfig for a cluster whose API server is ready, whose nodes are Ready and
where pods can be created. It uses $KUBECONFIG when scripts/test.sh exported
one for our cluster, else starts the cluster itself (`scripts/cluster.sh up`,
which reuses a running cluster).
"""
import os
import uuid

import pytest
from kubernetes import client, config

from cluster_helpers import poll, start_cluster  # pylint: disable=import-error

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
        path = start_cluster()
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
