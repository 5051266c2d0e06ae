"""Prefixed variables no argument spec declares, against the roles' real meta/argument_specs.yml."""
import os

import pytest
import yaml

from ansible_collections.llmscale.gpu_serving.plugins.module_utils import unknown_variables as uv

ROLES = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles')


@pytest.fixture(scope='module')
def declared():
    specs = {}
    for role in sorted(os.listdir(ROLES)):
        path = os.path.join(ROLES, role, 'meta', 'argument_specs.yml')
        if os.path.exists(path):
            with open(path) as handle:
                specs[role] = yaml.safe_load(handle)
    return uv.declared_options(specs)


def test_specs_declare_the_variables_used_here(declared):
    assert 'vllm_tensor_parallel_size' in declared['vllm']
    assert any(name.startswith('nvidia_driver_') for name in declared['nvidia_driver'])
    assert any(name.startswith('llmscale_') for name in declared['_common'])


def test_typo_is_found_with_a_suggestion(declared):
    names = ['vllm_tensor_paralel_size', 'vllm_tensor_parallel_size', 'ansible_host', 'inventory_hostname']
    assert uv.unknown_variables(declared, names) == [('vllm_tensor_paralel_size', 'vllm_tensor_parallel_size')]
    message, = uv.unknown_variable_errors(declared, names, opt_out='llmscale_allowed_variables')
    assert message == ('vllm_tensor_paralel_size is not a variable of any llmscale.gpu_serving role; did you mean '
                       'vllm_tensor_parallel_size? (a site variable of its own goes in llmscale_allowed_variables)')


def test_every_declared_name_is_known(declared):
    every = [name for names in declared.values() for name in names]
    assert uv.unknown_variables(declared, every) == []


def test_names_without_a_role_prefix_are_left_alone(declared):
    assert uv.unknown_variables(declared, ['gpu_count', 'nvidia_site_mirror', 'vlm_model', 'my_vllm_x',
                                           '__vllm_labels', 'http_proxy']) == []


def test_shared_stem_typo_is_found(declared):
    meant = sorted(name for name in declared['nvidia_driver'])[0]
    typo = meant.replace('nvidia_driver_', 'nvidia_drvier_')
    assert uv.unknown_variables(declared, [typo]) == [(typo, meant)]


@pytest.mark.parametrize('name, prefix', [
    ('nvidia_driver_x', 'nvidia_driver_'), ('nvidia_container_toolkit_x', 'nvidia_container_toolkit_'),
    ('gpu_health_x', 'gpu_health_'), ('gpu_operator_x', 'gpu_operator_'), ('network_policy_x', 'network_policy_'),
    ('llmscale_x', 'llmscale_'), ('nvidia_x', None), ('vllm', None),
])
def test_role_prefix(name, prefix):
    assert uv.role_prefix(name) == prefix


def test_suggestion_stays_within_the_role_first(declared):
    # gpu_operator_ and gpu_health_ share a stem: a gpu_health_ typo is matched among gpu_health_ names.
    health = sorted(declared['gpu_health'])[0]
    typo = health[:-1] + ('x' if health[-1] != 'x' else 'y')
    name, suggestion = uv.unknown_variables(declared, [typo])[0]
    assert name == typo and suggestion.startswith('gpu_health_')


def test_opt_out_by_name_and_pattern(declared):
    names = ['vllm_site_owner', 'vllm_site_team', 'monitoring_our_extra']
    assert uv.unknown_variables(declared, names, allowed=['vllm_site_*', 'monitoring_our_extra']) == []
    assert [n for n, _s in uv.unknown_variables(declared, names, allowed=['vllm_site_owner'])] == [
        'monitoring_our_extra', 'vllm_site_team']


def test_unrelated_name_gets_no_suggestion(declared):
    assert uv.unknown_variables(declared, ['autoscaling_zzzzzzzzzzzzzzzzzzzzzzz']) == [
        ('autoscaling_zzzzzzzzzzzzzzzzzzzzzzz', None)]
