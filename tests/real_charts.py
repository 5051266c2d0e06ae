"""The real upstream Helm charts the roles install, for unit and integration tests.

Where the archives come from, first that works:
  1. $LLMSCALE_CHARTS_DIR;
  2. ../shared/charts beside the checkout (the reference copies on these machines and in CI);
  3. `scripts/charts.sh pull` from the charts' repositories into a cache folder (needs network).
With none of them a chart test is skipped with a message saying so: it never falls back to
an imitation. Archives are named <chart>-<version>.tgz, as `make charts` writes them.
"""
import functools
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

import pytest
import yaml

from helpers import REPO_ROOT  # pylint: disable=import-error

sys.path.insert(0, os.path.join(REPO_ROOT, '.collections'))
# The one LabelSelector matcher (the chart tests check the real charts' selectors with it).
# pylint: disable-next=wrong-import-position,unused-import
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import label_selector_matches  # noqa: E402,F401

SHARED_CHARTS = os.path.join(os.path.dirname(REPO_ROOT), 'shared', 'charts')
PULL_CACHE = os.path.join(os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'llmscale', 'charts')


def _paths_sh(variable):
    proc = subprocess.run(['bash', '-c', 'source tools/paths.sh && echo "$%s"' % variable], capture_output=True,
                          text=True, timeout=60, check=True, cwd=REPO_ROOT)
    return proc.stdout.strip()


@functools.lru_cache(maxsize=None)
def pins():
    """[(chart, version, repository)] as the roles pin them (scripts/charts.sh reads the roles' defaults)."""
    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'charts.sh'), 'list'], capture_output=True,
                          text=True, timeout=120, check=True, cwd=REPO_ROOT)
    return [tuple(line.split()) for line in proc.stdout.splitlines() if line.strip()]


def pinned_version(chart):
    (version,) = [v for name, v, _repo in pins() if name == chart]
    return version


def helm_binary():
    """The pinned helm (scripts/build-tools.sh helm, part of `make setup`)."""
    path = os.path.join(_paths_sh('HELM_BIN_DIR'), 'helm')
    if not os.access(path, os.X_OK):
        pytest.fail('the pinned helm is missing (%s): run `bash scripts/build-tools.sh helm`' % path)
    return path


def _has_all(directory):
    return all(os.path.isfile(os.path.join(directory, '%s-%s.tgz' % (name, version))) for name, version, _archive in pins())


@functools.lru_cache(maxsize=None)
def _find_charts_dir():
    """(directory or None, what was tried)."""
    tried = []
    from_env = os.environ.get('LLMSCALE_CHARTS_DIR', '')
    if from_env:
        if _has_all(from_env):
            return os.path.abspath(from_env), ''
        tried.append('LLMSCALE_CHARTS_DIR=%s lacks some of %s' % (from_env, archive_names()))
    else:
        tried.append('LLMSCALE_CHARTS_DIR is unset')
    if _has_all(SHARED_CHARTS):
        return SHARED_CHARTS, ''
    tried.append('%s does not hold them' % SHARED_CHARTS)
    if _has_all(PULL_CACHE):
        return PULL_CACHE, ''
    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'charts.sh'), 'pull', PULL_CACHE],
                          capture_output=True, text=True, timeout=600, check=False, cwd=REPO_ROOT)
    if proc.returncode == 0 and _has_all(PULL_CACHE):
        return PULL_CACHE, ''
    tried.append('no chart repository is reachable (scripts/charts.sh pull: %s)'
                 % (proc.stderr.strip().splitlines() or ['failed'])[-1])
    return None, '; '.join(tried)


def archive_names():
    return ['%s-%s.tgz' % (name, version) for name, version, _repo in pins()]


def charts_dir():
    """The folder holding every pinned chart archive, or skip the test saying why there is none."""
    directory, why = _find_charts_dir()
    if directory is None:
        pytest.skip('real charts unavailable, so this chart test is skipped (never an imitation): ' + why)
    return directory


def archive(chart):
    return os.path.join(charts_dir(), '%s-%s.tgz' % (chart, pinned_version(chart)))


def copy_with_digests(destination, charts=None):
    """A llmscale_chart_dir as `make charts` leaves it: the archives and SHA256SUMS."""
    os.makedirs(destination, exist_ok=True)
    for name, version, _repo in pins():
        if charts is None or name in charts:
            shutil.copy(os.path.join(charts_dir(), '%s-%s.tgz' % (name, version)), destination)
    subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'charts.sh'), 'digests', destination],
                   capture_output=True, text=True, timeout=120, check=True, cwd=REPO_ROOT)
    return destination


