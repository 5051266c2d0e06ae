"""The main job (`make site`): playbooks/site.yml with inventories/local on the local cluster.

The node plays match no hosts there (the GPU nodes are simulated); the serving
stack is applied for real and the vLLM StatefulSet must roll out on a simulated
GPU node with its replica's model cache bound to a local volume of that node.
"""
from kubernetes import client

from helpers import run_playbook  # pylint: disable=import-error

INVENTORY = 'inventories/local'
NAMESPACE = 'llm-serving'  # inventories/local keeps the role default


def test_site_serves_vllm_on_a_gpu_node_and_reruns_without_changes(kubeconfig, api_client, gateway_api_crds):  # pylint: disable=unused-argument
    env = {'KUBECONFIG': kubeconfig}
    first = run_playbook('playbooks/site.yml', inventory=INVENTORY, env=env)
    assert first.rc == 0, first.describe()

    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    statefulset = apps.read_namespaced_stateful_set('vllm-server', NAMESPACE)
    assert statefulset.status.ready_replicas == statefulset.spec.replicas >= 1
    pods = core.list_namespaced_pod(NAMESPACE, label_selector='app.kubernetes.io/name=vllm').items
    assert pods and all(pod.spec.node_name.startswith('gpu-node-') for pod in pods)
    for pod in pods:
        claim = core.read_namespaced_persistent_volume_claim('model-cache-' + pod.metadata.name, NAMESPACE)
        assert claim.status.phase == 'Bound'
        volume = core.read_persistent_volume(claim.spec.volume_name)
        affinity = volume.spec.node_affinity.required.node_selector_terms[0].match_expressions[0]
        assert affinity.values == [pod.spec.node_name]
    # One summary a person reads, at the end of the run.
    (summary,) = [result['msg'] for result in first.results_of('Summarize what serves')]
    assert summary[0].startswith("Serving Qwen/Qwen3-0.6B as 'qwen3-0.6b'")
    assert summary[1] == 'Inside the cluster: http://vllm-server.llm-serving.svc:80/v1'
    assert summary[2] == 'Outside: HTTPRoute vllm-server on the Gateway gateway-system/inference-gateway'
    assert 'GPU Operator: llmscale_gpu_operator_enabled is false' in summary[-1]

    second = run_playbook('playbooks/site.yml', inventory=INVENTORY, env=env)
    assert second.rc == 0, second.describe()
    assert second.changed == 0, second.changed_tasks()
