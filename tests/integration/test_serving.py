"""playbooks/serving.yml against the local cluster: real kube-apiserver (PodSecurity
admission, validation, server-side apply), scheduler (GPU placement, local volume
node affinity), controller-manager (StatefulSet, HPA) and kwok-simulated GPU nodes.

The gpu_operator and monitoring roles are switched off here (their own tests cover
them with the real charts; the autoscaling role's prometheus-adapter and KEDA
installs are in test_autoscaling_charts.py). autoscaling_mode is
prometheus_adapter: no custom metrics API runs here, so the HPA never gets a
value; the tests check that the HPA controller asks for
vllm_num_requests_waiting and that a re-run never fights it.
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

GPU_NODES = ('gpu-node-0', 'gpu-node-1')
INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'local')
TOKEN = 'hf_llmscale_integration_' + uuid.uuid4().hex
SERVED = 'qwen3-8b-test'
SELECTOR = 'app.kubernetes.io/instance=vllm-server'


def _name(prefix):
    return '%s-%s' % (prefix, uuid.uuid4().hex[:6])


class CacheVolumes:
    """A no-provisioner StorageClass of the test's own, with local PersistentVolumes on each GPU node.

    What nvme_storage creates on real nodes, so that each replica's claim binds to a volume of the node the
    scheduler picked. Deleted afterwards (they are Retain volumes: a released one never binds again).
    """

    def __init__(self, api, per_node):
        self.core = client.CoreV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.name = _name('llmscale-test-local')
        self.volumes = []
        self.storage.create_storage_class(client.V1StorageClass(
            metadata=client.V1ObjectMeta(name=self.name), provisioner='kubernetes.io/no-provisioner',
            volume_binding_mode='WaitForFirstConsumer', reclaim_policy='Retain'))
        for node in GPU_NODES:
            for index in range(per_node):
                volume = '%s-%s-%d' % (self.name, node, index)
                self.core.create_persistent_volume(client.V1PersistentVolume(
                    metadata=client.V1ObjectMeta(name=volume),
                    spec=client.V1PersistentVolumeSpec(
                        capacity={'storage': '300Gi'}, access_modes=['ReadWriteOnce'], storage_class_name=self.name,
                        persistent_volume_reclaim_policy='Retain', local=client.V1LocalVolumeSource(path='/mnt/sim'),
                        node_affinity=client.V1VolumeNodeAffinity(required=client.V1NodeSelector(node_selector_terms=[
                            client.V1NodeSelectorTerm(match_expressions=[client.V1NodeSelectorRequirement(
                                key='kubernetes.io/hostname', operator='In', values=[node])])])))))
                self.volumes.append(volume)

    def node_of(self, volume_name):
        volume = self.core.read_persistent_volume(volume_name)
        return volume.spec.node_affinity.required.node_selector_terms[0].match_expressions[0].values[0]

    def delete(self):
        for volume in self.volumes:
            delete_if_present(self.core.delete_persistent_volume, volume)
        delete_if_present(self.storage.delete_storage_class, self.name)


@pytest.fixture(scope='module')
def serving(kubeconfig, api_client, gateway_api_crds):  # pylint: disable=unused-argument  # the default route's CRDs
    """Variables for one serving namespace, with local volumes for its replicas' model-cache claims."""
    namespace = _name('serve')
    volumes = CacheVolumes(api_client, per_node=3)
    variables = {
        'llmscale_gpu_operator_enabled': False,
        'llmscale_monitoring_enabled': False,
        'autoscaling_mode': 'prometheus_adapter',
        'vllm_namespace': namespace,
        'vllm_served_model_name': SERVED,
        'vllm_model_cache_storage_class': volumes.name,
        'vllm_hf_token': TOKEN,
        'vllm_replicas': 2,
        'vllm_tensor_parallel_size': 2,
        'vllm_wait_timeout': 300,
    }
    yield {'vars': variables, 'namespace': namespace, 'env': {'KUBECONFIG': kubeconfig}, 'api': api_client,
           'kubeconfig': kubeconfig, 'volumes': volumes}
    core = client.CoreV1Api(api_client)
    delete_if_present(core.delete_namespace, namespace)
    poll(lambda: not core.list_namespaced_persistent_volume_claim(namespace).items, 180, what='claims gone')
    volumes.delete()


def serve(serving, check=False, diff=False, cli_vars=None, **overrides):
    return run_playbook('playbooks/serving.yml', inventory=INVENTORY, extra_vars=dict(serving['vars'], **overrides),
                        check=check, diff=diff, env=serving['env'], timeout=900, cli_vars=cli_vars)


