"""The pinned helm binary for integration tests (built by scripts/build-tools.sh).

kubernetes.core.helm runs `helm` from PATH unless the play sets binary_path
(llmscale_helm_binary); tests put the pinned build first on PATH.
"""
import os
import subprocess

from built_tools import tool_dir  # pylint: disable=import-error
from helpers import ansible_env  # pylint: disable=import-error


def helm_bin_dir():
    """Build helm if it is not cached yet (minutes cold, seconds cached) and return its folder."""
    return tool_dir('helm', 'HELM_BIN_DIR', ['helm'])


def env_with_helm(bin_dir, kubeconfig):
    """Environment for run_playbook: the pinned helm first on PATH, the test cluster's kubeconfig."""
    return {'PATH': bin_dir + os.pathsep + ansible_env()['PATH'], 'KUBECONFIG': kubeconfig}


def helm(bin_dir, kubeconfig, *args):
    """Run the pinned helm against the test cluster; returns the CompletedProcess."""
    return subprocess.run([os.path.join(bin_dir, 'helm'), '--kubeconfig', kubeconfig] + list(args),
                          capture_output=True, text=True, timeout=300, check=False)
