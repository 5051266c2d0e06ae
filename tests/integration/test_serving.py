"""playbooks/serving.yml against the local cluster: real kube-apiserver (PodSecurity
admission, validation), scheduler (GPU placement), controller-manager (Deployment,
HPA) and kwok-simulated GPU nodes.

The gpu_operator and monitoring roles are switched off here (their own tests
cover them with the real charts; the autoscaling role's prometheus-adapter and
KEDA installs are in test_autoscaling_charts.py). No custom metrics API runs
here, so the HPA never gets a value: the tests check that the HPA controller
asks for vllm_num_requests_waiting.
"""
import base64
import copy
import json
import os
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_helpers import delete_if_present, poll  # pylint: disable=import-error
from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error

GPU_NODES = {'gpu-node-0', 'gpu-node-1'}
INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'local')
TOKEN = 'hf_llmscale_integration_' + uuid.uuid4().hex
SERVED = 'qwen3-8b-test'


def _name(prefix):
    return '%s-%s' % (prefix, uuid.uuid4().hex[:6])


@pytest.fixture(scope='module')
def serving(kubeconfig, api_client):
    """Variables for one serving namespace, with a PersistentVolume waiting for its model-cache claim."""
    namespace = _name('serve')
    storage_class = _name('llmscale-test-cache')
    core = client.CoreV1Api(api_client)
    # A static hostPath volume (no provisioner runs here), reserved for the role's claim.
    volume = _name('model-cache')
    core.create_persistent_volume(client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=volume),
        spec=client.V1PersistentVolumeSpec(
            capacity={'storage': '300Gi'}, access_modes=['ReadWriteOnce'], storage_class_name=storage_class,
            persistent_volume_reclaim_policy='Delete', host_path=client.V1HostPathVolumeSource(path='/tmp/' + volume),
            claim_ref=client.V1ObjectReference(namespace=namespace, name='vllm-server-model-cache'))))
    variables = {
        'llmscale_gpu_operator_enabled': False,
        'llmscale_monitoring_enabled': False,
        'vllm_namespace': namespace,
        'vllm_served_model_name': SERVED,
        'vllm_model_cache_storage_class': storage_class,
        'vllm_hf_token': TOKEN,
        'vllm_replicas': 2,
        'vllm_tensor_parallel_size': 2,
        'vllm_wait_timeout': 300,
    }
    env = {'KUBECONFIG': kubeconfig}
    yield {'vars': variables, 'namespace': namespace, 'env': env, 'api': api_client, 'kubeconfig': kubeconfig}
    delete_if_present(core.delete_namespace, namespace)
    delete_if_present(core.delete_persistent_volume, volume)


def serve(serving, check=False, diff=False, **overrides):
    return run_playbook('playbooks/serving.yml', inventory=INVENTORY, extra_vars=dict(serving['vars'], **overrides),
                        check=check, diff=diff, env=serving['env'], timeout=900)


@pytest.fixture(scope='module')
def deployed(serving):
    result = serve(serving, diff=True)
    assert result.rc == 0, result.describe()
    return result


