"""Fixtures of recorded nvidia-smi output (see nvidia_smi_recorded.py)."""
import pytest

from nvidia_smi_recorded import read_recorded


@pytest.fixture
def idle_xml():
    """nvidia-smi -q -x of an idle H200 (driver 580.159.04)."""
    return read_recorded('q.xml')


@pytest.fixture
def busy_xml():
    """nvidia-smi -q -x of the same H200 at 100 % load, clocks held by the software power cap."""
    return read_recorded('q-under-load.xml')