@pytest.fixture(scope='module')
def deployed(serving):
    result = serve(serving, diff=True)
    assert result.rc == 0, result.describe()
    return result


def _snapshot(api, namespace):
    """What a write by the playbook would change: each object's generation (bumped by every spec change; the
    controllers' status updates leave it alone), or its resourceVersion for kinds without one."""
    apps, core, net = client.AppsV1Api(api), client.CoreV1Api(api), client.NetworkingV1Api(api)
    objects = {}
    for kind, items in (
            ('StatefulSet', apps.list_namespaced_stateful_set(namespace).items),
            ('Service', core.list_namespaced_service(namespace).items),
            ('Secret', core.list_namespaced_secret(namespace).items),
            ('PersistentVolumeClaim', core.list_namespaced_persistent_volume_claim(namespace).items),
            ('Ingress', net.list_namespaced_ingress(namespace).items),
            ('NetworkPolicy', net.list_namespaced_network_policy(namespace).items),
            ('PodDisruptionBudget', client.PolicyV1Api(api).list_namespaced_pod_disruption_budget(namespace).items),
            ('HorizontalPodAutoscaler', client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(namespace).items)):
        for item in items:
            objects[(kind, item.metadata.name)] = item.metadata.generation or item.metadata.resource_version
    for item in client.CustomObjectsApi(api).list_namespaced_custom_object(
            'gateway.networking.k8s.io', 'v1', namespace, 'httproutes')['items']:
        objects[('HTTPRoute', item['metadata']['name'])] = item['metadata']['generation']
    objects[('Namespace', namespace)] = core.read_namespace(namespace).metadata.resource_version
    return objects


def _apply_result(result):
    """The k8s_apply result of the run's real apply (not the dry run before charts)."""
    results = [r for r in result.results_of('Apply vLLM, its autoscaler and network policies') if 'summary' in r]
    assert results, result.describe()
    return results[-1]


def test_vllm_rolls_out_on_gpu_nodes_in_the_restricted_namespace(serving, deployed):
    api, namespace = serving['api'], serving['namespace']
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    assert core.read_namespace(namespace).metadata.labels['pod-security.kubernetes.io/enforce'] == 'restricted'
    statefulset = apps.read_namespaced_stateful_set('vllm-server', namespace)
    assert statefulset.status.ready_replicas == 2
    running = [pod for pod in core.list_namespaced_pod(namespace, label_selector=SELECTOR).items
               if pod.status.phase == 'Running']
    assert len(running) == 2
    # Admitted by kube-apiserver's PodSecurity "restricted" check, and placed on GPU nodes only.
    assert {pod.spec.node_name for pod in running} <= set(GPU_NODES)
    for pod in running:
        assert pod.spec.containers[0].resources.limits['nvidia.com/gpu'] == '2'
        assert pod.spec.enable_service_links is False
    assert _apply_result(deployed)['summary'].get('create', 0) >= 6


def test_each_replica_has_its_own_claim_on_the_node_it_runs_on(serving, deployed):
    api, namespace = serving['api'], serving['namespace']
    core = client.CoreV1Api(api)
    for pod in core.list_namespaced_pod(namespace, label_selector=SELECTOR).items:
        claim_name = next(v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.name == 'model-cache')
        assert claim_name == 'model-cache-' + pod.metadata.name
        claim = core.read_namespaced_persistent_volume_claim(claim_name, namespace)
        assert claim.status.phase == 'Bound'
        assert serving['volumes'].node_of(claim.spec.volume_name) == pod.spec.node_name


def test_the_security_context_is_what_gets_the_pods_admitted(serving, deployed):
    """Without its securityContext the same pod template is refused by the namespace (dry run)."""
    api, namespace = serving['api'], serving['namespace']
    template = client.AppsV1Api(api).read_namespaced_stateful_set('vllm-server', namespace).spec.template
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name='no-security-context'), spec=copy.deepcopy(template.spec))
    pod.spec.volumes = [v for v in pod.spec.volumes if v.name != 'model-cache']
    pod.spec.containers[0].volume_mounts = [m for m in pod.spec.containers[0].volume_mounts if m.name != 'model-cache']
    pod.spec.security_context = None
    pod.spec.containers[0].security_context = None
    with pytest.raises(ApiException) as rejected:
        client.CoreV1Api(api).create_namespaced_pod(namespace, pod, dry_run='All')
    assert rejected.value.status == 403
    assert 'violates PodSecurity "restricted' in json.loads(rejected.value.body)['message']
    pod.metadata.name = 'as-rendered'
    pod.spec.security_context = template.spec.security_context
    pod.spec.containers[0].security_context = template.spec.containers[0].security_context
    client.CoreV1Api(api).create_namespaced_pod(namespace, pod, dry_run='All')


