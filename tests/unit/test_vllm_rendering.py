"""The vllm role's objects, rendered by the role itself, checked field by field
and validated against the pinned Kubernetes version's OpenAPI schema.

Admission (restricted PodSecurity) and scheduling are checked against the real
control plane in tests/integration/test_serving.py.
"""
import math

import kubernetes_validate
import pytest

from serving_render import kubernetes_schema_version, render_cases, validation_messages  # pylint: disable=import-error

BASE_VARS = {'vllm_served_model_name': 'qwen3-8b', 'vllm_gpus_per_node': 8}
FACTS = ['__vllm_plan']
# API groups of the route's CRDs (Gateway API, Inference Extension, Envoy Gateway, Istio).
CRD_GROUPS = {'gateway.networking.k8s.io', 'inference.networking.k8s.io', 'gateway.envoyproxy.io', 'networking.istio.io',
              'security.istio.io'}


# Rendered in one ansible-playbook run: (name, variables over BASE_VARS).
CASES = [
    ('default', {}),
    ('parallel', {'vllm_tensor_parallel_size': 4, 'vllm_pipeline_parallel_size': 2, 'vllm_quantization': 'fp8',
                  'vllm_max_model_len': 32768, 'vllm_block_size': 32, 'vllm_extra_args': ['--enable-prefix-caching']}),
    ('prewarmed', {'vllm_model_cache_prewarmed': True, 'vllm_hf_token': 'hf_unit_test_secret'}),
    ('tls', {'vllm_route_kind': 'ingress', 'vllm_ingress_host': 'llm.internal.corp', 'vllm_ingress_tls_secret': 'llm-tls',
             'vllm_ingress_class': 'internal'}),
    ('no-route', {'vllm_route_kind': 'none'}),
    ('startup-95s', {'vllm_startup_timeout_seconds': 95, 'vllm_probe_period_seconds': 10}),
    ('data-parallel', {'vllm_tensor_parallel_size': 2, 'vllm_extra_args': ['--data-parallel-size', '2']}),
    ('shared-cache', {'vllm_model_cache_access_modes': ['ReadWriteMany'], 'vllm_model_cache_storage_class': 'nfs'}),
]


@pytest.fixture(scope='module')
def rendered():
    """{case name: ({kind: object}, [objects])}."""
    results = render_cases('vllm', [dict(BASE_VARS, **variables) for _name, variables in CASES], FACTS)
    cases = {}
    for (name, _variables), facts in zip(CASES, results):
        objects = facts['__vllm_plan']['objects']
        cases[name] = ({obj['kind']: obj for obj in objects}, objects)
    return cases


@pytest.fixture(scope='module')
def default_objects(rendered):
    return rendered['default']


def _flag(args, name):
    """Value following a flag in the argument list, None when the flag is absent."""
    return args[args.index(name) + 1] if name in args else None


def test_every_object_is_valid_for_the_cluster_version(rendered):
    assert set(rendered['default'][0]) == {
        'Namespace', 'Service', 'HTTPRoute', 'PodDisruptionBudget', 'StatefulSet'}
    for _kinds, objects in rendered.values():
        # Kinds of CRDs (the route's) are checked by the API server against the real CRDs (test_serving_traffic.py).
        for obj in objects:
            if obj['apiVersion'].split('/')[0] not in CRD_GROUPS:
                kubernetes_validate.validate(obj, kubernetes_schema_version(), strict=True)


def test_namespace_enforces_restricted_pod_security(default_objects):
    labels = default_objects[0]['Namespace']['metadata']['labels']
    assert labels['pod-security.kubernetes.io/enforce'] == 'restricted'


def test_engine_settings_are_vllm_serve_arguments(default_objects):
    container = default_objects[0]['StatefulSet']['spec']['template']['spec']['containers'][0]
    args = container['args']
    assert container['command'] == ['vllm', 'serve']
    assert args[0] == 'Qwen/Qwen3-8B'
    assert _flag(args, '--served-model-name') == 'qwen3-8b'
    assert _flag(args, '--port') == '8000'
    assert _flag(args, '--dtype') == 'auto'
    assert _flag(args, '--gpu-memory-utilization') == '0.9'
    assert _flag(args, '--tensor-parallel-size') == '1'
    # Unset settings are left to vLLM, not rendered as empty flags.
    for absent in ('--quantization', '--max-model-len', '--block-size', '--swap-space'):
        assert absent not in args
    env_names = {env['name'] for env in container['env']}
    assert not env_names & {'MODEL_NAME', 'MODEL', 'VLLM_PORT'}


def test_gpus_are_tensor_times_pipeline_parallel_size(rendered):
    kinds, _objects = rendered['parallel']
    container = kinds['StatefulSet']['spec']['template']['spec']['containers'][0]
    assert container['resources']['limits']['nvidia.com/gpu'] == '8'
    assert container['resources']['requests']['nvidia.com/gpu'] == '8'
    args = container['args']
    assert _flag(args, '--tensor-parallel-size') == '4'
    assert _flag(args, '--pipeline-parallel-size') == '2'
    assert _flag(args, '--quantization') == 'fp8'
    assert _flag(args, '--max-model-len') == '32768'
    assert _flag(args, '--block-size') == '32'
    assert args[-1] == '--enable-prefix-caching'


