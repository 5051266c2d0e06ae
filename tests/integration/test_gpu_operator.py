"""gpu_operator against the local cluster: real kube-apiserver, real helm, kwok GPU nodes.

No Helm repository is reachable here, so the role installs the test chart
tests/charts/gpu-operator-test (same values as NVIDIA's chart; a reduced
ClusterPolicy CRD; no operator). The tests play the operator's part by
setting the ClusterPolicy status through the API, which is what the role's
readiness wait reads.
"""
import json
import os
import subprocess
import threading
import time
import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_helpers import delete_if_present, poll  # pylint: disable=import-error
from helm_binary import env_with_helm, helm, helm_bin_dir  # pylint: disable=import-error
from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error

CHART_DIR = os.path.join(REPO_ROOT, 'tests', 'charts', 'gpu-operator-test')
CRD_NAME = 'clusterpolicies.nvidia.com'
POLICY = 'cluster-policy'
DRIVER_LABEL = 'nvidia.com/gpu.deploy.driver'

PLAYBOOK = [{
    'name': 'GPU Operator',
    'hosts': 'localhost',
    'gather_facts': False,
    'module_defaults': {
        'group/kubernetes.core.k8s': {'kubeconfig': '{{ llmscale_kubeconfig | default(omit) }}'},
        'group/kubernetes.core.helm': {'kubeconfig': '{{ llmscale_kubeconfig | default(omit) }}'},
    },
    'roles': [{'role': 'llmscale.gpu_serving.gpu_operator'}],
}]


@pytest.fixture(scope='module')
def helm_dir():
    return helm_bin_dir()


@pytest.fixture(scope='module')
def setup(kubeconfig, api_client, helm_dir, tmp_path_factory):
    """Playbook, variables and clean-up shared by the tests of this module."""
    playbook = tmp_path_factory.mktemp('gpu_operator') / 'play.yml'
    playbook.write_text(yaml.safe_dump(PLAYBOOK))
    namespace = 'gpu-op-' + uuid.uuid4().hex[:6]
    extensions = client.ApiextensionsV1Api(api_client)
    crd_existed = bool(extensions.list_custom_resource_definition(field_selector='metadata.name=' + CRD_NAME).items)
    base_vars = {
        'llmscale_kubeconfig': kubeconfig,
        'gpu_operator_chart_source': 'local',
        'gpu_operator_chart_path': CHART_DIR,
        'gpu_operator_namespace': namespace,
        'gpu_operator_release_name': 'gpu-operator-test',
        'gpu_operator_time_slicing_replicas': 4,
        'gpu_operator_wait_timeout': 120,
    }
    yield {'playbook': str(playbook), 'vars': base_vars, 'namespace': namespace, 'env': env_with_helm(helm_dir, kubeconfig),
           'helm_dir': helm_dir, 'kubeconfig': kubeconfig, 'api': api_client}
    helm(helm_dir, kubeconfig, 'uninstall', 'gpu-operator-test', '--namespace', namespace, '--wait')
    delete_if_present(client.CoreV1Api(api_client).delete_namespace, namespace)
    if not crd_existed:
        delete_if_present(extensions.delete_custom_resource_definition, CRD_NAME)


def run(setup, check=False, diff=False, **overrides):
    return run_playbook(setup['playbook'], extra_vars=dict(setup['vars'], **overrides), check=check, diff=diff,
                        env=setup['env'])


def namespace_exists(setup):
    core = client.CoreV1Api(setup['api'])
    return any(ns.metadata.name == setup['namespace'] for ns in core.list_namespace().items)


def release_exists(setup):
    proc = helm(setup['helm_dir'], setup['kubeconfig'], 'status', 'gpu-operator-test', '--namespace', setup['namespace'])
    return proc.returncode == 0


def cluster_policy(setup):
    try:
        return client.CustomObjectsApi(setup['api']).get_cluster_custom_object('nvidia.com', 'v1', 'clusterpolicies', POLICY)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def set_policy_state(setup, state):
    client.CustomObjectsApi(setup['api']).patch_cluster_custom_object_status(
        'nvidia.com', 'v1', 'clusterpolicies', POLICY, {'status': {'state': state, 'namespace': setup['namespace']}})


def label_node(setup, name, labels):
    client.CoreV1Api(setup['api']).patch_node(name, {'metadata': {'labels': labels}})


def test_check_mode_first_reports_changes_and_creates_nothing(setup):
    result = run(setup, check=True, diff=True)
    assert result.rc == 0, result.describe()
    changed = result.task_names(changed=True)
    assert 'Create the GPU Operator namespace' in changed and 'Install or upgrade the GPU Operator chart' in changed
    assert not namespace_exists(setup)
    assert not release_exists(setup)


