"""vllm_extra_args read as `vllm serve` (vLLM 0.33.0) reads its command line.

The option table (plugins/module_utils/vllm_serve_flags.py) is checked equal
to tests/fixtures/vllm-0.33.0/serve-flags.json, which record.py extracted from
vllm/entrypoints/common/cli_args.py and vllm/engine/arg_utils.py of the
vllm-0.33.0 sdist; when that sdist is at hand (LLMSCALE_VLLM_SDIST, or
~/.cache/llmscale/vllm-0.33.0.tar.gz) the extraction is run again on it.
The argparse half of the parser is checked against Python's own argparse,
built from the same table.
"""
import argparse
import importlib.util
import json
import os

import pytest
import yaml

from ansible_collections.llmscale.gpu_serving.plugins.module_utils import vllm_args as va
from ansible_collections.llmscale.gpu_serving.plugins.module_utils import vllm_serve_flags

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'fixtures', 'vllm-0.33.0')
SDIST = os.environ.get('LLMSCALE_VLLM_SDIST', os.path.expanduser('~/.cache/llmscale/vllm-0.33.0.tar.gz'))
ROLE_VARS = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'vllm', 'vars', 'main.yml')


def role_managed_flags():
    """What roles/vllm renders itself (__vllm_managed_flags), read from the role."""
    with open(ROLE_VARS) as handle:
        return tuple(yaml.safe_load(handle)['__vllm_managed_flags'])


MANAGED = role_managed_flags()


def recorded():
    with open(os.path.join(FIXTURES, 'serve-flags.json')) as handle:
        return json.load(handle)


def as_rows(record):
    return tuple((a['dest'], tuple(a['options']), tuple(a['negative']), a['nargs'], a['deprecated'], a['append'])
                 for a in record['actions'])


def parse(*items, managed=MANAGED):
    return va.parse_extra_args(list(items), managed_flags=managed)


def only_error(*items, managed=MANAGED):
    result = parse(*items, managed=managed)
    assert len(result['errors']) == 1, result['errors']
    assert result['errors'][0].startswith('vllm_extra_args item ')
    return result['errors'][0]


# --- the table is vLLM 0.33.0's -------------------------------------------------

def test_module_table_equals_recorded_extraction():
    record = recorded()
    assert record['vllm_version'] == vllm_serve_flags.VLLM_VERSION == '0.33.0'
    assert as_rows(record) == vllm_serve_flags.SERVE_ACTIONS
    assert sorted(record['files']) == ['vllm/engine/arg_utils.py', 'vllm/entrypoints/common/cli_args.py']


@pytest.mark.skipif(not os.path.exists(SDIST), reason='vllm-0.33.0 sdist not at %s' % SDIST)
def test_recorded_extraction_matches_the_vllm_source():
    spec = importlib.util.spec_from_file_location('record_vllm', os.path.join(FIXTURES, 'record.py'))
    record_vllm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record_vllm)
    fresh = record_vllm.extract(SDIST)
    assert fresh['sdist_sha256'] == record_vllm.SDIST_SHA256
    assert fresh == recorded()


@pytest.mark.parametrize('option, dest, nargs', [
    ('--max-model-len', 'max_model_len', 1),
    ('--device-memory-utilization', 'gpu_memory_utilization', 1),  # an alias, not a flag of its own
    ('-tp', 'tensor_parallel_size', 1),
    ('-pp', 'pipeline_parallel_size', 1),
    ('-q', 'quantization', 1),
    ('-dp', 'data_parallel_size', 1),
    ('-pcp', 'prefill_context_parallel_size', 1),
    ('-dcp', 'decode_context_parallel_size', 1),
    ('--served-model-name', 'served_model_name', '+'),
    ('--enforce-eager', 'enforce_eager', 0),
    ('--no-enforce-eager', 'enforce_eager', 0),
    ('--disable-prefix-caching', 'enable_prefix_caching', 0),  # EnableDisableAction's inverse
    ('--disable-log-stats', 'disable_log_stats', 0),
    ('--hf-token', 'hf_token', '?'),  # bool | str | None: a bare flag or a value
    ('--middleware', 'middleware', 1),  # list[str] made action="append"
])
def test_known_vllm_options(option, dest, nargs):
    assert va.option_dest(option) == dest
    assert va.OPTIONS[option][1] == nargs