def test_gpus_are_vllm_world_size_with_data_parallel_ranks_in_the_pod(rendered):
    kinds, _objects = rendered['data-parallel']
    container = kinds['StatefulSet']['spec']['template']['spec']['containers'][0]
    assert container['resources']['limits']['nvidia.com/gpu'] == '4'


def test_pod_security_context_is_restricted_with_writable_caches(default_objects):
    pod = default_objects[0]['StatefulSet']['spec']['template']['spec']
    container = pod['containers'][0]
    assert pod['securityContext']['runAsNonRoot'] is True
    assert pod['securityContext']['runAsUser'] == 1000
    assert pod['securityContext']['seccompProfile'] == {'type': 'RuntimeDefault'}
    security = container['securityContext']
    assert security['allowPrivilegeEscalation'] is False
    assert security['readOnlyRootFilesystem'] is True
    assert security['capabilities'] == {'drop': ['ALL']}
    volumes = {volume['name']: volume for volume in pod['volumes']}
    mounts = {mount['mountPath']: mount['name'] for mount in container['volumeMounts']}
    env = {item['name']: item.get('value') for item in container['env']}
    # Every cache vLLM, Triton, torch and the HF hub write to is on a writable volume.
    for variable in ('HOME', 'VLLM_CACHE_ROOT', 'TRITON_CACHE_DIR', 'TORCHINDUCTOR_CACHE_DIR', 'XDG_CACHE_HOME', 'HF_HOME'):
        path = env[variable]
        assert any(path == mount or path.startswith(mount.rstrip('/') + '/') for mount in mounts), (variable, path)
    assert mounts['/tmp'] == 'tmp' and 'emptyDir' in volumes['tmp']
    assert volumes['shm']['emptyDir'] == {'medium': 'Memory', 'sizeLimit': '16Gi'}
    assert mounts['/dev/shm'] == 'shm'
    assert mounts['/models'] == 'model-cache' and 'model-cache' not in volumes
    assert pod['enableServiceLinks'] is False


def test_probes_cover_model_load_and_shutdown_is_graceful(default_objects):
    pod = default_objects[0]['StatefulSet']['spec']['template']['spec']
    container = pod['containers'][0]
    startup = container['startupProbe']
    assert startup['httpGet']['path'] == '/health'
    assert startup['periodSeconds'] * startup['failureThreshold'] >= 1800
    assert container['readinessProbe']['httpGet']['path'] == '/health'
    assert container['livenessProbe']['httpGet']['path'] == '/health'
    assert container['lifecycle']['preStop'] == {'sleep': {'seconds': 15}}
    # vLLM drains for --shutdown-timeout after SIGTERM; the grace period covers preStop + drain + 10 s to exit.
    assert _flag(container['args'], '--shutdown-timeout') == '60'
    assert pod['terminationGracePeriodSeconds'] == 15 + 60 + 10


def test_each_replica_gets_its_own_cache_claim_kept_when_it_scales_away(default_objects):
    statefulset = default_objects[0]['StatefulSet']['spec']
    (template,) = statefulset['volumeClaimTemplates']
    assert template['metadata']['name'] == 'model-cache'
    assert template['spec']['storageClassName'] == 'local-nvme'
    assert template['spec']['accessModes'] == ['ReadWriteOnce']
    assert statefulset['persistentVolumeClaimRetentionPolicy'] == {'whenDeleted': 'Retain', 'whenScaled': 'Retain'}
    assert statefulset['podManagementPolicy'] == 'Parallel'


def test_a_read_write_many_class_gets_one_shared_claim(rendered):
    kinds, _objects = rendered['shared-cache']
    assert kinds['PersistentVolumeClaim']['metadata']['name'] == 'vllm-server-model-cache'
    assert kinds['PersistentVolumeClaim']['spec']['accessModes'] == ['ReadWriteMany']
    pod = kinds['StatefulSet']['spec']['template']['spec']
    volumes = {volume['name']: volume for volume in pod['volumes']}
    assert volumes['model-cache']['persistentVolumeClaim']['claimName'] == 'vllm-server-model-cache'
    assert 'volumeClaimTemplates' not in kinds['StatefulSet']['spec']


def test_placement_requires_the_gpu_product_and_prefers_instance_type_and_spot(default_objects):
    affinity = default_objects[0]['StatefulSet']['spec']['template']['spec']['affinity']['nodeAffinity']
    required = affinity['requiredDuringSchedulingIgnoredDuringExecution']['nodeSelectorTerms']
    gpu_product = {'key': 'nvidia.com/gpu.product', 'operator': 'In', 'values': ['NVIDIA-H100-80GB-HBM3']}
    assert required == [{'matchExpressions': [gpu_product]}]
    preferred = {term['preference']['matchExpressions'][0]['key']: term
                 for term in affinity['preferredDuringSchedulingIgnoredDuringExecution']}
    assert preferred['node.kubernetes.io/instance-type']['preference']['matchExpressions'][0]['values'] == ['p5.48xlarge']
    assert preferred['node.kubernetes.io/capacity-type']['preference']['matchExpressions'][0]['values'] == ['spot']


