"""The reader of cyclonus's query-traffic output, on output recorded from cyclonus v0.5.6.

tests/fixtures/cyclonus/query-traffic-v0.5.6.txt is what `cyclonus analyze --mode query-traffic` printed for the
policies and connections next to it (the network_policy role's default policies).
"""
import json
import os

import pytest

from cyclonus import parse_query_traffic  # pylint: disable=import-error
from helpers import REPO_ROOT  # pylint: disable=import-error

RECORDED = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'cyclonus', 'query-traffic-v0.5.6')


def _recorded():
    with open(RECORDED + '.txt', encoding='utf-8') as handle:
        return handle.read()


def test_one_verdict_per_connection_in_order():
    with open(RECORDED + '.traffic.json', encoding='utf-8') as handle:
        connections = json.load(handle)
    verdicts = parse_query_traffic(_recorded())
    assert len(verdicts) == len(connections)
    # gateway -> vLLM, other namespace -> vLLM, vLLM -> DNS, vLLM -> metadata 80 and 443, vLLM -> internet 443.
    assert verdicts == [True, False, True, False, False, True]


def test_a_cut_output_is_an_error_not_a_shorter_matrix():
    output = _recorded()
    cut = output[:output.rindex('IS ALLOWED?')]
    with pytest.raises(ValueError, match='6 connections but 5 verdicts'):
        parse_query_traffic(cut)
