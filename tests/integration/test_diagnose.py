"""playbooks/diagnose.yml and playbooks/support_bundle.yml on the local cluster, each situation made real there.

The serving workload is the vllm role's own StatefulSet, rendered by the role (tasks_from: render, no cluster read),
with its model-cache claims from volumeClaimTemplates bound to local volumes of this module's storage class.

- Scheduling: the real kube-scheduler's FailedScheduling messages (a pod asking more GPUs than a node has; a
  model-cache claim bound to the other node's local volume while this node's GPUs are taken; no node of the GPU
  product; a taint without toleration).
- Autoscaling: a real HPA on a Pods metric with no custom metrics API registered (the real HPA controller sets
  ScalingActive=False); a real CPU HPA at its maximum (kwok's simulated usage through the real metrics-server) with
  a scale-up pod that cannot be placed; a real Prometheus 3.16 scraping simulated vLLM exporters (scaling_harness,
  vllm_exporter) asked for the autoscaler's series.
- Containers: the local cluster's kwok runs only its default pod stages (scripts/cluster.sh enables no Stage
  CRD, and other tests rely on that), so the container states a kubelet reports are written here through the
  pod status API as the kubelet writes them (OOMKilled, CrashLoopBackOff), and the startup-probe kill as the
  kubelet records it: reason Killing, message from pkg/kubelet/kuberuntime/kuberuntime_manager.go
  ("Container %s failed startup probe" + ", will be restarted").

Set LLMSCALE_DIAGNOSE_RECORD=<dir> to write the facts each run analysed (the unit tests' fixtures).
"""
import base64
import copy
import json
import os
import tarfile
import uuid

import pytest
from kubernetes import client, utils

from cluster_helpers import GPU_NODES, CacheVolumes, delete_if_present, poll  # pylint: disable=import-error
from helpers import VENV_BIN, run_playbook  # pylint: disable=import-error
from nvidia_smi_recorded import derive, kernel_log_stand_ins, nvidia_smi_stand_in, read_recorded  # pylint: disable=import-error
from role_render import render  # pylint: disable=import-error
from scaling_harness import EXTERNAL_METRICS_API, KedaProcesses, PrometheusProcess, free_port  # pylint: disable=import-error
from vllm_exporter import ExporterFleet  # pylint: disable=import-error

RECORD_DIR = os.environ.get('LLMSCALE_DIAGNOSE_RECORD')
HF_TOKEN = 'hf_diagnoseTestToken' + uuid.uuid4().hex
PRODUCT = 'NVIDIA-H100-80GB-HBM3'
OTHER_PRODUCT = 'NVIDIA-H200'
SERVED = 'qwen3-0.6b'
SELECTOR = 'app.kubernetes.io/instance=vllm-server'
# kwok's simulated CPU usage of a pod (the cluster's metrics-usage.yaml), served to metrics-server.
KWOK_CPU_USAGE = 'kwok.x-k8s.io/usage-cpu'
# GPU Feature Discovery's driver label (what the analysis compares across replicas); the simulated nodes carry none.
DRIVER_LABEL = 'nvidia.com/cuda.driver-version.full'

# The vllm role's variables of each workload these tests make (rendered in one ansible-playbook run).
CASES = {
    'one_gpu': {},
    'two_replicas': {'vllm_replicas': 2},
    'eight_gpus': {'vllm_tensor_parallel_size': 8},
    'sixteen_gpus': {'vllm_tensor_parallel_size': 16},
    'a100': {'vllm_gpu_products': ['NVIDIA-A100-SXM4-80GB']},
    'two_products': {'vllm_gpu_products': [PRODUCT, OTHER_PRODUCT], 'vllm_tensor_parallel_size': 8, 'vllm_replicas': 3},
    'prewarmed': {'vllm_model_cache_prewarmed': True},
}


@pytest.fixture(scope='module')
def cache_volumes(api_client):
    # Retain volumes: a released one never binds again, so every claim of the module's tests needs its own (at most
    # seven land on one node).
    volumes = CacheVolumes(api_client, per_node=8)
    yield volumes
    volumes.delete()


@pytest.fixture(scope='module')
def statefulsets(cache_volumes):
    """{case: the StatefulSet the vllm role renders for it}."""
    names = sorted(CASES)
    base = {'vllm_served_model_name': SERVED, 'vllm_model_cache_storage_class': cache_volumes.name}
    result, rendered = render('vllm', 'render', [dict(base, **CASES[name]) for name in names], ['__vllm_plan'])
    assert result.rc == 0 and len(rendered) == len(names), result.describe()
    return dict((name, [obj for obj in facts['__vllm_plan']['objects'] if obj['kind'] == 'StatefulSet'][0])
                for name, facts in zip(names, rendered))


