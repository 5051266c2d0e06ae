"""gpu_operator against the local cluster with the real GPU Operator v26.7.0 chart.

The role installs the real archive from a llmscale_chart_dir made as `make charts` makes
one (archives + SHA256SUMS, tests/real_charts.py), with the pinned helm, on a real
kube-apiserver with KWOK GPU nodes. KWOK nodes run no containers and no image registry is
reachable, so the operator itself never runs: nothing ever reports the ClusterPolicy ready,
so the role's readiness waits (Helm's and the ClusterPolicy's) are switched off here. What
this proves: the chart renders with our values, the API server admits every object it
renders (the ClusterPolicy validated against the real CRD schema), the CRDs are
established, and the ClusterPolicy says what the variables asked. The operator's pods
running and DCGM reading GPUs only a real GPU cluster shows.
"""
import json
import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_helpers import delete_if_present, poll  # pylint: disable=import-error
from dcgm_counters import COUNTERS_FILE  # pylint: disable=import-error
from helm_binary import env_with_helm, helm, helm_bin_dir  # pylint: disable=import-error
from helpers import run_playbook  # pylint: disable=import-error
from real_charts import copy_with_digests, helm_template, pinned_version  # pylint: disable=import-error

POLICY = 'cluster-policy'
DRIVER_LABEL = 'nvidia.com/gpu.deploy.driver'
RELEASE = 'gpu-operator-test'

PLAYBOOK = [{'name': 'GPU Operator', 'hosts': 'localhost', 'gather_facts': False,
             'roles': [{'role': 'llmscale.gpu_serving.gpu_operator'}]}]


def chart_crd_names():
    """Every CRD the real chart (with its NFD sub-chart) brings."""
    objects = helm_template('gpu-operator', {}, RELEASE, 'gpu-operator', extra_args=['--include-crds'])
    return sorted(o['metadata']['name'] for o in objects if o['kind'] == 'CustomResourceDefinition')


@pytest.fixture(scope='module')
def setup(kubeconfig, api_client, tmp_path_factory):
    """Playbook, variables and clean-up shared by the tests of this module."""
    base = tmp_path_factory.mktemp('gpu_operator')
    chart_dir = copy_with_digests(str(base / 'charts'), charts=['gpu-operator'])
    helm_dir = helm_bin_dir()
    playbook = base / 'play.yml'
    playbook.write_text(yaml.safe_dump(PLAYBOOK))
    namespace = 'gpu-op-' + uuid.uuid4().hex[:6]
    extensions = client.ApiextensionsV1Api(api_client)
    crds = chart_crd_names()
    crds_before = {crd.metadata.name for crd in extensions.list_custom_resource_definition().items}
    base_vars = {
        'llmscale_kubeconfig': kubeconfig,
        'llmscale_helm_binary': helm_dir + '/helm',
        'llmscale_chart_dir': chart_dir,
        'gpu_operator_namespace': namespace,
        'gpu_operator_release_name': RELEASE,
        'gpu_operator_time_slicing_replicas': 4,
        # Nothing runs the operator on KWOK nodes: no readiness to wait for (see the module docstring).
        'gpu_operator_wait_for_ready': False,
    }
    yield {'playbook': str(playbook), 'vars': base_vars, 'namespace': namespace, 'env': env_with_helm(helm_dir, kubeconfig),
           'helm_dir': helm_dir, 'kubeconfig': kubeconfig, 'api': api_client, 'crds': crds}
    helm(helm_dir, kubeconfig, 'uninstall', RELEASE, '--namespace', namespace, '--wait')
    delete_if_present(client.CoreV1Api(api_client).delete_namespace, namespace)
    for name in set(crds) - crds_before:
        delete_if_present(extensions.delete_custom_resource_definition, name)


def run(setup, check=False, diff=False, **overrides):
    return run_playbook(setup['playbook'], extra_vars=dict(setup['vars'], **overrides), check=check, diff=diff,
                        env=setup['env'])


