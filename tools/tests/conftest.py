"""The harness tests use the integration tests' cluster fixtures and helpers (tests/, tests/integration)."""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for folder in (os.path.join(REPO_ROOT, 'tests'), os.path.join(REPO_ROOT, 'tests', 'integration')):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from cluster_fixtures import api_client, kubeconfig, namespace  # noqa: E402,F401  pylint: disable=import-error,unused-import,wrong-import-position