def create_statefulset(api_client, statefulsets, namespace, case, pod_annotations=None):
    """The role's StatefulSet of CASE in NAMESPACE (and annotations a test gives its pods: kwok's usage)."""
    statefulset = copy.deepcopy(statefulsets[case])
    statefulset['metadata']['namespace'] = namespace
    statefulset['spec']['template']['metadata'].setdefault('annotations', {}).update(pod_annotations or {})
    utils.create_from_dict(api_client, statefulset)
    return statefulset


def run_diagnose(kubeconfig, namespace, tmp_path, playbook='playbooks/diagnose.yml', check=False, extra=None,
                 inventory='inventories/local', env=None):
    report_dir = tmp_path / 'report'
    variables = {'llmscale_kubeconfig': kubeconfig, 'vllm_namespace': namespace, 'vllm_name': 'vllm-server',
                 'vllm_served_model_name': 'qwen3-0.6b', 'diagnose_report_dir': str(report_dir),
                 'diagnose_bundle_dir': str(tmp_path / 'bundle'), 'vllm_hf_token': HF_TOKEN}
    variables.update(extra or {})
    result = run_playbook(playbook, inventory=inventory, extra_vars=variables, check=check,
                          env=dict(env or {}, KUBECONFIG=kubeconfig))
    analysed = result.results_of('Analyse and write the report')
    if RECORD_DIR and analysed and not check:
        os.makedirs(RECORD_DIR, exist_ok=True)
        name = os.environ.get('PYTEST_CURRENT_TEST', 'run').split('::')[-1].split(' ')[0]
        # A test's later runs get -2, -3...: each run's facts are kept.
        path, count = os.path.join(RECORD_DIR, name + '.json'), 1
        while os.path.exists(path):
            count += 1
            path = os.path.join(RECORD_DIR, '%s-%d.json' % (name, count))
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(without_managed_fields(analysed[0]['invocation']['module_args']), handle, indent=1, sort_keys=True)
    return result, report_dir


def without_managed_fields(value):
    """The recorded facts without metadata.managedFields (the API server's bookkeeping; nothing reads it)."""
    if isinstance(value, dict):
        return dict((key, without_managed_fields(item)) for key, item in value.items() if key != 'managedFields')
    if isinstance(value, list):
        return [without_managed_fields(item) for item in value]
    return value


def findings_of(result):
    analysed = result.results_of('Analyse and write the report')
    assert analysed, result.describe()
    return analysed[0]['findings']


def by_id(findings):
    found = {}
    for item in findings:
        found.setdefault(item['id'], []).append(item)
    return found


def pods_of(core, namespace):
    return core.list_namespaced_pod(namespace, label_selector='app.kubernetes.io/name=vllm').items


def failed_scheduling(core, namespace):
    events = core.list_namespaced_event(namespace, field_selector='reason=FailedScheduling').items
    return [event for event in events if event.involved_object.name.startswith('vllm-server')]


def test_pod_asking_more_gpus_than_a_node_has(api_client, kubeconfig, namespace, tmp_path, statefulsets):
    core = client.CoreV1Api(api_client)
    create_statefulset(api_client, statefulsets, namespace, 'sixteen_gpus')
    poll(lambda: failed_scheduling(core, namespace), 180, what='FailedScheduling event')

    result, report_dir = run_diagnose(kubeconfig, namespace, tmp_path)
    assert result.rc == 0, result.describe()
    found = by_id(findings_of(result))
    pending = found['pod_pending_insufficient_gpu'][0]
    assert pending['object'] == 'Pod/%s/vllm-server-0' % namespace
    assert pending['severity'] == 'critical'
    assert 'Insufficient nvidia.com/gpu' in pending['evidence']
    assert 'asked 16 nvidia.com/gpu' in pending['evidence']
    assert 'gpu-node-0 (%s): 8 of 8 free' % PRODUCT in pending['evidence']
    assert 'more than any node has (8)' in pending['remedy'] and 'vllm_tensor_parallel_size' in pending['remedy']
    # One printed line per finding, and the three reports.
    printed = result.results_of('Print one line per finding')[0]['msg']
    assert len(printed) == len(findings_of(result))
    assert any(line.startswith('CRITICAL pod_pending_insufficient_gpu Pod/%s/vllm-server-0' % namespace) for line in printed)
    assert sorted(path.name for path in report_dir.iterdir()) == ['diagnose.html', 'diagnose.json', 'diagnose.md']
    assert json.loads((report_dir / 'diagnose.json').read_text())['findings'] == findings_of(result)

    failing, _report = run_diagnose(kubeconfig, namespace, tmp_path, extra={'diagnose_fail_on': 'critical'})
    assert failing.rc != 0
    assert any('diagnose_fail_on: critical' in message for message in failing.failure_messages()), failing.describe()