def namespace_exists(setup):
    core = client.CoreV1Api(setup['api'])
    return any(ns.metadata.name == setup['namespace'] for ns in core.list_namespace().items)


def release_exists(setup):
    return helm(setup['helm_dir'], setup['kubeconfig'], 'status', RELEASE, '--namespace', setup['namespace']).returncode == 0


def cluster_policy(setup):
    return client.CustomObjectsApi(setup['api']).get_cluster_custom_object('nvidia.com', 'v1', 'clusterpolicies', POLICY)


def label_node(setup, name, labels):
    client.CoreV1Api(setup['api']).patch_node(name, {'metadata': {'labels': labels}})


def test_check_mode_first_reports_changes_and_creates_nothing(setup):
    result = run(setup, check=True, diff=True)
    assert result.rc == 0, result.describe()
    changed = result.task_names(changed=True)
    assert 'Apply the GPU Operator namespace' in changed, changed
    assert 'Install or upgrade the Helm release %s' % RELEASE in changed, changed
    assert not namespace_exists(setup)
    assert not release_exists(setup)


def test_preflight_fails_on_a_node_that_opts_out_of_the_driver_the_operator_should_manage(setup):
    node = 'gpu-node-0'
    original = client.CoreV1Api(setup['api']).read_node(node).metadata.labels.get(DRIVER_LABEL)
    label_node(setup, node, {DRIVER_LABEL: 'false'})
    try:
        result = run(setup, gpu_operator_driver_enabled=True)
        assert result.rc != 0
        message = ' '.join(result.failure_messages())
        assert node in message and DRIVER_LABEL + '=false' in message and 'gpu_operator_driver_enabled' in message, \
            result.describe()
        assert not namespace_exists(setup) and not release_exists(setup), 'the preflight must fail before applying'
    finally:
        label_node(setup, node, {DRIVER_LABEL: original})


def test_preflight_accepts_a_re_run_of_a_cluster_where_only_some_nodes_have_a_host_driver(setup):
    # With driver.enabled=true NVIDIA's driver container writes "pre-installed" on a node where it finds a
    # host driver and "true" stays on the others: what every re-run of such a cluster sees.
    core = client.CoreV1Api(setup['api'])
    originals = {node: core.read_node(node).metadata.labels.get(DRIVER_LABEL) for node in ('gpu-node-0', 'gpu-node-1')}
    label_node(setup, 'gpu-node-0', {DRIVER_LABEL: 'pre-installed'})
    label_node(setup, 'gpu-node-1', {DRIVER_LABEL: 'true'})
    try:
        result = run(setup, check=True, gpu_operator_driver_enabled=True)
        assert result.rc == 0, result.describe()
        (preflight,) = result.results_of('Fail on node labels that contradict the driver mode')
        assert not preflight.get('skipped') and not preflight.get('failed'), preflight
    finally:
        for node, value in originals.items():
            label_node(setup, node, {DRIVER_LABEL: value})