def test_preflight_fails_on_a_node_label_that_contradicts_the_driver_mode(setup):
    node = 'gpu-node-0'
    original = client.CoreV1Api(setup['api']).read_node(node).metadata.labels.get(DRIVER_LABEL)
    label_node(setup, node, {DRIVER_LABEL: 'pre-installed'})
    try:
        result = run(setup, gpu_operator_driver_enabled=True)
        assert result.rc != 0
        message = ' '.join(result.failure_messages())
        assert node in message and DRIVER_LABEL + '=pre-installed' in message and 'gpu_operator_driver_enabled' in message, \
            result.describe()
        assert not namespace_exists(setup) and not release_exists(setup), 'the preflight must fail before applying'
        # The same label is what the operator sets when the host role installed the driver: no conflict.
        result = run(setup, check=True, gpu_operator_driver_enabled=False)
        assert result.rc == 0, result.describe()
    finally:
        label_node(setup, node, {DRIVER_LABEL: original})
    assert client.CoreV1Api(setup['api']).read_node(node).metadata.labels.get(DRIVER_LABEL) == original


def test_install_waits_for_the_cluster_policy_to_be_ready(setup):
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=run(setup)))
    worker.start()
    try:
        # Play the operator: once Helm created the ClusterPolicy, watch the role wait, then report ready.
        poll(lambda: cluster_policy(setup), 300, what='the ClusterPolicy from the chart')
        time.sleep(8)
        assert worker.is_alive(), 'the role finished before the ClusterPolicy was ready: %s' % outcome['result'].describe()
        set_policy_state(setup, 'ready')
    finally:
        worker.join(600)
    result = outcome['result']
    assert result.rc == 0, result.describe()
    polls = result.results_of('Poll the ClusterPolicy state')
    assert polls and polls[0].get('attempts', 1) >= 2, polls

    policy = cluster_policy(setup)
    spec = policy['spec']
    # Defaults: the host roles own the driver and the toolkit (llmscale_gpu_operator_*_enabled unset).
    assert spec['driver'] == {'enabled': False} and spec['toolkit'] == {'enabled': False}
    assert spec['mig'] == {'strategy': 'single'} and spec['operator'] == {'defaultRuntime': 'containerd'}
    assert spec['dcgmExporter']['serviceMonitor']['enabled'] is True
    assert spec['devicePlugin']['config'] == {'name': 'gpu-operator-time-slicing', 'default': 'any'}
    core = client.CoreV1Api(setup['api'])
    slicing = yaml.safe_load(core.read_namespaced_config_map('gpu-operator-time-slicing', setup['namespace']).data['any'])
    assert slicing['sharing']['timeSlicing']['resources'] == [{'name': 'nvidia.com/gpu', 'replicas': 4}]
    counters = core.read_namespaced_config_map('gpu-operator-dcgm-metrics', setup['namespace']).data['dcgm-metrics.csv']
    assert 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter' in counters
    namespace = core.read_namespace(setup['namespace'])
    assert namespace.metadata.labels['pod-security.kubernetes.io/enforce'] == 'privileged'
    # Helm holds exactly the values the role rendered (what upgrades compare against).
    values = json.loads(helm(setup['helm_dir'], setup['kubeconfig'], 'get', 'values', 'gpu-operator-test',
                             '--namespace', setup['namespace'], '--output', 'json').stdout)
    assert values['driver'] == {'enabled': False} and values['devicePlugin']['config']['create'] is True


def test_second_run_changes_nothing(setup):
    result = run(setup)
    assert result.rc == 0, result.describe()
    assert result.changed == 0, result.changed_tasks()


def test_check_mode_reports_a_change_without_making_it(setup):
    result = run(setup, check=True, diff=True)
    assert result.rc == 0 and result.changed == 0, result.describe()
    result = run(setup, check=True, diff=True, gpu_operator_time_slicing_replicas=8)
    assert result.rc == 0, result.describe()
    assert 'Install or upgrade the GPU Operator chart' in result.task_names(changed=True)
    data = client.CoreV1Api(setup['api']).read_namespaced_config_map('gpu-operator-time-slicing', setup['namespace']).data
    assert yaml.safe_load(data['any'])['sharing']['timeSlicing']['resources'][0]['replicas'] == 4


def test_a_policy_that_is_not_ready_fails_the_wait_naming_the_timeout(setup, tmp_path):
    # Same chart as a .tgz (the air-gapped form); the release is unchanged, so only the wait runs.
    package = subprocess.run([os.path.join(setup['helm_dir'], 'helm'), 'package', CHART_DIR, '--destination', str(tmp_path)],
                             capture_output=True, text=True, timeout=120, check=True)
    tarball = package.stdout.strip().rsplit(' ', 1)[-1]
    assert tarball.endswith('.tgz') and os.path.exists(tarball), package.stdout
    set_policy_state(setup, 'notReady')
    try:
        started = time.monotonic()
        result = run(setup, gpu_operator_chart_path=tarball, gpu_operator_wait_timeout=10)
        assert result.rc != 0
        message = ' '.join(result.failure_messages())
        assert 'gpu_operator_wait_timeout=10s' in message and 'notReady' in message, result.describe()
        assert time.monotonic() - started < 120
        assert result.changed == 0, result.changed_tasks()
    finally:
        set_policy_state(setup, 'ready')
