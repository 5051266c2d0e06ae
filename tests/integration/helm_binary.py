"""The pinned helm binary for integration tests (built by scripts/build-tools.sh).

kubernetes.core.helm runs `helm` from PATH unless the play sets binary_path
(llmscale_helm_binary); tests put the pinned build first on PATH.
"""
import os
import subprocess

from helpers import ansible_env  # pylint: disable=import-error

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def helm_bin_dir():
    """Build helm if it is not cached yet (minutes cold, seconds cached) and return its folder."""
    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'build-tools.sh'), 'helm'],
                          capture_output=True, text=True, timeout=3600, check=False, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError('scripts/build-tools.sh helm failed:\n%s\n%s' % (proc.stdout[-2000:], proc.stderr[-3000:]))
    where = subprocess.run(['bash', '-c', 'source tools/paths.sh && echo "$HELM_BIN_DIR"'],
                           capture_output=True, text=True, timeout=60, check=True, cwd=REPO_ROOT)
    path = where.stdout.strip()
    if not os.access(os.path.join(path, 'helm'), os.X_OK):
        raise RuntimeError('no helm binary in %s after scripts/build-tools.sh helm' % path)
    return path


def env_with_helm(bin_dir, kubeconfig):
    """Environment for run_playbook: the pinned helm first on PATH, the test cluster's kubeconfig."""
    return {'PATH': bin_dir + os.pathsep + ansible_env()['PATH'], 'KUBECONFIG': kubeconfig}


def helm(bin_dir, kubeconfig, *args):
    """Run the pinned helm against the test cluster; returns the CompletedProcess."""
    return subprocess.run([os.path.join(bin_dir, 'helm'), '--kubeconfig', kubeconfig] + list(args),
                          capture_output=True, text=True, timeout=300, check=False)