def test_claim_bound_to_the_other_nodes_volume(api_client, kubeconfig, namespace, tmp_path, statefulsets, cache_volumes):
    core = client.CoreV1Api(api_client)
    # The first replica's claim (volumeClaimTemplates model-cache: model-cache-vllm-server-0) is already bound to a
    # local volume of gpu-node-0, and gpu-node-0's GPUs are all taken by another pod.
    volume = cache_volumes.on_node('gpu-node-0')[0]
    claim = 'model-cache-vllm-server-0'
    core.create_namespaced_persistent_volume_claim(namespace, {
        'metadata': {'name': claim},
        'spec': {'accessModes': ['ReadWriteOnce'], 'storageClassName': cache_volumes.name, 'volumeName': volume,
                 'resources': {'requests': {'storage': '200Gi'}}}})
    core.create_namespaced_pod(namespace, {
        'metadata': {'name': 'gpu-batch-job'},
        'spec': {'nodeSelector': {'kubernetes.io/hostname': 'gpu-node-0'},
                 'tolerations': [{'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}],
                 'containers': [{'name': 'train', 'image': 'registry.invalid/train:1',
                                 'resources': {'requests': {'nvidia.com/gpu': '8'}, 'limits': {'nvidia.com/gpu': '8'}}}]}})
    poll(lambda: core.read_namespaced_pod('gpu-batch-job', namespace).spec.node_name, 120, what='batch pod bound')
    poll(lambda: core.read_namespaced_persistent_volume_claim(claim, namespace).status.phase == 'Bound', 120,
         what='claim bound')
    create_statefulset(api_client, statefulsets, namespace, 'eight_gpus')
    poll(lambda: failed_scheduling(core, namespace), 180, what='FailedScheduling event')

    result, _report = run_diagnose(kubeconfig, namespace, tmp_path)
    assert result.rc == 0, result.describe()
    found = by_id(findings_of(result))
    conflict = found['pod_pending_volume_node_conflict'][0]
    assert conflict['object'] == 'Pod/%s/vllm-server-0' % namespace
    assert "didn't match PersistentVolume's node affinity" in conflict['evidence']
    assert '%s bound to %s on gpu-node-0' % (claim, volume) in conflict['evidence']
    assert 'vllm_model_cache_size' in conflict['remedy']
    gpus = found['pod_pending_insufficient_gpu'][0]
    assert 'gpu-node-0 (%s): 0 of 8 free' % PRODUCT in gpus['evidence']
    assert 'gpu-node-1 (%s): 8 of 8 free' % PRODUCT in gpus['evidence']


def test_no_node_of_the_gpu_product(api_client, kubeconfig, namespace, tmp_path, statefulsets):
    core = client.CoreV1Api(api_client)
    create_statefulset(api_client, statefulsets, namespace, 'a100')
    poll(lambda: failed_scheduling(core, namespace), 180, what='FailedScheduling event')
    result, _report = run_diagnose(kubeconfig, namespace, tmp_path, extra={'vllm_gpu_products': ['NVIDIA-A100-SXM4-80GB']})
    assert result.rc == 0, result.describe()
    product = by_id(findings_of(result))['pod_pending_no_gpu_product'][0]
    assert product['object'] == 'Pod/%s/vllm-server-0' % namespace
    assert "didn't match Pod's node affinity/selector" in product['evidence']
    assert 'vllm_gpu_products: NVIDIA-A100-SXM4-80GB' in product['evidence']
    assert 'GPU products in the cluster: %s' % PRODUCT in product['evidence']
    assert 'vllm_gpu_products' in product['remedy']


@pytest.fixture
def tainted_gpu_nodes(api_client):
    """Both GPU nodes tainted for maintenance (this test's own taint), untainted afterwards."""
    core = client.CoreV1Api(api_client)
    taint = {'key': 'llmscale.test/maintenance', 'value': 'diagnose', 'effect': 'NoSchedule'}
    for node in GPU_NODES:
        taints = [t for t in (core.read_node(node).spec.taints or []) if t.key != taint['key']]
        core.patch_node(node, {'spec': {'taints': [api_client.sanitize_for_serialization(t) for t in taints] + [taint]}})
    yield taint
    for node in GPU_NODES:
        taints = [t for t in (core.read_node(node).spec.taints or []) if t.key != taint['key']]
        core.patch_node(node, {'spec': {'taints': [api_client.sanitize_for_serialization(t) for t in taints]}})


def test_taint_without_toleration(api_client, kubeconfig, namespace, tmp_path, statefulsets, tainted_gpu_nodes):
    core = client.CoreV1Api(api_client)
    create_statefulset(api_client, statefulsets, namespace, 'one_gpu')
    poll(lambda: failed_scheduling(core, namespace), 180, what='FailedScheduling event')
    # And a Prometheus URL where nothing listens: the check says so instead of failing the run.
    nothing = 'http://127.0.0.1:%d' % free_port()
    result, _report = run_diagnose(kubeconfig, namespace, tmp_path, extra={'diagnose_prometheus_url': nothing})
    assert result.rc == 0, result.describe()
    found = by_id(findings_of(result))
    taint = found['pod_pending_untolerated_taint'][0]
    assert taint['object'] == 'Pod/%s/vllm-server-0' % namespace
    assert 'untolerated taint' in taint['evidence']
    assert 'llmscale.test/maintenance=diagnose:NoSchedule' in taint['evidence']
    assert 'vllm_tolerations' in taint['remedy']
    assert 'pod_pending_no_gpu_product' not in found
    unreachable = found['prometheus_unreachable'][0]
    assert unreachable['object'] == 'Prometheus %s' % nothing
    assert 'Connection refused' in unreachable['evidence'], unreachable
    assert 'diagnose_prometheus_url' in unreachable['remedy']


def kubelet_status(core, namespace, pod_name, container_status):
    """Write a container status the way the kubelet reports it (see the module docstring)."""
    core.patch_namespaced_pod_status(pod_name, namespace, {'status': {'containerStatuses': [container_status]}})


def test_crash_loops_oom_startup_probe_and_an_hpa_without_metrics(api_client, kubeconfig, namespace, tmp_path,
                                                                  statefulsets):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(namespace, {'metadata': {'name': 'vllm-hf-token'},
                                              'stringData': {'HF_TOKEN': HF_TOKEN}})
    create_statefulset(api_client, statefulsets, namespace, 'two_replicas')
    utils.create_from_dict(api_client, {
        'apiVersion': 'autoscaling/v2', 'kind': 'HorizontalPodAutoscaler',
        'metadata': {'name': 'vllm-server', 'namespace': namespace},
        'spec': {'scaleTargetRef': {'apiVersion': 'apps/v1', 'kind': 'StatefulSet', 'name': 'vllm-server'},
                 'minReplicas': 2, 'maxReplicas': 4,
                 'metrics': [{'type': 'Pods', 'pods': {'metric': {'name': 'vllm_num_requests_waiting'},
                                                       'target': {'type': 'AverageValue', 'averageValue': '5'}}}]}})
    pods = poll(lambda: [pod for pod in pods_of(core, namespace) if pod.status.phase == 'Running'][:2]
                if len([pod for pod in pods_of(core, namespace) if pod.status.phase == 'Running']) >= 2 else None,
                180, what='two running vLLM pods')
    oom_pod, probe_pod = sorted(pod.metadata.name for pod in pods)
    started = pods[0].status.start_time.strftime('%Y-%m-%dT%H:%M:%SZ')
    kubelet_status(core, namespace, oom_pod, {
        'name': 'vllm', 'image': 'docker.io/vllm/vllm-openai:v0.33.0', 'imageID': '', 'ready': False, 'started': False,
        'restartCount': 3, 'state': {'waiting': {'reason': 'CrashLoopBackOff',
                                                 'message': 'back-off 40s restarting failed container=vllm pod=%s' % oom_pod}},
        'lastState': {'terminated': {'reason': 'OOMKilled', 'exitCode': 137, 'startedAt': started, 'finishedAt': started}}})
    kubelet_status(core, namespace, probe_pod, {
        'name': 'vllm', 'image': 'docker.io/vllm/vllm-openai:v0.33.0', 'imageID': '', 'ready': False, 'started': False,
        'restartCount': 1, 'state': {'running': {'startedAt': started}},
        'lastState': {'terminated': {'reason': 'Error', 'exitCode': 137, 'startedAt': started, 'finishedAt': started}}})
    core.create_namespaced_event(namespace, {
        'metadata': {'generateName': probe_pod + '.'},
        'involvedObject': {'kind': 'Pod', 'name': probe_pod, 'namespace': namespace, 'apiVersion': 'v1',
                           'fieldPath': 'spec.containers{vllm}'},
        'reason': 'Killing', 'message': 'Container vllm failed startup probe, will be restarted', 'type': 'Normal',
        'source': {'component': 'kubelet', 'host': 'gpu-node-0'}, 'count': 1,
        'firstTimestamp': started, 'lastTimestamp': started})
    autoscaling = client.AutoscalingV2Api(api_client)

    def hpa_inactive():
        conditions = autoscaling.read_namespaced_horizontal_pod_autoscaler('vllm-server', namespace).status.conditions or []
        return any(c.type == 'ScalingActive' and c.status == 'False' for c in conditions)
    poll(hpa_inactive, 180, what='HPA ScalingActive=False')

    apps = client.AppsV1Api(api_client)
    before = dict((pod.metadata.name, pod.metadata.resource_version) for pod in pods_of(core, namespace))
    statefulset_version = apps.read_namespaced_stateful_set('vllm-server', namespace).metadata.resource_version
    checked, _report = run_diagnose(kubeconfig, namespace, tmp_path, check=True)
    assert checked.rc == 0, checked.describe()
    assert checked.changed == 0
    assert dict((pod.metadata.name, pod.metadata.resource_version) for pod in pods_of(core, namespace)) == before
    assert apps.read_namespaced_stateful_set('vllm-server', namespace).metadata.resource_version == statefulset_version

    found = by_id(findings_of(checked))
    oom = found['container_oom_killed'][0]
    assert oom['object'] == 'Pod/%s/%s container vllm' % (namespace, oom_pod)
    assert 'OOMKilled (exit code 137)' in oom['evidence'] and 'vllm_memory_limit' in oom['remedy']
    probe = found['startup_probe_exhausted'][0]
    assert probe['object'] == 'Pod/%s/%s container vllm' % (namespace, probe_pod)
    assert probe['evidence'].startswith('Container vllm failed startup probe, will be restarted')
    assert 'vllm_startup_timeout_seconds' in probe['remedy']
    hpa = found['hpa_metric_unavailable'][0]
    assert 'ScalingActive=False FailedGetPodsMetric' in hpa['evidence']
    assert 'vllm_num_requests_waiting' in hpa['evidence']
    assert 'autoscaling_prometheus_adapter_install' in hpa['remedy']

    bundled, _report = run_diagnose(kubeconfig, namespace, tmp_path, playbook='playbooks/support_bundle.yml')
    assert bundled.rc == 0, bundled.describe()
    said = bundled.results_of('Say where the bundle is')[0]['msg']
    dest = said.split('support bundle: ', 1)[1].split(' (', 1)[0]
    with tarfile.open(dest) as archive:
        files = dict((member.name.split('/', 1)[1], archive.extractfile(member).read().decode())
                     for member in archive.getmembers())
    assert 'objects/Secret/%s/vllm-hf-token.yaml' % namespace in files
    assert json.loads(files['objects/Secret/%s/vllm-hf-token.yaml' % namespace])['data'] == {'HF_TOKEN': '<redacted>'}
    hpa_status = json.loads(files['objects/HorizontalPodAutoscaler/%s/vllm-server.yaml' % namespace])['status']
    assert any(c['type'] == 'ScalingActive' and c['status'] == 'False' for c in hpa_status['conditions'])
    assert 'objects/Node/gpu-node-0.yaml' in files
    assert any(path.startswith('objects/Event/%s/' % namespace) for path in files)
    assert 'logs/%s/vllm.current.log' % oom_pod in files and 'logs/%s/vllm.previous.log' % oom_pod in files
    assert 'diagnose.md' in files and 'container_oom_killed' in files['diagnose.md']
    assert json.loads(files['variables.yaml'])['vllm_hf_token'] == '<redacted>'
    everything = ''.join(files.values())
    assert HF_TOKEN not in everything
    assert base64.b64encode(HF_TOKEN.encode()).decode() not in everything
    assert HF_TOKEN not in bundled.raw_stdout


@pytest.fixture
def mixed_gpu_nodes(api_client):
    """gpu-node-1 relabelled as another GPU product, and the two nodes on different drivers (GFD's labels), restored
    afterwards."""
    core = client.CoreV1Api(api_client)
    before = dict((node, dict(core.read_node(node).metadata.labels)) for node in GPU_NODES)
    core.patch_node('gpu-node-0', {'metadata': {'labels': {DRIVER_LABEL: '580.95.05'}}})
    core.patch_node('gpu-node-1', {'metadata': {'labels': {DRIVER_LABEL: '570.172.08', 'nvidia.com/gpu.product': OTHER_PRODUCT}}})
    yield
    for node, labels in before.items():
        core.patch_node(node, {'metadata': {'labels': {DRIVER_LABEL: None, 'nvidia.com/gpu.product': labels['nvidia.com/gpu.product']}}})


def test_why_it_did_not_scale_and_why_replicas_differ(api_client, kubeconfig, namespace, tmp_path, statefulsets,
                                                      mixed_gpu_nodes):
    """Three replicas of 8 GPUs on two 8-GPU nodes of different products and drivers, each replica using 30 CPUs
    (kwok's simulated usage) of the 8 it requests, under a CPU HPA capped at 3: the third replica cannot be placed."""
    core = client.CoreV1Api(api_client)
    create_statefulset(api_client, statefulsets, namespace, 'two_products', pod_annotations={KWOK_CPU_USAGE: '30'})
    utils.create_from_dict(api_client, {
        'apiVersion': 'autoscaling/v2', 'kind': 'HorizontalPodAutoscaler',
        'metadata': {'name': 'vllm-server', 'namespace': namespace},
        'spec': {'scaleTargetRef': {'apiVersion': 'apps/v1', 'kind': 'StatefulSet', 'name': 'vllm-server'},
                 'minReplicas': 1, 'maxReplicas': 3,
                 'metrics': [{'type': 'Resource', 'resource': {'name': 'cpu', 'target': {
                     'type': 'Utilization', 'averageUtilization': 50}}}]}})
    custom = client.CustomObjectsApi(api_client)
    autoscaling = client.AutoscalingV2Api(api_client)

    def at_max():
        conditions = autoscaling.read_namespaced_horizontal_pod_autoscaler('vllm-server', namespace).status.conditions or []
        return any(c.type == 'ScalingLimited' and c.status == 'True' and c.reason == 'TooManyReplicas' for c in conditions)
    poll(lambda: len(custom.list_namespaced_custom_object('metrics.k8s.io', 'v1beta1', namespace, 'pods')['items']) >= 2,
         240, what='metrics-server usage of the two running replicas')
    poll(at_max, 240, what='HPA ScalingLimited=True TooManyReplicas')
    poll(lambda: failed_scheduling(core, namespace), 180, what='FailedScheduling of the third replica')

    result, _report = run_diagnose(kubeconfig, namespace, tmp_path, extra={
        'vllm_gpu_products': [PRODUCT, OTHER_PRODUCT], 'vllm_tensor_parallel_size': 8, 'autoscaling_mode': 'resource',
        'autoscaling_max_replicas': 3})
    assert result.rc == 0, result.describe()
    found = by_id(findings_of(result))
    at_maximum = found['replicas_at_max'][0]
    assert at_maximum['object'] == 'HorizontalPodAutoscaler/%s/vllm-server' % namespace
    assert at_maximum['evidence'].startswith('ScalingLimited=True TooManyReplicas: ')
    assert 'max 3' in at_maximum['evidence'] and 'autoscaling_max_replicas (now 3)' in at_maximum['remedy']
    # Parallel pod management: any of the three may be the one left Pending.
    nodes = dict((pod.metadata.name, pod.spec.node_name) for pod in pods_of(core, namespace))
    pending = [name for name, node in nodes.items() if not node]
    assert len(pending) == 1, nodes
    scale_up = found['scale_up_pending'][0]
    assert scale_up['evidence'] == 'desired 3 replicas (min 1, max 3); 1 of 3 serving pods Pending: %s' % pending[0]
    assert 'Insufficient nvidia.com/gpu' in found['pod_pending_insufficient_gpu'][0]['evidence']
    product = found['replica_product_mismatch'][0]
    assert product['object'] == 'StatefulSet/%s/vllm-server' % namespace
    assert sorted(product['evidence'].split(': ', 1)[1].split(', ')) == sorted(
        '%s=%s' % (name, PRODUCT if node == 'gpu-node-0' else OTHER_PRODUCT) for name, node in nodes.items() if node)
    assert 'vllm_gpu_products' in product['remedy']
    driver = found['replica_driver_mismatch'][0]
    assert '580.95.05' in driver['evidence'] and '570.172.08' in driver['evidence']
    cpu = found['cpu_request_too_low']
    assert sorted(item['object'] for item in cpu) == sorted('Pod/%s/%s' % (namespace, name) for name, node in nodes.items() if node)
    assert cpu[0]['evidence'].startswith('uses 30.') and cpu[0]['evidence'].endswith('requests 8.0')
    assert 'vllm_cpu_request (now 8) to about 30' in cpu[0]['remedy']


@pytest.fixture
def prometheus(kubeconfig, namespace, tmp_path):
    """A real Prometheus 3.16 on loopback discovering this namespace's vLLM pods (scaling_harness.PrometheusProcess)."""
    process = PrometheusProcess(kubeconfig, str(tmp_path), [namespace], scrape_interval='2s').start()
    yield process
    process.stop()


def test_the_autoscalers_metric_in_prometheus(api_client, kubeconfig, namespace, tmp_path, statefulsets, prometheus):
    """vLLM (a simulated exporter per Running pod) reports model_name qwen3-0.6b; an autoscaler configured for another
    name reads nothing, and KEDA is not installed."""
    create_statefulset(api_client, statefulsets, namespace, 'one_gpu')
    fleet = ExporterFleet(api_client, namespace, SELECTOR, SERVED)
    try:
        fleet.set_total_waiting(3)
        poll(lambda: prometheus.value('sum(vllm:num_requests_waiting{namespace="%s",model_name="%s"})' % (
            namespace, SERVED)) == 3, 180, what='Prometheus scraping the simulated vLLM exporter')

        wrong, _report = run_diagnose(kubeconfig, namespace, tmp_path, extra={
            'diagnose_prometheus_url': prometheus.url, 'autoscaling_served_model_name': 'qwen3-8b'})
        assert wrong.rc == 0, wrong.describe()
        found = by_id(findings_of(wrong))
        absent = found['metric_absent_in_prometheus'][0]
        assert absent['object'] == 'Prometheus %s' % prometheus.url
        assert 'vllm:num_requests_waiting{namespace="%s",model_name="qwen3-8b"} returned no series' % namespace in absent['evidence']
        assert 'for namespace/model_name: %s/%s' % (namespace, SERVED) in absent['evidence']
        assert 'autoscaling_served_model_name (now qwen3-8b)' in absent['remedy']
        assert 'vllm_served_model_name, now %s' % SERVED in absent['remedy']

        right, _report = run_diagnose(kubeconfig, namespace, tmp_path, extra={
            'diagnose_prometheus_url': prometheus.url, 'autoscaling_mode': 'keda'})
        assert right.rc == 0, right.describe()
        found = by_id(findings_of(right))
        assert 'metric_absent_in_prometheus' not in found and 'prometheus_unreachable' not in found, found
        keda = found['keda_missing'][0]
        assert keda['object'] == 'StatefulSet/%s/vllm-server' % namespace
        assert 'autoscaling_keda_install: true' in keda['remedy']
    finally:
        fleet.close()


@pytest.fixture(scope='module')
def scaled_object():
    """The ScaledObject the autoscaling role renders for the vllm role's StatefulSet (autoscaling_mode keda)."""
    result, (facts,) = render('autoscaling', 'render', [{'autoscaling_mode': 'keda', 'vllm_served_model_name': SERVED}],
                              ['__autoscaling_plan'])
    assert result.rc == 0, result.describe()
    return [obj for obj in facts['__autoscaling_plan']['objects'] if obj['kind'] == 'ScaledObject'][0]


@pytest.fixture
def keda_installed_not_running(api_client, kubeconfig, tmp_path):
    """KEDA's CRDs, RBAC and APIService from the real chart (scaling_harness.KedaProcesses.install), and neither its
    operator nor its metrics API server started: KEDA installed, its pods down."""
    keda = KedaProcesses(api_client, kubeconfig, str(tmp_path / 'keda')).install()
    yield keda
    keda.stop()


def test_keda_installed_and_not_running(api_client, kubeconfig, namespace, tmp_path, statefulsets, scaled_object,
                                        keda_installed_not_running):
    create_statefulset(api_client, statefulsets, namespace, 'one_gpu')
    custom = client.CustomObjectsApi(api_client)
    body = copy.deepcopy(scaled_object)
    body['metadata']['namespace'] = namespace
    custom.create_namespaced_custom_object('keda.sh', 'v1alpha1', namespace, 'scaledobjects', body)
    registration = client.ApiregistrationV1Api(api_client)
    poll(lambda: any(c.type == 'Available' and c.status == 'False'
                     for c in registration.read_api_service(EXTERNAL_METRICS_API).status.conditions or []),
         120, what='the external metrics APIService unavailable (no server behind it)')
    try:
        result, _report = run_diagnose(kubeconfig, namespace, tmp_path, extra={'autoscaling_mode': 'keda'})
        assert result.rc == 0, result.describe()
        found = by_id(findings_of(result))
        keda = found['keda_not_reconciling'][0]
        assert keda['object'] == 'ScaledObject/%s/vllm-server' % namespace
        assert keda['evidence'].startswith('the ScaledObject has no status conditions')
        assert '%s Available=False' % EXTERNAL_METRICS_API in keda['evidence']
        assert 'install KEDA' in keda['remedy']
        assert 'keda_missing' not in found and 'autoscaler_missing' not in found
    finally:
        # The operator would remove its finalizer; none runs, and the CRD goes with the fixture.
        delete_if_present(custom.delete_namespaced_custom_object, 'keda.sh', 'v1alpha1', namespace, 'scaledobjects',
                          'vllm-server')


@pytest.fixture
def gpu_node_hosts(tmp_path):
    """An inventory whose gpu_nodes are this machine twice, as gpu-node-0 and gpu-node-1 (local connection): each with
    its own model-cache root (Hugging Face hub layout) and an nvidia-smi stand-in printing recorded output, gpu-node-0's
    with its PCIe link down to x8; a kernel log without XIDs."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    kernel_log_stand_ins(bin_dir)
    narrow = derive(read_recorded('q.xml'), ('<current_link_width>16x</current_link_width>',
                                             '<current_link_width>8x</current_link_width>'))
    smi = {'gpu-node-0': nvidia_smi_stand_in(bin_dir / 'nvidia-smi-0', text=narrow),
           'gpu-node-1': nvidia_smi_stand_in(bin_dir / 'nvidia-smi-1', recorded='q.xml')}
    roots = dict((node, tmp_path / ('cache-' + node)) for node in GPU_NODES)
    (roots['gpu-node-0'] / 'huggingface' / 'hub' / 'models--Qwen--Qwen2.5-7B-Instruct' / 'snapshots').mkdir(parents=True)
    roots['gpu-node-1'].mkdir()
    hosts = dict((node, {'llmscale_node_name': node, 'model_cache_volume_root': str(roots[node]),
                         'diagnose_nvidia_smi': smi[node]}) for node in GPU_NODES)
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(json.dumps({'all': {
        'children': {'gpu_nodes': {'hosts': hosts}, 'k8s_api': {'hosts': {'localhost': {}}}},
        'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': os.path.join(VENV_BIN, 'python'),
                 'ansible_become': False}}}), encoding='utf-8')
    return {'inventory': str(inventory),
            'env': {'PATH': os.pathsep.join([str(bin_dir), VENV_BIN, os.environ.get('PATH', '')])}}


def test_offline_pod_on_a_node_without_the_model_and_a_narrow_pcie_link(api_client, kubeconfig, namespace, tmp_path,
                                                                        statefulsets, gpu_node_hosts):
    """The node side of diagnose.yml: the pre-warmed StatefulSet (HF_HUB_OFFLINE=1) on a node whose cache holds
    another model, and gpu_health's finding of gpu-node-0."""
    core = client.CoreV1Api(api_client)
    create_statefulset(api_client, statefulsets, namespace, 'prewarmed')
    pod = poll(lambda: [p for p in pods_of(core, namespace) if p.status.phase == 'Running'], 180, what='running pod')[0]
    result, _report = run_diagnose(kubeconfig, namespace, tmp_path, inventory=gpu_node_hosts['inventory'],
                                   env=gpu_node_hosts['env'], extra={'vllm_model_cache_prewarmed': True})
    assert result.rc == 0, result.describe()
    found = by_id(findings_of(result))
    missing = found['model_not_prewarmed'][0]
    assert missing['severity'] == 'critical'
    assert missing['object'] == 'Pod/%s/%s' % (namespace, pod.metadata.name)
    held = 'Qwen/Qwen2.5-7B-Instruct' if pod.spec.node_name == 'gpu-node-0' else 'no model'
    assert missing['evidence'].startswith('node %s holds %s in its model cache; the pod serves ' % (pod.spec.node_name, held))
    assert missing['evidence'].endswith(' with HF_HUB_OFFLINE=1')
    assert 'playbooks/prewarm.yml' in missing['remedy']
    pcie = found['gpu_health_pcie_width'][0]
    assert pcie['object'] == 'Node/gpu-node-0 GPU 0' and 'x8 of x16' in pcie['evidence']
    assert not [item for item in findings_of(result) if item['object'].startswith('Node/gpu-node-1')]
