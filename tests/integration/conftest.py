"""Fixtures that give integration tests the local cluster: see cluster_fixtures.py."""
import pytest

from cluster_fixtures import (  # noqa: F401  pylint: disable=import-error,unused-import
    api_client, envoy_gateway_crds, gateway_api_crds, istio_crds, kubeconfig, namespace)


# Module scope: KEDA's CRDs go with it, so later modules meet a cluster without KEDA (test_serving checks that
# keda mode fails there).
@pytest.fixture(scope='module')
def keda_local(api_client, kubeconfig, tmp_path_factory):  # noqa: F811  pylint: disable=redefined-outer-name
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
