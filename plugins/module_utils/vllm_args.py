# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read ``vllm_extra_args`` the way ``vllm serve`` (vLLM 0.33) reads its command line.

Pure: no command runs, nothing is imported from vLLM. vLLM's parser is
argparse (Python 3.12 in vLLM's image) behind FlexibleArgumentParser, which
first rewrites each ``--key`` (underscores become dashes up to the first
``.``), turns ``-O3`` into ``--optimization-level 3`` and folds dotted JSON
keys (``--compilation-config.mode 3``) into their option. argparse then
accepts unique prefixes of long options (allow_abbrev stays True), ``=``
forms, and short aliases with the value attached (``-qfp8``). The option table
is vllm_serve_flags, recorded from vLLM's source.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import json
import re

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.vllm_serve_flags import (
    SERVE_ACTIONS,
    VLLM_VERSION,
)

VARIABLE = 'vllm_extra_args'

# Options refused whatever the role renders, with the reason shown to the user.
FORBIDDEN = {
    'config': 'a config file would override the options the role renders',
    'disable_log_stats': 'it empties the vllm: metrics the autoscaler and the alerts read',
    'help': 'vllm serve would print its help and exit',
    'model': 'the role renders the model as the positional argument (set vllm_model)',
}

# Parallelism that multiplies the GPUs one vLLM instance (one pod) uses, read
# from vllm/config/parallel.py: world_size = pipeline x tensor x prefill
# context parallel, and each local data-parallel rank runs one such world.
# Decode context parallel reuses the tensor-parallel ranks (tp % dcp == 0),
# expert parallel reuses TP x DP: neither adds GPUs.
PARALLELISM_DESTS = (
    'data_parallel_size',
    'data_parallel_size_local',
    'prefill_context_parallel_size',
    'decode_context_parallel_size',
    'nnodes',
    'node_rank',
    'data_parallel_rank',
    'data_parallel_start_rank',
)
# Options that only make sense when one vLLM instance spans several nodes or
# pods; a Deployment of independent replicas cannot honour them.
MULTI_NODE_DESTS = frozenset((
    'headless', 'nnodes', 'node_rank', 'master_addr', 'master_port', 'data_parallel_rank',
    'data_parallel_start_rank', 'data_parallel_address', 'data_parallel_rpc_port',
    'data_parallel_hybrid_lb', 'data_parallel_external_lb', 'data_parallel_multi_port_external_lb',
))

_NEGATIVE_NUMBER = re.compile(r'^-\d+$|^-\d*\.\d+$')  # argparse's _negative_number_matcher
_KEY_PART = re.compile(r'(?<=--)[^.]*')  # FlexibleArgumentParser: from -- to the first '.'


def _option_table():
    table = {}
    for dest, options, negative, nargs, deprecated, _append in SERVE_ACTIONS:
        for option in options:
            table[option] = (dest, nargs, deprecated, True)
        for option in negative:
            table[option] = (dest, 0, deprecated, False)
    return table


OPTIONS = _option_table()
APPEND_DESTS = frozenset(row[0] for row in SERVE_ACTIONS if row[5])


def option_dest(option):
    """The argparse destination of an exact option string (``-tp`` -> ``tensor_parallel_size``), or None."""
    entry = OPTIONS.get(option)
    return entry[0] if entry else None


def options_of(dest):
    """Every option string that sets ``dest``, positive forms first."""
    for action_dest, options, negative, _nargs, _deprecated, _append in SERVE_ACTIONS:
        if action_dest == dest:
            return tuple(options) + tuple(negative)
    return ()


def _quote(item):
    return json.dumps(item)


def _dash_key(item):
    """FlexibleArgumentParser's rewrite of one ``--key[=value]`` item."""
    if '=' in item:
        key, value = item.split('=', 1)
        return _KEY_PART.sub(lambda match: match.group(0).replace('_', '-'), key, count=1) + '=' + value
    return _KEY_PART.sub(lambda match: match.group(0).replace('_', '-'), item, count=1)


def _resolve(word):
    """argparse's _parse_optional for one option-like word: (option, explicit value or None) or an error string."""
    if word in OPTIONS:
        return word, None
    name, sep, explicit = word.partition('=')
    if sep and name in OPTIONS:
        return name, explicit
    matches = []
    if word.startswith('--'):
        prefix, sep, explicit = word.partition('=')
        matches = [(option, explicit if sep else None) for option in OPTIONS if option.startswith(prefix)]
    elif len(word) > 1:
        # Single dash: "-qfp8" is -q with "fp8", "-dc" a prefix of -dcp.
        for option in OPTIONS:
            if option == word[:2]:
                matches.append((option, word[2:]))
            elif option.startswith(word):
                matches.append((option, None))
    if matches:
        if len(matches) > 1:
            names = sorted(option for option, _value in matches)
            shown = ', '.join(names[:5]) + (' and %d more' % (len(names) - 5) if len(names) > 5 else '')
            return 'is ambiguous in vLLM %s: it could be %s' % (VLLM_VERSION, shown)
        return matches[0]
    suggestion = difflib.get_close_matches(word.partition('=')[0], list(OPTIONS), n=1)
    hint = ' (did you mean %s?)' % suggestion[0] if suggestion else ''
    return 'is not an option of vllm serve in vLLM %s (removed or misspelt)%s' % (VLLM_VERSION, hint)


def _is_option_like(word):
    return word.startswith('-') and word != '-' and not _NEGATIVE_NUMBER.match(word)


def parse_extra_args(items, managed_flags=None, variable=VARIABLE):
    """Parse a list of ``vllm serve`` arguments.

    managed_flags: the options the role renders itself, as a list, or a dict
    mapping each option to the variable that sets it (named in the message).
    Any form of them is refused (``--max_model_len``, ``--max-model``, ``=``).

    Returns a dict:
      errors:      messages naming ``variable`` and the offending item
      warnings:    deprecated options
      options:     [{'item', 'option', 'dest', 'values'}] in order
      parallelism: {dest: int} for PARALLELISM_DESTS given
      multi_node:  options given that need one instance across several nodes
    """
    errors, warnings, parsed = [], [], []
    if items is None:
        items = []
    if not isinstance(items, (list, tuple)):
        return {'errors': ['%s must be a list of strings, one flag or value per item, got %s'
                           % (variable, type(items).__name__)],
                'warnings': [], 'options': [], 'parallelism': {}, 'multi_node': []}

    # 1. Items as strings; a flag with its value in one item is refused but
    #    read as the two items it should have been, to report more at once.
    words = []  # (word after vLLM's rewrite, original item)
    for index, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            errors.append('%s item %s is a %s; each item must be a string' % (variable, _quote(item), type(item).__name__))
            continue
        item = item if isinstance(item, str) else str(item)
        head = item.split(None, 1)[0] if item.strip() else item
        if item.startswith('-') and item != head and '=' not in head:
            pieces = item.split()
            errors.append('%s item %s holds a flag and its value in one item, which vLLM reads as one word; '
                          'write them as separate items: %s' % (variable, _quote(item), json.dumps(pieces)))
            for piece in pieces:
                words.extend(_rewrite(piece, piece))
            continue
        following = items[index + 1] if index + 1 < len(items) else None
        words.extend(_rewrite(item, item, following if isinstance(following, str) else None))

    # 2. Dotted JSON keys (--compilation-config.mode 3) take the next word,
    #    or the value after '=', and stand for their base option.
    i = 0
    tokens = []  # (kind, word, item): kind 'O' option-like, 'A' argument
    while i < len(words):
        word, item = words[i]
        name = word.split('=', 1)[0]
        if word.startswith('-') and '.' in name and not _NEGATIVE_NUMBER.match(word):
            base = name.split('.', 1)[0]
            value = None
            if '=' in word:
                value = word.split('=', 1)[1]
            elif i + 1 < len(words):
                value = words[i + 1][0]
                i += 1
            if value is None:
                errors.append('%s item %s needs a value after it' % (variable, _quote(item)))
            else:
                tokens.append(('O', base + '=' + value, item))
            i += 1
            continue
        tokens.append(('O' if _is_option_like(word) else 'A', word, item))
        i += 1

    # 3. argparse: each option takes the arguments its nargs allows.
    i = 0
    while i < len(tokens):
        kind, word, item = tokens[i]
        i += 1
        if kind == 'A':
            errors.append('%s item %s is neither a flag nor the value of the flag before it; vLLM would read it '
                          'as the model, which the role renders' % (variable, _quote(item)))
            continue
        if word == '--':
            errors.append('%s item "--" would end vLLM\'s options; remove it' % variable)
            continue
        resolved = _resolve(word)
        if isinstance(resolved, str):
            errors.append('%s item %s %s' % (variable, _quote(item), resolved))
            while i < len(tokens) and tokens[i][0] == 'A':
                i += 1  # its values, not reported again
            continue
        option, explicit = resolved
        dest, nargs, deprecated, positive = OPTIONS[option]
        values = []
        if nargs == 0:
            if explicit is not None:
                errors.append('%s item %s: %s is a switch and takes no value' % (variable, _quote(item), option))
                continue
            values = [positive]
        elif explicit is not None:
            values = [explicit]
            if isinstance(nargs, int) and nargs > 1:
                errors.append('%s item %s: %s takes %d values as separate items' % (variable, _quote(item), option, nargs))
                continue
        else:
            while i < len(tokens) and tokens[i][0] == 'A' and (
                    nargs in ('+', '*') or len(values) < (1 if nargs == '?' else nargs)):
                values.append(tokens[i][1])
                i += 1
            wanted = {'+': 1, '*': 0, '?': 0}.get(nargs, nargs)
            if len(values) < wanted:
                errors.append('%s item %s: %s needs %s after it, as the next item' % (
                    variable, _quote(item), option, 'a value' if wanted == 1 else '%d values' % wanted))
                continue
            if nargs == '?' and not values:
                values = [True]  # vLLM's const for bool | str options
        if deprecated:
            warnings.append('%s item %s: %s is deprecated in vLLM %s' % (variable, _quote(item), option, VLLM_VERSION))
        parsed.append({'item': item, 'option': option, 'dest': dest, 'values': values})

    # 4. What the role owns, what must never be passed, what is given twice.
    managed = _managed_dests(managed_flags)
    seen = {}
    parallelism, multi_node = {}, []
    for entry in parsed:
        dest, item = entry['dest'], entry['item']
        if dest in managed:
            owner = managed[dest]
            errors.append('%s item %s sets %s, which the role renders itself%s' % (
                variable, _quote(item), entry['option'], '; set %s instead' % owner if owner else ''))
        elif dest in FORBIDDEN:
            errors.append('%s item %s (%s) is refused: %s' % (variable, _quote(item), entry['option'], FORBIDDEN[dest]))
        if dest in seen and dest not in APPEND_DESTS:
            errors.append('%s item %s sets %s again (first set by %s); vLLM would keep only the last' % (
                variable, _quote(item), dest.replace('_', '-'), _quote(seen[dest])))
        seen.setdefault(dest, item)
        if dest in PARALLELISM_DESTS:
            try:
                parallelism[dest] = int(entry['values'][0])
            except (TypeError, ValueError):
                errors.append('%s item %s: %s needs a whole number, got %s' % (
                    variable, _quote(item), entry['option'], _quote(entry['values'][0])))
        if dest in MULTI_NODE_DESTS:
            multi_node.append(entry['option'])
    return {'errors': errors, 'warnings': warnings, 'options': parsed,
            'parallelism': parallelism, 'multi_node': multi_node}


def _rewrite(word, item, following=None):
    """FlexibleArgumentParser's rewrite of one word: [(word, item)].

    ``following`` is the next item: ``-O 3`` becomes --optimization-level
    only when that is 0, 1, 2 or 3.
    """
    if word.startswith('--'):
        return [(_dash_key(word), item)]
    if word.startswith('-O') and word != '-O':
        level = word[3:] if word[2:3] == '=' else word[2:]
        return [('--optimization-level', item), (level, item)]
    if word == '-O' and following in ('0', '1', '2', '3'):
        return [('--optimization-level', item)]
    return [(word, item)]


def _managed_dests(managed_flags):
    """{dest: variable or None} for the options the role renders."""
    result = {}
    if not managed_flags:
        return result
    pairs = managed_flags.items() if isinstance(managed_flags, dict) else ((flag, None) for flag in managed_flags)
    for flag, owner in pairs:
        dest = option_dest(flag)
        if dest is None:
            raise ValueError('managed flag %s is not an option of vllm serve %s' % (flag, VLLM_VERSION))
        result[dest] = owner or result.get(dest)
    return result


def gpus_per_pod(tensor_parallel_size, pipeline_parallel_size, parallelism):
    """GPUs one vLLM pod needs: pipeline x tensor x prefill context parallel x local data-parallel ranks.

    ``parallelism`` is parse_extra_args()['parallelism']. Without
    --data-parallel-size-local a single-node instance runs every
    data-parallel rank itself.
    """
    data_parallel = parallelism.get('data_parallel_size_local', parallelism.get('data_parallel_size', 1))
    return (int(tensor_parallel_size) * int(pipeline_parallel_size)
            * parallelism.get('prefill_context_parallel_size', 1) * data_parallel)