def test_install_of_the_real_chart_establishes_its_crds_and_the_cluster_policy_says_what_we_asked(setup):
    result = run(setup)
    assert result.rc == 0, result.describe()
    extensions = client.ApiextensionsV1Api(setup['api'])
    assert 'clusterpolicies.nvidia.com' in setup['crds'] and len(setup['crds']) >= 3, setup['crds']
    for name in setup['crds']:
        poll(lambda name=name: any(c.type == 'Established' and c.status == 'True'
                                   for c in extensions.read_custom_resource_definition(name).status.conditions or []),
             120, what='CRD %s established' % name)

    spec = cluster_policy(setup)['spec']
    # Defaults: the host roles own the driver and the toolkit (llmscale_gpu_operator_*_enabled unset).
    assert spec['driver']['enabled'] is False and spec['toolkit']['enabled'] is False
    assert spec['mig'] == {'strategy': 'single'}
    assert 'defaultRuntime' not in spec['operator']
    assert spec['dcgmExporter']['enabled'] is True
    assert spec['dcgmExporter']['config'] == {'name': 'gpu-operator-dcgm-metrics'}
    assert spec['dcgmExporter']['serviceMonitor']['enabled'] is True
    assert spec['dcgmExporter']['serviceMonitor']['interval'] == '15s'
    assert spec['devicePlugin']['config'] == {'name': 'gpu-operator-time-slicing', 'default': 'any'}

    core = client.CoreV1Api(setup['api'])
    slicing = yaml.safe_load(core.read_namespaced_config_map('gpu-operator-time-slicing', setup['namespace']).data['any'])
    assert slicing['flags'] == {'migStrategy': 'single'}
    assert slicing['sharing']['timeSlicing']['resources'] == [{'name': 'nvidia.com/gpu', 'replicas': 4}]
    counters = core.read_namespaced_config_map('gpu-operator-dcgm-metrics', setup['namespace']).data['dcgm-metrics.csv']
    with open(COUNTERS_FILE, encoding='utf-8') as handle:
        assert counters.strip() == handle.read().strip()
    namespace = core.read_namespace(setup['namespace'])
    assert namespace.metadata.labels['pod-security.kubernetes.io/enforce'] == 'privileged'
    managers = {entry.manager for entry in namespace.metadata.managed_fields}
    assert 'llmscale.gpu_serving' in managers, managers
    values = json.loads(helm(setup['helm_dir'], setup['kubeconfig'], 'get', 'values', RELEASE,
                             '--namespace', setup['namespace'], '--output', 'json').stdout)
    assert values['driver'] == {'enabled': False} and 'operator' not in values


def test_the_real_crd_schema_refuses_a_cluster_policy_it_does_not_allow(setup):
    # Admission above means something: the same CRD rejects a MIG strategy outside its enum.
    api = client.CustomObjectsApi(setup['api'])
    with pytest.raises(ApiException) as refused:
        api.patch_cluster_custom_object('nvidia.com', 'v1', 'clusterpolicies', POLICY,
                                        {'spec': {'mig': {'strategy': 'sometimes'}}}, dry_run='All')
    assert refused.value.status == 422, refused.value.body
    assert 'strategy' in refused.value.body


def test_second_run_changes_nothing(setup):
    result = run(setup)
    assert result.rc == 0, result.describe()
    assert result.changed == 0, result.changed_tasks()


def test_check_mode_reports_a_change_without_making_it(setup):
    result = run(setup, check=True, diff=True)
    assert result.rc == 0 and result.changed == 0, result.describe()
    result = run(setup, check=True, diff=True, gpu_operator_time_slicing_replicas=8)
    assert result.rc == 0, result.describe()
    assert 'Install or upgrade the Helm release %s' % RELEASE in result.task_names(changed=True)
    data = client.CoreV1Api(setup['api']).read_namespaced_config_map('gpu-operator-time-slicing', setup['namespace']).data
    assert yaml.safe_load(data['any'])['sharing']['timeSlicing']['resources'][0]['replicas'] == 4


def test_a_tampered_archive_in_the_chart_dir_is_refused_and_nothing_changes(setup, tmp_path):
    chart_dir = copy_with_digests(str(tmp_path / 'charts'), charts=['gpu-operator'])
    archive = '%s/gpu-operator-%s.tgz' % (chart_dir, pinned_version('gpu-operator'))
    with open(archive, 'ab') as handle:
        handle.write(b'\0')
    result = run(setup, llmscale_chart_dir=chart_dir, gpu_operator_time_slicing_replicas=8)
    assert result.rc != 0
    assert 'refusing' in ' '.join(result.failure_messages()), result.describe()
    assert result.changed == 0, result.changed_tasks()
    assert cluster_policy(setup)['spec']['devicePlugin']['config']['name'] == 'gpu-operator-time-slicing'
