"""`-e name=value` gives every value as a string: the serving roles must convert each to its declared type before
any expression uses it (issue: `-e vllm_tensor_parallel_size=2` failed with a Jinja type error, and string
arithmetic would have asked for "22" GPUs).

For every integer, float and boolean option of the vllm, autoscaling and network_policy argument specs, the plan
rendered from `-e` strings must equal the plan rendered from typed values.
"""
import os

import pytest
import yaml

from helpers import REPO_ROOT  # pylint: disable=import-error
from role_render import render  # pylint: disable=import-error

ROLES = {'vllm': '__vllm_plan', 'autoscaling': '__autoscaling_plan', 'network_policy': '__network_policy_plan'}
# Envoy: the overload options render (into the BackendTrafficPolicy) only for an implementation that takes them.
BASE_VARS = {'vllm_served_model_name': 'qwen3-8b', 'vllm_gateway_implementation': 'envoy'}
# Values other than the defaults where a default would hide a bug (1 x 1 is 1 as text too) or is null.
CHOSEN = {
    'vllm_tensor_parallel_size': 2, 'vllm_pipeline_parallel_size': 2, 'vllm_max_model_len': 32768,
    'vllm_block_size': 32, 'vllm_gpus_per_node': 8, 'vllm_gpu_memory_utilization': 0.85, 'vllm_replicas': 2,
    'vllm_model_cache_prewarmed': True, 'vllm_prefer_spot': False, 'vllm_startup_timeout_seconds': 905,
    'autoscaling_max_replicas': 6, 'autoscaling_min_replicas': 2, 'autoscaling_prometheus_port': 9091,
    'network_policy_vllm_port': 8001, 'vllm_port': 8001, 'vllm_inference_pool_enabled': True,
    'vllm_overload_retries': 3, 'vllm_overload_max_pending_requests': 64,
}


def numeric_options(role):
    with open(os.path.join(REPO_ROOT, 'roles', role, 'meta', 'argument_specs.yml'), encoding='utf-8') as handle:
        options = yaml.safe_load(handle)['argument_specs']['main']['options']
    return {name: CHOSEN.get(name, option.get('default')) for name, option in options.items()
            if option.get('type') in ('int', 'float', 'bool')}


def as_text(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize('role', sorted(ROLES))
def test_strings_from_the_command_line_render_the_same_plan_as_typed_values(role):
    values = numeric_options(role)
    # Options without a plain default (null, or derived from another role) stay as the role computes them.
    values = {name: value for name, value in values.items()
              if value is not None and not (isinstance(value, str) and '{{' in value)}
    assert values, 'no integer, float or boolean option found for %s' % role
    typed_result, (typed,) = render(role, 'render', [dict(BASE_VARS, **values)], [ROLES[role]])
    assert typed_result.rc == 0, typed_result.describe()
    text_result, (from_text,) = render(role, 'render', [dict(BASE_VARS)], [ROLES[role]],
                                       cli_vars={name: as_text(value) for name, value in values.items()})
    assert text_result.rc == 0, text_result.describe()
    assert from_text == typed


def test_gpu_count_is_multiplied_not_concatenated():
    result, (facts,) = render('vllm', 'render', [dict(BASE_VARS)], ['__vllm_plan'],
                              cli_vars={'vllm_tensor_parallel_size': '2', 'vllm_pipeline_parallel_size': '2'})
    assert result.rc == 0, result.describe()
    (statefulset,) = [obj for obj in facts['__vllm_plan']['objects'] if obj['kind'] == 'StatefulSet']
    assert statefulset['spec']['template']['spec']['containers'][0]['resources']['limits']['nvidia.com/gpu'] == '4'


def test_a_string_that_is_no_number_is_refused_naming_the_variable():
    result, _facts = render('vllm', 'validate', [dict(BASE_VARS)], [], cli_vars={'vllm_tensor_parallel_size': 'two'})
    assert result.rc != 0
    assert 'vllm_tensor_parallel_size' in ' '.join(result.failure_messages()), result.describe()