def test_service_is_not_named_vllm_and_targets_the_named_port(default_objects):
    service = default_objects[0]['Service']
    assert service['metadata']['name'] != 'vllm'
    assert service['spec']['ports'][0]['targetPort'] == 'http'
    assert service['spec']['selector'] == default_objects[0]['StatefulSet']['spec']['selector']['matchLabels']


def test_token_goes_to_the_pod_from_a_secret_and_offline_mode_drops_it(default_objects, rendered):
    env = default_objects[0]['StatefulSet']['spec']['template']['spec']['containers'][0]['env']
    token = next(item for item in env if item['name'] == 'HF_TOKEN')
    assert token['valueFrom']['secretKeyRef'] == {'name': 'vllm-hf-token', 'key': 'HF_TOKEN', 'optional': True}
    kinds, objects = rendered['prewarmed']
    env = {item['name']: item for item in kinds['StatefulSet']['spec']['template']['spec']['containers'][0]['env']}
    assert env['HF_HUB_OFFLINE']['value'] == '1'
    assert 'HF_TOKEN' not in env
    # The rendered objects (all but the Secret, which main.yml applies under no_log) never hold the token.
    assert 'hf_unit_test_secret' not in repr(objects)


def test_ingress_tls_and_disabled_ingress(rendered):
    kinds, _objects = rendered['tls']
    ingress = kinds['Ingress']['spec']
    assert ingress['ingressClassName'] == 'internal'
    assert ingress['tls'] == [{'hosts': ['llm.internal.corp'], 'secretName': 'llm-tls'}]
    assert ingress['rules'][0]['host'] == 'llm.internal.corp'
    assert 'HTTPRoute' not in kinds
    kinds, _objects = rendered['no-route']
    assert 'Ingress' not in kinds and 'HTTPRoute' not in kinds


def test_startup_probe_threshold_rounds_up(rendered):
    kinds, _objects = rendered['startup-95s']
    probe = kinds['StatefulSet']['spec']['template']['spec']['containers'][0]['startupProbe']
    assert probe['failureThreshold'] == math.ceil(95 / 10)


@pytest.mark.parametrize('overrides, variable', [
    ({'vllm_quantization': 'int3'}, 'vllm_quantization'),
    ({'vllm_served_model_name': ''}, 'vllm_served_model_name'),
    ({'vllm_served_model_name': None}, 'vllm_served_model_name'),
    ({'vllm_gpu_memory_utilization': 0}, 'vllm_gpu_memory_utilization'),
    ({'vllm_gpu_memory_utilization': 1.2}, 'vllm_gpu_memory_utilization'),
    ({'vllm_service_name': 'vllm'}, 'vllm_service_name'),
    ({'vllm_extra_args': ['--swap-space', '4']}, 'vllm_extra_args'),
    ({'vllm_extra_args': ['--max_model_len=10']}, 'vllm_extra_args'),
    ({'vllm_extra_args': ['--max-model-len 10']}, 'vllm_extra_args'),
    ({'vllm_extra_args': ['--disable-log-stats']}, 'vllm_extra_args'),
    ({'vllm_extra_args': ['--config', 'x.yaml']}, 'vllm_extra_args'),
    ({'vllm_replicas': 10000}, 'vllm_replicas'),
    ({'vllm_replicas': 'many'}, 'vllm_replicas'),
    ({'vllm_tensor_paralel_size': 2}, 'vllm_tensor_parallel_size'),
    ({'vllm_namespace': 'LLM_Inference'}, 'vllm_namespace'),
    ({'vllm_shm_size': '8Gb'}, 'vllm_shm_size'),
    # Warnings, as errors when the site asks for it.
    ({'vllm_image_tag': 'latest', 'llmscale_warnings_as_errors': True}, 'vllm_image_tag'),
    ({'vllm_ingress_host': 'llm.yourdomain.com', 'llmscale_warnings_as_errors': True}, 'vllm_ingress_host'),
    ({'vllm_startup_timeout_seconds': 30, 'llmscale_warnings_as_errors': True}, 'vllm_startup_timeout_seconds'),
    ({'vllm_extra_args': ['--port=9000']}, 'vllm_extra_args'),
    ({'vllm_dtype': 'fp4'}, 'vllm_dtype'),
    ({'vllm_ingress_tls_secret': 'tls'}, 'vllm_ingress_tls_secret'),
    ({'vllm_ingress_enabled': True}, 'vllm_ingress_enabled'),
    ({'vllm_route_kind': 'nginx'}, 'vllm_route_kind'),
])
def test_bad_variables_fail_naming_the_variable(overrides, variable):
    variables = dict(BASE_VARS, **overrides)
    if overrides.get('vllm_served_model_name', '') is None:
        del variables['vllm_served_model_name']
    assert variable in validation_messages('vllm', variables)
