"""The model_cache module's option checks (module_utils/model_cache_run.py), pure."""
import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache import ModelCacheError
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.model_cache_run import (
    argument_spec,
    check_params,
    chosen_layout,
    run,
)


def params(**changes):
    """The module's defaults (as AnsibleModule fills them in), with changes."""
    values = dict((name, spec.get('default')) for name, spec in argument_spec().items())
    values.update(repo_id='org/name', dest='/nonexistent/cache')
    values.update(changes)
    return values


@pytest.mark.parametrize('source, layout, expected', [
    ('hf', None, 'hub_cache'),
    ('url', None, 'local_dir'),
    ('hf', 'local_dir', 'local_dir'),
])
def test_layout_defaults_to_the_sources_own(source, layout, expected):
    assert chosen_layout(params(source=source, layout=layout)) == expected


def test_defaults_are_usable():
    assert check_params(params()) == []


def test_url_files_cannot_be_laid_out_as_a_hub_cache():
    assert check_params(params(source='url', layout='hub_cache')) == [
        'layout=hub_cache needs source=hf: URL files have no hub revision to lay out']


@pytest.mark.parametrize('change', [{'workers': 0}, {'timeout': 0}, {'retries': -1}, {'reserve_bytes': -1}])
def test_counts_out_of_range_are_refused(change):
    assert check_params(params(**change)) == [
        'workers and timeout must be at least 1, retries and reserve_bytes at least 0']


def test_run_refuses_bad_options_before_any_request():
    # The endpoint is unroutable: reaching the network would fail differently.
    with pytest.raises(ModelCacheError, match='workers and timeout'):
        run(params(workers=0, endpoint='http://192.0.2.1:9'), check_mode=True)