class Chart:
    """An unpacked chart: its values.yaml, schemas and template text, with its sub-charts."""

    def __init__(self, root):
        self.root = root
        self.name = os.path.basename(root)
        with open(os.path.join(root, 'values.yaml'), encoding='utf-8') as handle:
            self.defaults = yaml.safe_load(handle) or {}
        schema = os.path.join(root, 'values.schema.json')
        self.schema_path = schema if os.path.isfile(schema) else None
        texts = []
        for folder, _dirs, files in os.walk(os.path.join(root, 'templates')):
            for name in files:
                with open(os.path.join(folder, name), encoding='utf-8', errors='replace') as handle:
                    texts.append(handle.read())
        self.templates = '\n'.join(texts)
        sub_root = os.path.join(root, 'charts')
        self.subcharts = {}
        if os.path.isdir(sub_root):
            for name in sorted(os.listdir(sub_root)):
                path = os.path.join(sub_root, name)
                if os.path.isdir(path) and os.path.isfile(os.path.join(path, 'values.yaml')):
                    sub = Chart(path)
                    self.subcharts[sub.name] = sub

    def referenced(self, path):
        """Whether a template reads .Values.<path> (keys that values.yaml only shows in a comment)."""
        return re.search(r'\.Values\.%s(?![\w])' % re.escape('.'.join(path)), self.templates) is not None

    def unknown_keys(self, values):
        """Keys of values that neither values.yaml nor the templates know, as dotted paths."""
        unknown = []
        for key, value in values.items():
            if key == 'global':
                continue
            if key in self.subcharts:
                # A sub-chart's values: its own values.yaml, with what the parent sets for it (e.g. enabled) on top.
                sub = self.subcharts[key]
                reference = merged(sub.defaults, self.defaults.get(key) or {})
                unknown += ['%s.%s' % (key, k) for k in _unknown(value or {}, reference, sub.referenced, ())]
            else:
                unknown += _unknown({key: value}, self.defaults, self.referenced, ())
        return unknown


def _unknown(values, defaults, referenced, path):
    unknown = []
    for key, value in values.items():
        here = path + (key,)
        default = _dig(defaults, here)
        if default is _MISSING:
            if not referenced(here):
                unknown.append('.'.join(here))
            continue
        # A non-empty map of defaults is a structure to check further; an empty map, null or a
        # scalar default takes what the user gives (labels, selectors, free-form config).
        if isinstance(value, dict) and isinstance(default, dict) and default:
            unknown += _unknown(value, defaults, referenced, here)
    return unknown


_MISSING = object()


def _dig(tree, path):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return _MISSING
        tree = tree[key]
    return tree


def merged(base, override):
    """Helm's merge of user values over chart defaults (maps merge, everything else replaces)."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


@functools.lru_cache(maxsize=None)
def unpacked(chart):
    """The pinned archive of chart, unpacked once per test session."""
    target = tempfile.mkdtemp(prefix='llmscale-chart-')
    with tarfile.open(archive(chart)) as tar:
        tar.extractall(target, filter='data')
    (top,) = os.listdir(target)
    return Chart(os.path.join(target, top))


def schema_errors(chart, values):
    """jsonschema errors of values (merged over the defaults) for the chart and each sub-chart with a schema."""
    import jsonschema  # pylint: disable=import-outside-toplevel
    import json  # pylint: disable=import-outside-toplevel
    errors = []
    for where, part, user in [(chart.name, chart, values)] + [
            ('%s.%s' % (chart.name, name), sub, values.get(name) or {}) for name, sub in chart.subcharts.items()]:
        if part.schema_path is None:
            continue
        with open(part.schema_path, encoding='utf-8') as handle:
            schema = json.load(handle)
        for error in jsonschema.Draft7Validator(schema).iter_errors(merged(part.defaults, user)):
            errors.append('%s: %s at %s' % (where, error.message, '.'.join(str(p) for p in error.path)))
    return errors


def helm_template(chart, values, release, namespace, extra_args=()):
    """Objects `helm template` of the pinned archive renders with values (parsed YAML documents)."""
    with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as handle:
        yaml.safe_dump(values, handle)
        values_file = handle.name
    try:
        proc = subprocess.run([helm_binary(), 'template', release, archive(chart), '--namespace', namespace,
                               '--values', values_file] + list(extra_args),
                              capture_output=True, text=True, timeout=300, check=False)
    finally:
        os.unlink(values_file)
    assert proc.returncode == 0, 'helm template %s failed: %s' % (chart, proc.stderr[-3000:])
    return [doc for doc in yaml.load_all(proc.stdout, Loader=_ManifestLoader) if doc]


class _ManifestLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """SafeLoader that reads a bare `=` (YAML 1.1's value tag, in the Prometheus Operator CRDs' enums) as text."""


_ManifestLoader.add_constructor('tag:yaml.org,2002:value', lambda loader, node: loader.construct_scalar(node))