@pytest.mark.parametrize('gone', ['--swap-space', '--max-seq-len-to-capture',
                                  '--num-scheduler-steps', '--preemption-mode'])
def test_options_vllm_033_no_longer_has(gone):
    assert va.option_dest(gone) is None
    assert 'is not an option of vllm serve in vLLM 0.33.0' in only_error(gone)


# --- argparse's half, against argparse itself ----------------------------------

class _Switch(argparse.Action):
    def __init__(self, option_strings, dest, negative=(), **kwargs):
        self.negative = set(negative)
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, option_string not in self.negative)


class _Refused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Refused(message)


def real_argparse():
    parser = _Parser(prog='vllm serve', add_help=False)
    parser.add_argument('model_tag', nargs='?')
    for dest, options, negative, nargs, _deprecated, append in vllm_serve_flags.SERVE_ACTIONS:
        if append:
            parser.add_argument(*options, dest=dest, action='append')
        elif nargs == 0:
            parser.add_argument(*(options + negative), dest=dest, action=_Switch, negative=negative)
        else:
            parser.add_argument(*options, dest=dest, nargs=None if nargs == 1 else nargs,
                                **({'const': True} if nargs == '?' else {}))
    return parser


VALID = [
    ['--max-num-seqs', '8'],
    ['--max_num_seqs=8'],
    ['--max-num-se', '8'],                      # a unique prefix
    ['-dp', '2', '-pcp=2', '--enable-prefix-caching'],
    ['--no-enable-prefix-caching', '--kv-cache-dtype', 'fp8'],
    ['--served-model-name', 'a', 'b', '--enforce-eager'],
    ['-dc', '2'],                               # prefix of -dcp only
    ['--seed', '-1'],                           # a negative number is a value
    ['--hf-token', '--enforce-eager'],          # '?' with no value
    ['--hf-token', 'abc'],
    ['--middleware', 'a.b', '--middleware', 'c.d'],  # action="append": repeating is normal
]


@pytest.mark.parametrize('items', VALID)
def test_agrees_with_argparse_on_valid_lists(items):
    result = va.parse_extra_args(items)
    assert result['errors'] == []
    namespace = real_argparse().parse_args(['model'] + [va._dash_key(i) if i.startswith('--') else i for i in items])
    for entry in result['options']:
        expected = getattr(namespace, entry['dest'])
        values = entry['values']
        if va.OPTIONS[entry['option']][1] == 0:
            assert expected is values[0]
        elif entry['dest'] in va.APPEND_DESTS:
            assert values[0] in expected
        elif isinstance(expected, list):
            assert expected == values
        else:
            assert expected == (values[0] if values else True)  # '?' alone: vLLM's const True


@pytest.mark.parametrize('items', [
    ['--enable', 'x'],          # ambiguous prefix
    ['-d', '1'],                # ambiguous short prefix
    ['--swap-space', '4'],      # gone
    ['--max-num-seqs'],         # no value
    ['--enforce-eager=1'],      # a switch given a value
])
def test_refused_where_argparse_refuses(items):
    assert va.parse_extra_args(items)['errors']
    with pytest.raises(_Refused):
        real_argparse().parse_args(['model'] + items)


# --- FlexibleArgumentParser's rewrites and the role's rules --------------------

def test_flag_and_value_in_one_item_shows_the_two_item_form():
    message = parse('--swap-space 4')['errors'][0]
    assert message == ('vllm_extra_args item "--swap-space 4" holds a flag and its value in one item, which '
                       'vLLM reads as one word; write them as separate items: ["--swap-space", "4"]')
    errors = parse('--max-model-len 10')['errors']
    assert '["--max-model-len", "10"]' in errors[0]
    assert 'sets --max-model-len, which the role renders itself' in errors[1]


def test_value_with_spaces_after_equals_is_one_item():
    result = parse('--default-chat-template-kwargs={"enable_thinking": false}')
    assert result['errors'] == []
    assert result['options'][0]['values'] == ['{"enable_thinking": false}']


