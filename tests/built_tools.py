"""Binaries that scripts/build-tools.sh builds, for the tests (unit and integration).

Each call runs build-tools.sh for the component: seconds when it is cached,
minutes cold. A missing binary afterwards is an error, never a skip: setup
builds every component, so CI always has them.
"""
import os
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tool_dir(component, dir_variable, binaries):
    """Build COMPONENT if needed; return its folder (tools/paths.sh's DIR_VARIABLE), holding BINARIES."""
    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'build-tools.sh'), component],
                          capture_output=True, text=True, timeout=3600, check=False, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError('scripts/build-tools.sh %s failed:\n%s\n%s' % (component, proc.stdout[-2000:], proc.stderr[-3000:]))
    where = subprocess.run(['bash', '-c', 'source tools/paths.sh && echo "${%s}"' % dir_variable],
                           capture_output=True, text=True, timeout=60, check=True, cwd=REPO_ROOT)
    path = where.stdout.strip()
    missing = [name for name in binaries if not os.access(os.path.join(path, name), os.X_OK)]
    if missing:
        raise RuntimeError('no %s in %s after scripts/build-tools.sh %s' % (', '.join(missing), path, component))
    return path
