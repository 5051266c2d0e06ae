"""A second release of a role in one play (playbooks/rollout.yml's canary): __<role>_overrides win over every other
source, extra vars included, and name only options the role has; vllm_served_model_aliases reach vLLM's arguments."""
from role_render import render  # pylint: disable=import-error

BASE = {'vllm_served_model_name': 'qwen3-8b', 'vllm_gpus_per_node': 8}


def test_overrides_win_over_extra_vars_and_the_aliases_follow_the_served_name():
    canary = {'vllm_name': 'vllm-next', 'vllm_service_name': 'vllm-next', 'vllm_served_model_name': 'qwen3-8b-next',
              'vllm_served_model_aliases': ['qwen3-8b'], 'vllm_route_kind': 'none'}
    result, (stable, second) = render('llmscale.gpu_serving.vllm', 'render',
                                      [dict(BASE), dict(BASE, __vllm_overrides=canary)], ['__vllm', '__vllm_plan'],
                                      cli_vars={'vllm_name': 'vllm-server', 'vllm_replicas': '2'})
    assert result.rc == 0, result.describe()
    assert stable['__vllm']['name'] == 'vllm-server' and second['__vllm']['name'] == 'vllm-next'
    assert second['__vllm']['replicas'] == 2  # what the overrides leave out is the stable release's
    kinds = dict((obj['kind'], obj) for obj in second['__vllm_plan']['objects'])
    assert 'HTTPRoute' not in kinds and 'HTTPRoute' in [obj['kind'] for obj in stable['__vllm_plan']['objects']]
    args = kinds['StatefulSet']['spec']['template']['spec']['containers'][0]['args']
    assert args[1:4] == ['--served-model-name', 'qwen3-8b-next', 'qwen3-8b'] and args[4] == '--host'
    assert kinds['StatefulSet']['metadata']['labels']['llmscale.io/owner'] == 'vllm.vllm-next'
    assert second['__vllm_plan']['prune'][0]['label_selector'] == 'llmscale.io/owner=vllm.vllm-next'


def test_an_override_the_role_does_not_have_fails_naming_it():
    result, _rendered = render('llmscale.gpu_serving.vllm', 'render',
                               [dict(BASE, __vllm_overrides={'vllm_nmae': 'x'})], [])
    assert result.rc != 0
    assert 'vllm_nmae' in result.stderr + ' '.join(result.failure_messages()), result.describe()