def test_token_is_in_the_secret_and_never_in_the_output(serving, deployed):
    secret = client.CoreV1Api(serving['api']).read_namespaced_secret('vllm-hf-token', serving['namespace'])
    assert base64.b64decode(secret.data['HF_TOKEN']).decode() == TOKEN
    encoded = base64.b64encode(TOKEN.encode()).decode()
    for text in (deployed.raw_stdout, deployed.stderr):
        assert TOKEN not in text and encoded not in text
    config_maps = client.CoreV1Api(serving['api']).list_namespaced_config_map(serving['namespace']).items
    assert not any(TOKEN in repr(config_map.data) for config_map in config_maps)


def test_hpa_asks_the_controller_for_the_vllm_queue_metric(serving, deployed):
    autoscaling = client.AutoscalingV2Api(serving['api'])
    hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler('vllm-server', serving['namespace'])
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 4)
    assert hpa.spec.scale_target_ref.kind == 'StatefulSet'
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
    assert _apply_result(result)['summary'] == {'unchanged': len(_apply_result(result)['objects'])}
    assert _snapshot(serving['api'], serving['namespace']) == before


def test_a_rerun_leaves_the_replica_count_to_the_autoscaler(serving, deployed):
    """The HPA (or anyone through the scale subresource) set 3 replicas: a re-run must not put 2 back."""
    apps, namespace = client.AppsV1Api(serving['api']), serving['namespace']
    apps.patch_namespaced_stateful_set_scale('vllm-server', namespace, {'spec': {'replicas': 3}})
    try:
        poll(lambda: apps.read_namespaced_stateful_set('vllm-server', namespace).status.ready_replicas == 3, 180,
             what='3 replicas ready')
        result = serve(serving)
        assert result.rc == 0, result.describe()
        assert result.changed == 0, result.changed_tasks()
        assert apps.read_namespaced_stateful_set('vllm-server', namespace).spec.replicas == 3
    finally:
        apps.patch_namespaced_stateful_set_scale('vllm-server', namespace, {'spec': {'replicas': 2}})
        poll(lambda: apps.read_namespaced_stateful_set('vllm-server', namespace).status.replicas == 2, 180,
             what='back to 2 replicas')


def test_check_mode_reports_changes_and_makes_none(serving, deployed):
    api, namespace = serving['api'], serving['namespace']
    before = _snapshot(api, namespace)
    result = serve(serving, check=True, diff=True, vllm_gpu_memory_utilization=0.85, autoscaling_max_replicas=3,
                   vllm_model_cache_prewarmed=True)
    assert result.rc == 0, result.describe()
    changes = {(o['kind'], o['name']): o['action'] for o in _apply_result(result)['objects'] if o['action'] != 'unchanged'}
    assert changes == {('StatefulSet', 'vllm-server'): 'update', ('HorizontalPodAutoscaler', 'vllm-server'): 'update',
                       ('NetworkPolicy', 'allow-vllm-model-download'): 'delete'}, changes
    diff = {entry['after_header']: entry for entry in _apply_result(result)['diff']}
    assert '0.85' in diff['StatefulSet %s/vllm-server (applied)' % namespace]['after']
    assert _snapshot(api, namespace) == before
    args = client.AppsV1Api(api).read_namespaced_stateful_set('vllm-server', namespace).spec.template.spec.containers[0].args
    assert args[args.index('--gpu-memory-utilization') + 1] == '0.9'


def test_check_mode_in_a_new_namespace_creates_nothing(serving):
    namespace = _name('serve-check')
    result = serve(serving, check=True, vllm_namespace=namespace)
    assert result.rc == 0, result.describe()
    assert result.changed > 0, result.describe()
    assert {o['action'] for o in _apply_result(result)['objects']} == {'create'}
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(serving['api']).read_namespace(namespace)
    assert missing.value.status == 404


def test_values_typed_on_the_command_line_are_converted(serving, deployed):
    """`-e key=value` gives strings: 2 x 2 GPUs must be 4, not "22", and "0.9" a float (check mode)."""
    result = serve(serving, check=True, diff=True, cli_vars={
        'vllm_tensor_parallel_size': '2', 'vllm_pipeline_parallel_size': '2', 'vllm_gpu_memory_utilization': '0.9',
        'vllm_replicas': '2', 'vllm_model_cache_prewarmed': 'false', 'autoscaling_max_replicas': '4'})
    assert result.rc == 0, result.describe()
    (after,) = [json.loads(entry['after']) for entry in _apply_result(result)['diff']
                if entry['after_header'].startswith('StatefulSet')]
    assert _apply_result(result)['summary'].get('update') == 1, _apply_result(result)
    assert after['spec']['template']['spec']['containers'][0]['resources']['limits']['nvidia.com/gpu'] == '4'
    assert '0.9' in after['spec']['template']['spec']['containers'][0]['args']


