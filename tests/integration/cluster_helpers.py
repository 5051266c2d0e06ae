"""Small helpers for tests that talk to the local cluster."""
import os
import subprocess
import time

from kubernetes.client.rest import ApiException


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER_SCRIPT = os.path.join(REPO_ROOT, 'scripts', 'cluster.sh')


def shared_dir(marker):
    """The shared reference folder (real charts, CRDs) holding MARKER (a path inside it): $LLMSCALE_SHARED_DIR, else
    ../shared next to this checkout or next to the main checkout of a git worktree."""
    candidates = [os.environ.get('LLMSCALE_SHARED_DIR', ''), os.path.join(os.path.dirname(REPO_ROOT), 'shared')]
    common = subprocess.run(['git', 'rev-parse', '--path-format=absolute', '--git-common-dir'], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    if common:
        candidates.append(os.path.join(os.path.dirname(os.path.dirname(common)), 'shared'))
    for candidate in candidates:
        if candidate and os.path.exists(os.path.join(candidate, marker)):
            return candidate
    raise RuntimeError('no %s in any of %s: set LLMSCALE_SHARED_DIR' % (marker, [c for c in candidates if c]))


def start_cluster():
    """Start (or reuse) the local cluster of $LLMSCALE_CLUSTER_NAME; return its kubeconfig path (`cluster.sh kubeconfig`)."""
    for command in ('up', 'kubeconfig'):
        proc = subprocess.run(['bash', CLUSTER_SCRIPT, command], capture_output=True, text=True,
                              timeout=3600, check=False, cwd=os.path.dirname(os.path.dirname(CLUSTER_SCRIPT)))
        if proc.returncode != 0:
            raise RuntimeError('scripts/cluster.sh %s failed (rc=%s):\n%s\n%s'
                               % (command, proc.returncode, proc.stdout[-3000:], proc.stderr[-5000:]))
    return proc.stdout.strip()


def delete_if_present(delete, *args, **kwargs):
    """Call a kubernetes client delete_* method; an object already gone is fine (cleanup)."""
    try:
        delete(*args, **kwargs)
    except ApiException as error:
        if error.status != 404:
            raise


def poll(predicate, timeout, interval=2.0, what='condition'):
    """Call predicate until it returns something truthy; return that value.

    A loaded 2-core machine makes every step slow now and then, so tests poll
    with generous deadlines instead of sleeping for fixed times.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (TypeError, AttributeError, NameError):
            raise  # a bug in the test, not a slow cluster
        except Exception as error:  # pylint: disable=broad-except  # keep polling through API hiccups
            last_error = error
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %ss waiting for %s (last error: %r)' % (timeout, what, last_error))
        time.sleep(interval)
