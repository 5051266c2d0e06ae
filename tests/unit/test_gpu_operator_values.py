"""gpu_operator: chart values and node-label preflight, rendered by real Ansible from the role's variables.

The role renders NVIDIA gpu-operator chart values in a pure task file
(tasks/values.yml) and compares node labels with its rules in another
(tasks/label_conflicts.yml); these tests run them without a cluster. What
Helm and the API server make of the result is tested against the local
cluster in tests/integration/test_gpu_operator.py.
"""
import os

import pytest
import yaml

from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error
from dcgm_counters import COUNTERS_FILE, DEFAULT_FIELDS_FILE, dcgm_fields, read_fields  # pylint: disable=import-error
from role_render import dumps, render  # pylint: disable=import-error

ROLE = 'llmscale.gpu_serving.gpu_operator'
ROLE_DIR = os.path.join(REPO_ROOT, 'roles', 'gpu_operator')

VALUE_CASES = {
    'defaults': {},
    'collection_switches': {'llmscale_gpu_operator_driver_enabled': True, 'llmscale_gpu_operator_toolkit_enabled': True},
    'operator_driver_time_slicing': {
        'gpu_operator_driver_enabled': True,
        'gpu_operator_toolkit_enabled': False,
        'gpu_operator_mig_strategy': 'mixed',
        'gpu_operator_time_slicing_replicas': 4,
        'gpu_operator_time_slicing_configmap': 'slices',
    },
    'extra_values_and_no_exporter': {
        'gpu_operator_dcgm_exporter_enabled': False,
        'gpu_operator_dcgm_exporter_metrics_file': '',
        'gpu_operator_dcgm_exporter_service_monitor_labels': {'release': 'prom'},
        'gpu_operator_extra_values': {'nfd': {'enabled': False},
                                      'dcgmExporter': {'serviceMonitor': {'interval': '30s'}},
                                      'driver': {'version': '580.95.05'}},
    },
}


@pytest.fixture(scope='module')
def rendered_values():
    names = sorted(VALUE_CASES)
    result, rendered = render(ROLE, 'values.yml', [VALUE_CASES[name] for name in names], ['__gpu_operator_values'])
    assert result.rc == 0, result.describe()
    return {name: values['__gpu_operator_values'] for name, values in zip(names, rendered)}


def test_defaults_leave_the_driver_to_the_host_and_turn_the_dcgm_service_monitor_on(rendered_values):
    values = rendered_values['defaults']
    # The host roles (nvidia_driver, nvidia_container_toolkit) own both unless
    # llmscale_gpu_operator_driver_enabled / _toolkit_enabled hand them to the operator.
    assert values['driver'] == {'enabled': False}, dumps(values)
    assert values['toolkit'] == {'enabled': False}
    # The same switches the host roles read hand both to the operator.
    switched = rendered_values['collection_switches']
    assert switched['driver'] == {'enabled': True} and switched['toolkit'] == {'enabled': True}
    assert values['mig'] == {'strategy': 'single'}
    # The operator finds each node's runtime itself since chart v25.3.0: no operator.defaultRuntime.
    assert 'operator' not in values
    assert values['dcgmExporter']['enabled'] is True
    assert values['dcgmExporter']['serviceMonitor'] == {'enabled': True, 'interval': '15s', 'additionalLabels': {}}
    # No time-slicing unless asked for.
    assert 'devicePlugin' not in values


def test_dcgm_counters_come_from_the_role_file_and_include_the_alerted_metrics(rendered_values):
    config = rendered_values['defaults']['dcgmExporter']['config']
    assert config['name'] == 'gpu-operator-dcgm-metrics' and config['create'] is True
    with open(COUNTERS_FILE, encoding='utf-8') as handle:
        assert config['data'] == handle.read().rstrip('\n')
    fields = dcgm_fields(config['data'])
    assert {'DCGM_FI_DEV_XID_ERRORS', 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', 'DCGM_FI_DEV_ROW_REMAP_FAILURE',
            'DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_FB_FREE', 'DCGM_FI_DEV_GPU_UTIL'} <= set(fields)
    assert all(field.startswith('DCGM_FI_') and kind in ('gauge', 'counter', 'label') for field, kind in fields.items())


def test_dcgm_counters_keep_every_field_of_the_exporter_default_list_with_its_type():
    # Replacing the exporter's list with ours must not lose a default field (the GPU memory
    # share needs DCGM_FI_DEV_FB_RESERVED): tests/fixtures/dcgm-exporter/README.md says where the list is from.
    defaults = read_fields(DEFAULT_FIELDS_FILE)
    ours = read_fields(COUNTERS_FILE)
    assert len(defaults) >= 20 and 'DCGM_FI_DEV_FB_RESERVED' in defaults
    missing = {field: kind for field, kind in defaults.items() if ours.get(field) != kind}
    assert not missing, 'the counters file drops or retypes default fields: %s' % missing
    assert set(ours) - set(defaults) == {'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL'}


def test_the_counters_parser_reads_fields_and_types_and_skips_comments():
    assert dcgm_fields('# c\n\nDCGM_FI_A,  gauge, x, y\nDCGM_FI_B ,counter,z\n# DCGM_FI_C, gauge, off') == {
        'DCGM_FI_A': 'gauge', 'DCGM_FI_B': 'counter'}


