"""playbooks/gpu_health.yml taints the Kubernetes Node of an unhealthy GPU node, and untaints it when healthy.

The node side runs on localhost with nvidia-smi, journalctl and dmesg replaced
by scripts printing recorded output (tests/fixtures); the Node is a real Node
object of the local cluster (kwok simulates its kubelet).
"""
import os

import pytest
from kubernetes import client

from helpers import VENV_BIN, run_playbook
from nvidia_smi_recorded import derive, kernel_log_stand_ins, nvidia_smi_stand_in, read_recorded

PLAYBOOK = 'playbooks/gpu_health.yml'
NODE = 'gpu-node-1'
OUR_TAINT = {'key': 'nvidia.com/gpu-health', 'value': 'unhealthy', 'effect': 'NoSchedule'}
# Someone else's taint: the role must leave it alone.
OTHER_TAINT = {'key': 'example.com/maintenance-window', 'value': 'sunday', 'effect': 'PreferNoSchedule'}


@pytest.fixture
def node_side(tmp_path):
    """Inventory (localhost as the GPU node and the k8s_api host) and nvidia-smi stand-ins."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    # A kernel log without XIDs, so the test does not depend on this machine's.
    kernel_log_stand_ins(bin_dir)
    unhealthy = derive(read_recorded('q.xml'),
                       ('<remapped_row_pending>No</remapped_row_pending>', '<remapped_row_pending>Yes</remapped_row_pending>'))
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text('''all:
  children:
    gpu_nodes:
      hosts:
        localhost:
    k8s_api:
      hosts:
        localhost:
  vars:
    ansible_connection: local
    ansible_python_interpreter: %s
    ansible_become: false
''' % os.path.join(VENV_BIN, 'python'), encoding='utf-8')
    return {
        'inventory': str(inventory),
        'healthy': nvidia_smi_stand_in(bin_dir / 'nvidia-smi-healthy', recorded='q.xml'),
        'unhealthy': nvidia_smi_stand_in(bin_dir / 'nvidia-smi-unhealthy', text=unhealthy),
        'env': {'PATH': os.pathsep.join([str(bin_dir), VENV_BIN, os.environ.get('PATH', '')])},
    }


@pytest.fixture
def core(api_client):
    return client.CoreV1Api(api_client)


def taints_of(core, name=NODE):
    return [{'key': t.key, 'value': t.value, 'effect': t.effect} for t in core.read_node(name).spec.taints or []]


@pytest.fixture
def node_with_other_taint(core):
    """gpu-node-1 carrying only someone else's taint; restored to no taints afterwards."""
    core.patch_node(NODE, {'spec': {'taints': [OTHER_TAINT]}})
    yield NODE
    core.patch_node(NODE, {'spec': {'taints': []}})


def play(node_side, kubeconfig, nvidia_smi, check=False, **extra):
    extra_vars = {'llmscale_kubeconfig': kubeconfig, 'gpu_health_taint_unhealthy': True, 'llmscale_node_name': NODE,
                  'gpu_health_nvidia_smi': node_side[nvidia_smi]}
    extra_vars.update(extra)
    return run_playbook(PLAYBOOK, inventory=node_side['inventory'], extra_vars=extra_vars, check=check, diff=check,
                        env=node_side['env'])


def test_unhealthy_node_is_tainted_and_healthy_node_untainted(node_side, kubeconfig, core, node_with_other_taint):
    # Unhealthy, failing: the taint lands before the host fails.
    result = play(node_side, kubeconfig, 'unhealthy')
    assert result.rc != 0, result.describe()
    assert any('GPU 0 remapped_rows (critical): a row remap is pending' in msg for msg in result.failure_messages()), result.describe()
    assert taints_of(core) == [OTHER_TAINT, OUR_TAINT]

    # Still unhealthy, reporting only: nothing to change.
    result = play(node_side, kubeconfig, 'unhealthy', gpu_health_fail_on_unhealthy=False)
    assert result.rc == 0, result.describe()
    assert result.changed == 0, result.describe()

    # Healthy, in check mode: the untaint is announced, not made.
    result = play(node_side, kubeconfig, 'healthy', check=True)
    assert result.rc == 0, result.describe()
    assert result.task_names(changed=True) == ['Apply the GPU health taints'], result.describe()
    assert taints_of(core) == [OTHER_TAINT, OUR_TAINT]

    # Healthy: our taint goes, the other one stays.
    result = play(node_side, kubeconfig, 'healthy')
    assert result.rc == 0, result.describe()
    assert result.changed == 1, result.describe()
    assert taints_of(core) == [OTHER_TAINT]

    result = play(node_side, kubeconfig, 'healthy')
    assert result.rc == 0, result.describe()
    assert result.changed == 0, result.describe()
    assert taints_of(core) == [OTHER_TAINT]


def test_node_missing_from_the_cluster_fails_clearly(node_side, kubeconfig):
    result = play(node_side, kubeconfig, 'unhealthy', llmscale_node_name='no-such-node')
    assert result.rc != 0
    assert any("llmscale_node_name: the cluster has no Node named 'no-such-node'" in msg
               for msg in result.failure_messages()), result.describe()
    assert result.changed == 0


@pytest.mark.parametrize('extra, variable', [
    ({'gpu_health_expected_mig_mode': 'off'}, 'gpu_health_expected_mig_mode'),
    ({'gpu_health_allowed_clocks_event_reasons': ['power_cap']}, 'gpu_health_allowed_clocks_event_reasons'),
    ({'llmscale_k8s_api_host': 'no-such-host'}, 'llmscale_k8s_api_host'),
])
def test_bad_role_input_fails_before_anything_changes(node_side, kubeconfig, core, extra, variable):
    before = taints_of(core)
    result = play(node_side, kubeconfig, 'unhealthy', **extra)
    assert result.rc != 0
    assert any(variable in msg for msg in result.failure_messages()), result.describe()
    # Neither nvidia-smi nor the API was reached: no task past validation ran.
    assert 'Check the GPUs' not in result.task_names(), result.describe()
    assert taints_of(core) == before
