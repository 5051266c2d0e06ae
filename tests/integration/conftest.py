"""Fixtures that give integration tests the local cluster: see cluster_fixtures.py."""
from cluster_fixtures import api_client, kubeconfig, namespace  # noqa: F401  pylint: disable=import-error,unused-import