def _snapshot(api, namespace):
    """resourceVersion of every object the roles manage in the namespace."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    objects = {}
    for kind, items in (
            ('Deployment', apps.list_namespaced_deployment(namespace).items),
            ('Service', core.list_namespaced_service(namespace).items),
            ('Secret', core.list_namespaced_secret(namespace).items),
            ('PersistentVolumeClaim', core.list_namespaced_persistent_volume_claim(namespace).items),
            ('Ingress', client.NetworkingV1Api(api).list_namespaced_ingress(namespace).items),
            ('NetworkPolicy', client.NetworkingV1Api(api).list_namespaced_network_policy(namespace).items),
            ('PodDisruptionBudget', client.PolicyV1Api(api).list_namespaced_pod_disruption_budget(namespace).items),
            ('HorizontalPodAutoscaler', client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(namespace).items)):
        for item in items:
            objects[(kind, item.metadata.name)] = item.metadata.resource_version
    objects[('Namespace', namespace)] = core.read_namespace(namespace).metadata.resource_version
    return objects


def test_vllm_becomes_available_on_gpu_nodes_in_the_restricted_namespace(serving, deployed):
    api, namespace = serving['api'], serving['namespace']
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    assert core.read_namespace(namespace).metadata.labels['pod-security.kubernetes.io/enforce'] == 'restricted'
    deployment = apps.read_namespaced_deployment('vllm-server', namespace)
    available = next(c for c in deployment.status.conditions if c.type == 'Available')
    assert available.status == 'True' and deployment.status.available_replicas == 2
    pods = core.list_namespaced_pod(namespace, label_selector='app.kubernetes.io/instance=vllm-server').items
    running = [pod for pod in pods if pod.status.phase == 'Running']
    assert len(running) == 2
    # Admitted by kube-apiserver's PodSecurity "restricted" check, and placed on GPU nodes only.
    assert {pod.spec.node_name for pod in running} <= GPU_NODES
    for pod in running:
        assert pod.spec.containers[0].resources.limits['nvidia.com/gpu'] == '2'
        assert pod.spec.enable_service_links is False
    claim = core.read_namespaced_persistent_volume_claim('vllm-server-model-cache', namespace)
    assert claim.status.phase == 'Bound'


def test_the_security_context_is_what_gets_the_pods_admitted(serving, deployed):
    """Without its securityContext the same pod template is refused by the namespace (dry run)."""
    api, namespace = serving['api'], serving['namespace']
    template = client.AppsV1Api(api).read_namespaced_deployment('vllm-server', namespace).spec.template
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name='no-security-context'), spec=copy.deepcopy(template.spec))
    pod.spec.security_context = None
    pod.spec.containers[0].security_context = None
    with pytest.raises(ApiException) as rejected:
        client.CoreV1Api(api).create_namespaced_pod(namespace, pod, dry_run='All')
    assert rejected.value.status == 403
    assert 'violates PodSecurity "restricted' in json.loads(rejected.value.body)['message']
    pod.metadata.name = 'as-rendered'
    pod.spec = copy.deepcopy(template.spec)
    client.CoreV1Api(api).create_namespaced_pod(namespace, pod, dry_run='All')


def test_token_is_in_the_secret_and_never_in_the_output(serving, deployed):
    secret = client.CoreV1Api(serving['api']).read_namespaced_secret('vllm-hf-token', serving['namespace'])
    assert base64.b64decode(secret.data['HF_TOKEN']).decode() == TOKEN
    assert TOKEN not in deployed.raw_stdout and TOKEN not in deployed.stderr
    config_maps = client.CoreV1Api(serving['api']).list_namespaced_config_map(serving['namespace']).items
    assert not any(TOKEN in repr(config_map.data) for config_map in config_maps)


def test_hpa_asks_the_controller_for_the_vllm_queue_metric(serving, deployed):
    autoscaling = client.AutoscalingV2Api(serving['api'])
    hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler('vllm-server', serving['namespace'])
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 4)
    assert hpa.spec.metrics[0].pods.metric.name == 'vllm_num_requests_waiting'
    assert hpa.spec.behavior.scale_down.stabilization_window_seconds == 300

    def failed_to_get_the_metric():
        status = autoscaling.read_namespaced_horizontal_pod_autoscaler_status('vllm-server', serving['namespace']).status
        condition = next((c for c in status.conditions or [] if c.type == 'ScalingActive'), None)
        return condition if condition is not None and condition.reason == 'FailedGetPodsMetric' else None

    # The real HPA controller queries custom.metrics.k8s.io for that metric; nothing serves it here.
    condition = poll(failed_to_get_the_metric, 180, interval=5, what='the HPA controller to try the custom metric')
    assert 'vllm_num_requests_waiting' in condition.message


def test_network_policies_exist_for_the_namespace(serving, deployed):
    names = {policy.metadata.name for policy in
             client.NetworkingV1Api(serving['api']).list_namespaced_network_policy(serving['namespace']).items}
    assert names == {'default-deny-all', 'allow-vllm-ingress', 'allow-dns-egress', 'allow-vllm-model-download'}


def test_second_run_changes_nothing(serving, deployed):
    before = _snapshot(serving['api'], serving['namespace'])
    result = serve(serving)
    assert result.rc == 0, result.describe()
    assert result.changed == 0, result.changed_tasks()
    assert _snapshot(serving['api'], serving['namespace']) == before


def test_check_mode_reports_changes_and_makes_none(serving, deployed):
    api, namespace = serving['api'], serving['namespace']
    before = _snapshot(api, namespace)
    result = serve(serving, check=True, diff=True, vllm_gpu_memory_utilization=0.85, autoscaling_max_replicas=3,
                   vllm_model_cache_prewarmed=True)
    assert result.rc == 0, result.describe()
    changed = set(result.task_names(changed=True))
    assert 'Apply the model cache, Service, Ingress, PodDisruptionBudget and Deployment' in changed, changed
    assert 'Apply the HorizontalPodAutoscaler' in changed, changed
    assert 'Allow HTTPS egress for model downloads, or remove that exception' in changed, changed
    assert _snapshot(api, namespace) == before
    args = client.AppsV1Api(api).read_namespaced_deployment('vllm-server', namespace).spec.template.spec.containers[0].args
    assert args[args.index('--gpu-memory-utilization') + 1] == '0.9'


def test_check_mode_in_a_new_namespace_creates_nothing(serving):
    namespace = _name('serve-check')
    result = serve(serving, check=True, vllm_namespace=namespace)
    assert result.rc == 0, result.describe()
    assert result.changed > 0, result.describe()
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(serving['api']).read_namespace(namespace)
    assert missing.value.status == 404


@pytest.mark.parametrize('overrides, variable', [
    ({'vllm_quantization': 'int3'}, 'vllm_quantization'),
    ({'autoscaling_min_replicas': 5, 'autoscaling_max_replicas': 2}, 'autoscaling_min_replicas'),
    ({'vllm_tensor_parallel_size': 8, 'vllm_pipeline_parallel_size': 2}, 'vllm_tensor_parallel_size'),
    ({'vllm_served_model_name': ''}, 'vllm_served_model_name'),
    ({'vllm_service_name': 'vllm'}, 'vllm_service_name'),
    ({'vllm_gpu_memory_utilization': 1.5}, 'vllm_gpu_memory_utilization'),
    ({'vllm_gpu_memory_utilization': 0}, 'vllm_gpu_memory_utilization'),
    ({'autoscaling_mode': 'keda'}, 'autoscaling_mode'),
])
def test_bad_variables_fail_before_anything_is_applied(serving, overrides, variable):
    namespace = _name('serve-bad')
    result = serve(serving, **dict({'vllm_namespace': namespace}, **overrides))
    assert result.rc != 0, result.describe()
    assert variable in ' '.join(result.failure_messages()), result.describe()
    assert result.changed == 0, result.changed_tasks()
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(serving['api']).read_namespace(namespace)
    assert missing.value.status == 404
