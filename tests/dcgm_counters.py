"""The DCGM exporter counters the gpu_operator role ships, read once for every test that needs them.

The file is the exporter's CSV format: `FIELD, Prometheus type, help`, '#' comments.
"""
import os

from helpers import REPO_ROOT  # pylint: disable=import-error

COUNTERS_FILE = os.path.join(REPO_ROOT, 'roles', 'gpu_operator', 'files', 'dcgm-metrics.csv')
DEFAULT_FIELDS_FILE = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'dcgm-exporter', 'default-fields.csv')


def dcgm_fields(text):
    """{field: Prometheus type} of a DCGM exporter counters CSV."""
    fields = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith('#'):
            field, kind = [part.strip() for part in line.split(',')[:2]]
            fields[field] = kind
    return fields


def read_fields(path):
    with open(path, encoding='utf-8') as handle:
        return dcgm_fields(handle.read())


def exported_metrics():
    """The Prometheus series the role's counters file makes the exporter publish ('label' fields are labels)."""
    return {field for field, kind in read_fields(COUNTERS_FILE).items() if kind != 'label'}
