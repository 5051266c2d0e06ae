"""The main job (`make site`): playbooks/site.yml with inventories/local on the local cluster.

The node plays match no hosts there (the GPU nodes are simulated); the serving
stack is applied for real and the vLLM Deployment must become Available on a
simulated GPU node with its model cache bound to that node's local volume.
"""
from kubernetes import client

from helpers import run_playbook  # pylint: disable=import-error

INVENTORY = 'inventories/local'
NAMESPACE = 'llm-serving'  # inventories/local keeps the role default


def test_site_serves_vllm_on_a_gpu_node_and_reruns_without_changes(kubeconfig, api_client):
    env = {'KUBECONFIG': kubeconfig}
    first = run_playbook('playbooks/site.yml', inventory=INVENTORY, env=env)
    assert first.rc == 0, first.describe()

    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    deployment = apps.read_namespaced_deployment('vllm-server', NAMESPACE)
    assert deployment.status.available_replicas == deployment.spec.replicas >= 1
    pods = core.list_namespaced_pod(NAMESPACE, label_selector='app.kubernetes.io/name=vllm').items
    assert pods and all(pod.spec.node_name.startswith('gpu-node-') for pod in pods)
    claim = core.read_namespaced_persistent_volume_claim('vllm-server-model-cache', NAMESPACE)
    assert claim.status.phase == 'Bound'
    volume = core.read_persistent_volume(claim.spec.volume_name)
    affinity = volume.spec.node_affinity.required.node_selector_terms[0].match_expressions[0]
    assert affinity.values == [pods[0].spec.node_name]

    second = run_playbook('playbooks/site.yml', inventory=INVENTORY, env=env)
    assert second.rc == 0, second.describe()
    assert second.changed == 0, second.changed_tasks()
