"""The local-cluster fixtures (kubeconfig, api_client, namespace), shared by two conftests.

tests/integration/conftest.py (the collection's integration tests) and
tools/tests/conftest.py (the tests of the cluster harness itself) both expose
them. `kubeconfig` (session) is the contract: the absolute path of a
kubeconfig for a cluster whose API server is ready, whose nodes are Ready and
where pods can be created. It uses $KUBECONFIG when scripts/test.sh exported
one for our cluster, else starts the cluster itself (`scripts/cluster.sh up`,
which reuses a running cluster).
"""
import glob
import os
import uuid

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from cluster_helpers import poll, shared_dir, start_cluster  # pylint: disable=import-error

# The real CRDs of the traffic layer (../shared/crds), by the fixture that installs them.
GATEWAY_API_CRDS = ('crds/gateway-api-v1.6.1', 'crds/gateway-api-inference-extension-v1.6.0')
ENVOY_GATEWAY_CRDS = ('crds/envoy-gateway-v1.9.0',)
ISTIO_CRDS = ('crds/istio-1.30.3',)
CRD_TIMEOUT_S = 120

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


def install_crds(api, folders):
    """Create (or replace) every CustomResourceDefinition in the YAML files of FOLDERS (relative to the shared folder)
    and wait until the API server serves them; returns their names. They stay installed: CRDs are cluster-wide, and
    the tests of a session share them."""
    extensions = client.ApiextensionsV1Api(api)
    names = []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(shared_dir(folder), folder, '*.yaml'))):
            with open(path, encoding='utf-8') as handle:
                for document in yaml.safe_load_all(handle):
                    if not document or document.get('kind') != 'CustomResourceDefinition':
                        continue  # Gateway API ships a ValidatingAdmissionPolicy beside its CRDs
                    name = document['metadata']['name']
                    try:
                        extensions.create_custom_resource_definition(document)
                    except ApiException as error:
                        if error.status != 409:
                            raise
                        document['metadata']['resourceVersion'] = \
                            extensions.read_custom_resource_definition(name).metadata.resource_version
                        extensions.replace_custom_resource_definition(name, document)
                    names.append(name)

    def established(name):
        conditions = extensions.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == 'Established' and c.status == 'True' for c in conditions)
    for name in names:
        poll(lambda name=name: established(name), CRD_TIMEOUT_S, what='CRD %s established' % name)
    # Established comes before the storage serves lists ("storage is (re)initializing" for a moment).
    custom = client.CustomObjectsApi(api)
    for name in names:
        crd = extensions.read_custom_resource_definition(name)
        version = next(v.name for v in crd.spec.versions if v.storage)
        poll(lambda crd=crd, version=version: custom.list_cluster_custom_object(
            crd.spec.group, version, crd.spec.names.plural, limit=1) is not None,
            CRD_TIMEOUT_S, what='%s listable' % name)
    return names


@pytest.fixture(scope='session')
def gateway_api_crds(api_client):  # pylint: disable=redefined-outer-name
    """The Gateway API v1.6.1 (standard channel) and Inference Extension v1.6.0 CRDs in the local cluster."""
    return install_crds(api_client, GATEWAY_API_CRDS)


@pytest.fixture(scope='session')
def envoy_gateway_crds(api_client, gateway_api_crds):  # pylint: disable=redefined-outer-name
    """Envoy Gateway v1.9.0's CRDs (BackendTrafficPolicy, ...), on top of the Gateway API's."""
    return gateway_api_crds + install_crds(api_client, ENVOY_GATEWAY_CRDS)


@pytest.fixture(scope='session')
def istio_crds(api_client):  # pylint: disable=redefined-outer-name
    """Istio 1.30.3's CRDs (PeerAuthentication, AuthorizationPolicy, DestinationRule, ...)."""
    return install_crds(api_client, ISTIO_CRDS)