# Bad input, each case a whole run of serving.yml against the deployed namespace: rc != 0, the variable named in
# the message, and nothing changed (generations and resourceVersions as before). ('-e', {...}) cases come in the
# form users type, every value a string.
BAD_INPUT = [
    ({'vllm_quantization': 'int3'}, 'vllm_quantization'),
    ({'autoscaling_min_replicas': 5, 'autoscaling_max_replicas': 2}, 'autoscaling_min_replicas'),
    ({'vllm_tensor_parallel_size': 8, 'vllm_pipeline_parallel_size': 2}, 'vllm_tensor_parallel_size'),
    ({'vllm_served_model_name': ''}, 'vllm_served_model_name'),
    ({'vllm_service_name': 'vllm'}, 'vllm_service_name'),
    ({'vllm_gpu_memory_utilization': 1.5}, 'vllm_gpu_memory_utilization'),
    ({'vllm_gpu_memory_utilization': 0}, 'vllm_gpu_memory_utilization'),
    ({'autoscaling_mode': 'keda'}, 'autoscaling_mode'),
    ({'vllm_gpu_products': ['NVIDIA-B200']}, 'vllm_gpu_products'),
    ({'vllm_model_cache_storage_class': 'no-such-class'}, 'vllm_model_cache_storage_class'),
    ({'vllm_shm_size': '8Gb'}, 'vllm_shm_size'),
    ({'vllm_memory_limit': '128GB'}, 'vllm_memory_limit'),
    ({'autoscaling_mode': 'none', 'vllm_replicas': 9}, 'vllm_replicas'),
    ({'vllm_replicas': 10000}, 'vllm_replicas'),
    ({'vllm_replicas': 5}, 'vllm_replicas'),
    ({'vllm_tensor_paralel_size': 2}, 'vllm_tensor_parallel_size'),
    ({'vllm_extra_args': ['--swap-space 4']}, 'vllm_extra_args'),
    ({'vllm_extra_args': ['--max_model_len=10']}, 'vllm_extra_args'),
    ({'vllm_extra_args': ['--disable-log-stats']}, 'vllm_extra_args'),
    ({'vllm_extra_args': ['--config', 'serve.yaml']}, 'vllm_extra_args'),
    ({'vllm_max_model_len': -5}, 'vllm_max_model_len'),
    ({'vllm_port': 80}, 'vllm_port'),
    ({'vllm_image_tag': 'latest', 'llmscale_warnings_as_errors': True}, 'vllm_image_tag'),
    ({'vllm_ingress_host': 'llm.yourdomain.com', 'llmscale_warnings_as_errors': True}, 'vllm_ingress_host'),
    ({'vllm_ingress_enabled': True}, 'vllm_ingress_enabled'),
    ({'vllm_route_request_timeout': '10 minutes'}, 'vllm_route_request_timeout'),
    ({'vllm_startup_timeout_seconds': 30, 'llmscale_warnings_as_errors': True}, 'vllm_startup_timeout_seconds'),
    ({'network_policy_model_download_cidr': 'anywhere'}, 'network_policy_model_download_cidr'),
    ({'network_policy_vllm_port': 70000}, 'network_policy_vllm_port'),
    ({'autoscaling_scale_down_period_seconds': 3600}, 'autoscaling_scale_'),
    ({'autoscaling_mode': 'resource', 'autoscaling_cpu_target_utilization': 0}, 'autoscaling_*_target_utilization'),
    ({'llmscale_kubeconfig': '/nonexistent/kubeconfig'}, 'llmscale_kubeconfig'),
    (('-e', {'vllm_tensor_parallel_size': 'two'}), 'vllm_tensor_parallel_size'),
    (('-e', {'vllm_model_cache_prewarmed': 'maybe'}), 'vllm_model_cache_prewarmed'),
    (('-e', {'vllm_gpu_memory_utilization': 'high'}), 'vllm_gpu_memory_utilization'),
    (('-e', {'autoscaling_max_replicas': '4x'}), 'autoscaling_max_replicas'),
]