def test_operator_driver_mode_and_time_slicing_render_the_device_plugin_config(rendered_values):
    values = rendered_values['operator_driver_time_slicing']
    assert values['driver'] == {'enabled': True}
    assert values['toolkit'] == {'enabled': False}
    assert values['mig'] == {'strategy': 'mixed'}
    config = values['devicePlugin']['config']
    assert {key: config[key] for key in ('create', 'name', 'default')} == {'create': True, 'name': 'slices', 'default': 'any'}
    sharing = yaml.safe_load(config['data']['any'])
    assert sharing == {'version': 'v1', 'flags': {'migStrategy': 'mixed'},
                       'sharing': {'timeSlicing': {'resources': [{'name': 'nvidia.com/gpu', 'replicas': 4}]}}}


def test_extra_values_merge_recursively_and_the_exporter_can_be_turned_off(rendered_values):
    values = rendered_values['extra_values_and_no_exporter']
    assert values['nfd'] == {'enabled': False}
    assert values['driver'] == {'enabled': False, 'version': '580.95.05'}
    monitor = values['dcgmExporter']['serviceMonitor']
    # No exporter, no ServiceMonitor; the extra interval wins, the labels stay.
    assert monitor == {'enabled': False, 'interval': '30s', 'additionalLabels': {'release': 'prom'}}, dumps(values)
    assert values['dcgmExporter']['enabled'] is False
    assert 'config' not in values['dcgmExporter']


def node(name, **labels):
    """A Node as the API returns it, reduced to what the rules read."""
    return {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': name, 'labels': dict(labels)}}


DRIVER = 'nvidia.com/gpu.deploy.driver'
TOOLKIT = 'nvidia.com/gpu.deploy.container-toolkit'
NODES = [
    node('gpu-a', **{DRIVER: 'pre-installed', TOOLKIT: 'true', 'nvidia.com/gpu.present': 'true'}),
    node('gpu-b', **{DRIVER: 'true', TOOLKIT: 'false'}),
    node('gpu-c', **{DRIVER: 'false'}),
    node('cpu-a'),
]
LABEL_CASES = {
    'host_driver': {'gpu_operator_driver_enabled': False, 'gpu_operator_toolkit_enabled': False},
    'host_driver_operator_toolkit': {'gpu_operator_driver_enabled': False, 'gpu_operator_toolkit_enabled': True},
    'operator_driver': {'gpu_operator_driver_enabled': True, 'gpu_operator_toolkit_enabled': False},
}


@pytest.fixture(scope='module')
def conflicts():
    names = sorted(LABEL_CASES)
    cases = [dict(LABEL_CASES[name], __gpu_operator_nodes=NODES) for name in names]
    result, rendered = render(ROLE, 'label_conflicts.yml', cases, ['__gpu_operator_label_conflicts'])
    assert result.rc == 0, result.describe()
    return {name: sorted((c['node'], c['label'], c['value']) for c in values['__gpu_operator_label_conflicts'])
            for name, values in zip(names, rendered)}


def test_host_driver_mode_accepts_every_driver_label(conflicts):
    # The operator labels nodes "true" itself and "pre-installed" when it finds a host driver.
    assert conflicts['host_driver'] == []


def test_operator_toolkit_conflicts_with_a_node_that_excludes_the_toolkit(conflicts):
    assert conflicts['host_driver_operator_toolkit'] == [('gpu-b', TOOLKIT, 'false')]


def test_operator_driver_conflicts_only_with_a_node_that_excludes_the_driver(conflicts):
    # gpu-a's "pre-installed" is what NVIDIA's driver container writes (driver.enabled=true) on a node with
    # a host driver: a mixed cluster, seen by every re-run; only gpu-c's opt-out contradicts.
    assert conflicts['operator_driver'] == [('gpu-c', DRIVER, 'false')]


BAD_VARIABLES = [
    ({'gpu_operator_mig_strategy': 'sometimes'}, 'gpu_operator_mig_strategy'),
    ({'gpu_operator_driver_enabled': 'perhaps'}, 'gpu_operator_driver_enabled'),
    ({'gpu_operator_time_slicing_replicas': 1}, 'gpu_operator_time_slicing_replicas'),
    ({'gpu_operator_chart_path': '/nonexistent/gpu-operator.tgz'}, 'gpu_operator_chart_path'),
    ({'gpu_operator_chart_version': ''}, 'gpu_operator_chart_version'),
    ({'llmscale_chart_dir': '/nonexistent/charts'}, 'llmscale_chart_dir'),
    ({'gpu_operator_wait_timeout': 3}, 'gpu_operator_wait_timeout'),
]


@pytest.mark.parametrize('extra_vars, variable', BAD_VARIABLES, ids=[v for _e, v in BAD_VARIABLES])
def test_bad_variables_fail_before_any_cluster_call_naming_the_variable(tmp_path, extra_vars, variable):
    # No kubeconfig anywhere: reaching a Kubernetes task would fail differently.
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump([{'name': 'GPU Operator', 'hosts': 'localhost', 'gather_facts': False,
                                         'roles': [{'role': ROLE}]}]))
    result = run_playbook(str(playbook), extra_vars=extra_vars, env={'KUBECONFIG': str(tmp_path / 'none')})
    assert result.rc != 0
    messages = ' '.join(result.failure_messages())
    assert variable in messages, result.describe()
    ran = [name for name, _host, _result in result.task_results()]
    assert not any(name.startswith(('Read the nodes', 'Apply the', 'Install or upgrade')) for name in ran), ran