@pytest.mark.parametrize('items, option', [
    (['--max_model_len=10'], '--max-model-len'),
    (['--max-model-len', '10'], '--max-model-len'),
    (['--max-model', '10'], '--max-model-len'),         # prefix
    (['--device-memory-utilization', '0.5'], '--device-memory-utilization'),
    (['--gpu_memory_utilization=0.5'], '--gpu-memory-utilization'),
    (['-tp', '2'], '-tp'),
    (['-tp=2'], '-tp'),
    (['--tensor-parallel', '2'], '--tensor-parallel-size'),
    (['-qfp8'], '-q'),
    (['--model', 'x'], '--model'),
    (['--served-model-name', 'a'], '--served-model-name'),
])
def test_managed_flags_refused_in_every_form(items, option):
    assert 'sets %s, which the role renders itself' % option in only_error(*items)


def test_managed_flags_as_a_mapping_name_the_variable():
    message = only_error('--max_model_len=10', managed={'--max-model-len': 'vllm_max_model_len'})
    assert message.endswith('set vllm_max_model_len instead')


def test_the_role_renders_only_real_options():
    unknown = [flag for flag in MANAGED if va.option_dest(flag) is None]
    assert unknown == []


def test_unknown_managed_flag_is_a_programming_error():
    with pytest.raises(ValueError):
        parse('--seed', '1', managed=['--swap-space'])


@pytest.mark.parametrize('items, reason', [
    (['--config', 'x.yaml'], 'a config file would override'),
    (['--config=x.yaml'], 'a config file would override'),
    (['--disable-log-stats'], 'empties the vllm: metrics'),
    (['--disable_log_stats'], 'empties the vllm: metrics'),
    (['--disable-log-st'], 'empties the vllm: metrics'),
    (['--help'], 'print its help'),
])
def test_forbidden_options(items, reason):
    assert reason in only_error(*items, managed=[])


def test_optimization_level_and_dotted_json_keys():
    result = parse('-O3', '--compilation_config.mode=3', '--speculative-config.num_speculative_tokens', '2')
    assert result['errors'] == []
    assert [(o['dest'], o['values']) for o in result['options']] == [
        ('optimization_level', ['3']), ('compilation_config', ['3']), ('speculative_config', ['2'])]


def test_bare_dash_o_takes_only_a_level():
    assert parse('-O', '3')['options'][0]['dest'] == 'optimization_level'
    assert 'is not an option' in parse('-O', '4')['errors'][0]


def test_stray_value_and_double_dash():
    assert 'neither a flag nor the value' in only_error('--enforce-eager', 'foo')
    assert 'would end vLLM' in only_error('--')


def test_given_twice():
    assert 'again' in only_error('--max-num-seqs', '8', '--max_num_seqs=16')


def test_non_string_items():
    assert parse('--max-num-seqs', 8)['errors'] == []
    assert 'is a dict; each item must be a string' in parse('--seed', {'a': 1})['errors'][0]
    assert 'must be a list' in va.parse_extra_args('--seed 1')['errors'][0]


def test_parallelism_and_gpus_per_pod():
    result = parse('-dp', '2', '--prefill-context-parallel-size=2', '-dcp', '2')
    assert result['errors'] == []
    assert result['parallelism'] == {'data_parallel_size': 2, 'prefill_context_parallel_size': 2,
                                     'decode_context_parallel_size': 2}
    # tp 2 x pp 1 x pcp 2 x dp 2; dcp reuses the tensor-parallel ranks.
    assert va.gpus_per_pod(2, 1, result['parallelism']) == 8
    assert va.gpus_per_pod(2, 1, parse('-dp', '4', '-dpl', '2')['parallelism']) == 4
    assert va.gpus_per_pod(4, 2, {}) == 8
    assert 'needs a whole number' in only_error('-dp', 'two')


def test_multi_node_options_reported():
    assert parse('--nnodes', '2', '--headless')['multi_node'] == ['--nnodes', '--headless']


def test_deprecated_options_warn():
    result = parse('--mamba-cache-mode', 'all')
    assert result['errors'] == []
    assert result['warnings'] == ['vllm_extra_args item "--mamba-cache-mode": --mamba-cache-mode is deprecated in '
                                  'vLLM 0.33.0']