@pytest.mark.parametrize('overrides, variable', BAD_INPUT, ids=[variable for _overrides, variable in BAD_INPUT])
def test_bad_input_fails_naming_the_variable_and_changes_nothing(serving, deployed, overrides, variable):
    before = _snapshot(serving['api'], serving['namespace'])
    if isinstance(overrides, tuple):
        result = serve(serving, cli_vars=overrides[1])
    else:
        result = serve(serving, **overrides)
    assert result.rc != 0, result.describe()
    assert variable in ' '.join(result.failure_messages()), result.describe()
    assert result.changed == 0, result.changed_tasks()
    assert _snapshot(serving['api'], serving['namespace']) == before


def test_bad_input_in_a_new_namespace_creates_nothing(serving):
    namespace = _name('serve-bad')
    result = serve(serving, vllm_namespace=namespace, vllm_shm_size='8Gb')
    assert result.rc != 0 and 'vllm_shm_size' in ' '.join(result.failure_messages()), result.describe()
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(serving['api']).read_namespace(namespace)
    assert missing.value.status == 404


@pytest.fixture
def six_replicas(kubeconfig, api_client, serving):
    # 6 x 2 GPUs of the 16 the two nodes have: the module's own replicas step aside (their GPUs are free once their
    # pods are gone, grace period included) and come back afterwards.
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    apps.patch_namespaced_stateful_set_scale('vllm-server', serving['namespace'], {'spec': {'replicas': 0}})
    poll(lambda: not core.list_namespaced_pod(serving['namespace'], label_selector=SELECTOR).items, 300,
         what="the module's replicas gone")
    namespace = _name('serve-six')
    volumes = CacheVolumes(api_client, per_node=4)
    yield namespace, volumes
    delete_if_present(core.delete_namespace, namespace)
    poll(lambda: not core.list_namespaced_persistent_volume_claim(namespace).items, 180, what='claims gone')
    volumes.delete()
    apps.patch_namespaced_stateful_set_scale('vllm-server', serving['namespace'], {'spec': {'replicas': 2}})


def test_six_replicas_of_two_gpus_spread_over_both_nodes_each_with_its_own_claim(serving, six_replicas):
    """The earlier shared ReadWriteOnce claim kept every replica on one node: the sixth stayed Pending."""
    namespace, volumes = six_replicas
    result = serve(serving, vllm_namespace=namespace, vllm_replicas=6, vllm_tensor_parallel_size=2,
                   vllm_model_cache_storage_class=volumes.name, autoscaling_mode='none')
    assert result.rc == 0, result.describe()
    core = client.CoreV1Api(serving['api'])
    pods = core.list_namespaced_pod(namespace, label_selector=SELECTOR).items
    assert sorted(pod.status.phase for pod in pods) == ['Running'] * 6
    assert {pod.spec.node_name for pod in pods} == set(GPU_NODES)
    for pod in pods:
        claim = core.read_namespaced_persistent_volume_claim('model-cache-' + pod.metadata.name, namespace)
        assert claim.status.phase == 'Bound'
        assert volumes.node_of(claim.spec.volume_name) == pod.spec.node_name


def test_the_deployment_of_earlier_versions_is_replaced_without_two_copies(serving, api_client):
    namespace = _name('serve-migrate')
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    volumes = CacheVolumes(api_client, per_node=1)
    labels = {'app.kubernetes.io/name': 'vllm', 'app.kubernetes.io/instance': 'vllm-server',
              'app.kubernetes.io/managed-by': 'llmscale.gpu_serving'}
    try:
        apps.create_namespaced_deployment(namespace, client.V1Deployment(
            metadata=client.V1ObjectMeta(name='vllm-server', labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=1, selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(
                    tolerations=[client.V1Toleration(operator='Exists')],
                    containers=[client.V1Container(name='vllm', image='docker.io/vllm/vllm-openai:v0.30.0',
                                                   resources=client.V1ResourceRequirements(
                                                       limits={'nvidia.com/gpu': '1'}))])))))
        result = serve(serving, vllm_namespace=namespace, vllm_replicas=1, vllm_tensor_parallel_size=1,
                       vllm_model_cache_storage_class=volumes.name, autoscaling_mode='none')
        assert result.rc == 0, result.describe()
        assert not apps.list_namespaced_deployment(namespace).items
        assert apps.read_namespaced_stateful_set('vllm-server', namespace).status.ready_replicas == 1
        actions = {(o['kind'], o['name']): o['action'] for o in _apply_result(result)['objects']}
        assert actions[('Deployment', 'vllm-server')] == 'delete'
    finally:
        delete_if_present(core.delete_namespace, namespace)
        poll(lambda: not core.list_namespaced_persistent_volume_claim(namespace).items, 180, what='claims gone')
        volumes.delete()
