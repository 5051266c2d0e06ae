"""The autoscaling loop closed on real parts: Prometheus 3.16, KEDA v2.20.2 and the HPA controller.

playbooks/serving.yml applies vLLM with `autoscaling_mode: keda` against the
local cluster; KEDA's ScaledObject queries a real Prometheus that discovers
the vLLM pods through the API server and scrapes a simulated vLLM exporter per
pod on loopback (tests/integration/scaling_harness.py, vllm_exporter.py). The
test drives the waiting queue and watches the real kube-controller-manager's
HPA (created by KEDA) scale the StatefulSet up onto both simulated GPU nodes,
each new replica with its own Bound claim on a local volume of its node, a
re-run of serving.yml leave the count alone, and the count fall back after the
stabilization window without flapping; the monitoring role's queue-backlog
alert fires and resolves in the same Prometheus.

The windows are short so that the test takes a few minutes; the alert rules
are the monitoring role's, with only their `for` shortened (ALERT_FOR).
"""
import os
import time
import uuid

import pytest
from kubernetes import client

from cluster_helpers import GPU_NODES, CacheVolumes, delete_if_present, poll  # pylint: disable=import-error
from helpers import REPO_ROOT, run_playbook  # pylint: disable=import-error
from scaling_harness import PrometheusProcess, ReplicaRecorder, direction_changes  # pylint: disable=import-error
from vllm_exporter import ExporterFleet  # pylint: disable=import-error

INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'local')
MODEL = 'qwen3-loop-test'
TARGET = 5
MAX_REPLICAS = 4
# 4 GPUs a replica: four replicas need both 8-GPU nodes.
TENSOR_PARALLEL = 4
SCALE_DOWN_WINDOW_S = 60
# The HPA controller evaluates every 15 s (kube-controller-manager's default).
HPA_SYNC_S = 15
ALERT_FOR = '20s'
BACKLOG_ALERT = 'VLLMRequestQueueBacklog'
SELECTOR = 'app.kubernetes.io/instance=vllm-server'
# Generous: a loaded 2-core machine.
DEADLINE_S = 300


def loop_variables(prometheus_port):
    return {
        'autoscaling_mode': 'keda',
        'autoscaling_min_replicas': 1,
        'autoscaling_max_replicas': MAX_REPLICAS,
        'autoscaling_target_waiting_requests': TARGET,
        'autoscaling_keda_polling_interval': 5,
        'autoscaling_keda_cooldown_period': 30,
        'autoscaling_scale_up_stabilization_seconds': 0,
        'autoscaling_scale_up_period_seconds': 15,
        'autoscaling_scale_down_stabilization_seconds': SCALE_DOWN_WINDOW_S,
        'autoscaling_scale_down_period_seconds': 15,
        # KEDA's operator runs on this machine: it reaches the harness's Prometheus on loopback.
        'autoscaling_prometheus_url': 'http://127.0.0.1',
        'autoscaling_prometheus_port': prometheus_port,
    }


def _scaled_objects(api_client, namespace):
    return client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        'keda.sh', 'v1alpha1', namespace, 'scaledobjects')['items']


def gpus_held_by_others(api_client, namespace):
    """Pods outside NAMESPACE holding GPUs on the GPU nodes (a leftover `make site`, another test's workload)."""
    pods = client.CoreV1Api(api_client).list_pod_for_all_namespaces(field_selector='status.phase!=Succeeded').items
    return ['%s/%s on %s' % (pod.metadata.namespace, pod.metadata.name, pod.spec.node_name) for pod in pods
            if pod.metadata.namespace != namespace and pod.spec.node_name in GPU_NODES
            and any('nvidia.com/gpu' in ((container.resources and container.resources.limits) or {})
                    for container in pod.spec.containers)]


@pytest.fixture(scope='module')
def loop(api_client, kubeconfig, keda_local, tmp_path_factory):
    """vLLM served in keda mode, with Prometheus and one simulated exporter per Running pod."""
    namespace = 'loop-' + uuid.uuid4().hex[:6]
    # 4 replicas x 4 GPUs fill both 8-GPU nodes: every GPU must be free (pods of deleted namespaces go in seconds).
    try:
        poll(lambda: not gpus_held_by_others(api_client, namespace), 120, what='all simulated GPUs free')
    except AssertionError:
        pytest.fail('the loop needs all 16 simulated GPUs; held by: %s' % gpus_held_by_others(api_client, namespace))
    # Room for every replica's own cache claim on its node (what nvme_storage makes on real nodes).
    volumes = CacheVolumes(api_client, per_node=MAX_REPLICAS // len(GPU_NODES))
    prometheus = PrometheusProcess(kubeconfig, str(tmp_path_factory.mktemp('loop')), [namespace],
                                   scrape_interval='5s', evaluation_interval='5s', alert_for=ALERT_FOR)
    fleet = ExporterFleet(api_client, namespace, SELECTOR, MODEL)
    variables = dict({
        'llmscale_gpu_operator_enabled': False,
        'llmscale_monitoring_enabled': False,
        'vllm_namespace': namespace,
        'vllm_served_model_name': MODEL,
        'vllm_replicas': 1,
        'vllm_tensor_parallel_size': TENSOR_PARALLEL,
        'vllm_wait_timeout': 600,
        'vllm_model_cache_storage_class': volumes.name,
    }, **loop_variables(prometheus.port))
    env = {'KUBECONFIG': kubeconfig}
    try:
        prometheus.start()
        result = run_playbook('playbooks/serving.yml', inventory=INVENTORY, extra_vars=variables, env=env,
                              timeout=1200)
        assert result.rc == 0, result.describe()
        yield {'namespace': namespace, 'prometheus': prometheus, 'fleet': fleet, 'keda': keda_local,
               'api': api_client, 'variables': variables, 'env': env, 'volumes': volumes}
    finally:
        fleet.close()
        _delete_namespace_and_scaled_objects(api_client, namespace)
        volumes.delete()
        prometheus.stop()


def _delete_namespace_and_scaled_objects(api_client, namespace):
    # The operator must still run to take its finalizer off (and delete its HPA).
    custom = client.CustomObjectsApi(api_client)
    for scaled_object in _scaled_objects(api_client, namespace):
        delete_if_present(custom.delete_namespaced_custom_object, 'keda.sh', 'v1alpha1', namespace,
                          'scaledobjects', scaled_object['metadata']['name'])
    poll(lambda: not _scaled_objects(api_client, namespace), 180, what='the ScaledObjects to be deleted')
    core = client.CoreV1Api(api_client)
    delete_if_present(core.delete_namespace, namespace)
    poll(lambda: namespace not in {n.metadata.name for n in core.list_namespace().items}, 300,
         what='namespace %s to be deleted' % namespace)


def running_pods(api_client, namespace):
    pods = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector=SELECTOR).items
    return [pod for pod in pods if pod.status.phase == 'Running' and pod.metadata.deletion_timestamp is None]


def test_direction_changes_counts_turns():
    assert direction_changes([1, 2, 4, 4, 2, 1]) == 1
    assert direction_changes([1, 2, 1, 2, 1]) == 3
    assert direction_changes([4, 4, 4]) == 0


def test_prometheus_scrapes_only_loopback_with_the_servicemonitor_labels(loop):
    prometheus, namespace = loop['prometheus'], loop['namespace']
    pod = poll(lambda: running_pods(loop['api'], namespace), DEADLINE_S, what='a Running vLLM pod')[0]

    def scraped():
        active = prometheus.targets()['activeTargets']
        return active if active and all(target['health'] == 'up' for target in active) else None

    active = poll(scraped, DEADLINE_S, interval=3, what='Prometheus to scrape the vLLM pod')
    for target in active:
        assert target['scrapeUrl'].startswith('http://127.0.0.1:'), target
        assert target['labels']['instance'].startswith('127.0.0.1:'), target
        assert (target['labels']['job'], target['labels']['namespace']) == ('vllm', namespace), target
    assert {target['labels']['pod'] for target in active} == {pod.metadata.name}
    # Discovery did see the pod's 10.0.0.x address: the relabeling is what keeps it unscraped.
    assert any(target['discoveredLabels']['__address__'].startswith(pod.status.pod_ip) for target in active)
    series = poll(lambda: prometheus.query('vllm:num_requests_waiting{namespace="%s"}' % namespace), DEADLINE_S,
                  what='the queue series')
    assert {key: series[0]['metric'][key] for key in ('job', 'namespace', 'pod', 'model_name', 'engine')} == {
        'job': 'vllm', 'namespace': namespace, 'pod': pod.metadata.name, 'model_name': MODEL, 'engine': '0'}
    metadata = prometheus.api('/api/v1/metadata')
    assert metadata['vllm:num_requests_waiting'][0]['type'] == 'gauge'
    assert metadata['vllm:prompt_tokens_total'][0]['type'] == 'counter'
    assert metadata['vllm:time_to_first_token_seconds'][0]['type'] == 'histogram'
    # The monitoring role's rules loaded, and VLLMNoTargetUp silent while the pod is scraped.
    rules = [rule['name'] for group in prometheus.api('/api/v1/rules')['groups'] for rule in group['rules']]
    assert BACKLOG_ALERT in rules and 'VLLMNoTargetUp' in rules
    assert prometheus.value('count(up{job="vllm"} == 1)') == 1


def test_keda_serves_the_queue_through_the_external_metrics_api(loop):
    namespace, fleet, keda = loop['namespace'], loop['fleet'], loop['keda']
    scaled_object = poll(lambda: _scaled_objects(loop['api'], namespace), DEADLINE_S, what='the ScaledObject')[0]
    assert scaled_object['spec']['triggers'][0]['metadata']['serverAddress'] == 'http://127.0.0.1:%d' % loop['prometheus'].port
    metric = poll(lambda: (scaled_object_status(loop['api'], namespace).get('externalMetricNames') or [None])[0],
                  DEADLINE_S, what='KEDA to name its external metric')
    fleet.set_total_waiting(3)
    try:
        # Below the target of 5 per replica: a value, and no reason to scale.
        poll(lambda: keda.external_metric(namespace, metric, 'vllm-server') == [3.0], DEADLINE_S, interval=3,
             what='external.metrics.k8s.io to answer 3 waiting requests')
    finally:
        fleet.set_total_waiting(0)
    poll(lambda: keda.external_metric(namespace, metric, 'vllm-server') == [0.0], DEADLINE_S, interval=3,
         what='the external metric back at 0')


def scaled_object_status(api_client, namespace):
    return client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        'keda.sh', 'v1alpha1', namespace, 'scaledobjects', 'vllm-server').get('status', {})


def test_the_queue_scales_vllm_out_over_both_gpu_nodes_and_back_without_flapping(loop):
    api, namespace, fleet, prometheus = loop['api'], loop['namespace'], loop['fleet'], loop['prometheus']
    autoscaling = client.AutoscalingV2Api(api)
    hpa = poll(lambda: autoscaling.read_namespaced_horizontal_pod_autoscaler('keda-hpa-vllm-server', namespace),
               DEADLINE_S, what="KEDA's HPA")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, MAX_REPLICAS)
    assert hpa.spec.behavior.scale_down.stabilization_window_seconds == SCALE_DOWN_WINDOW_S
    poll(lambda: len(running_pods(api, namespace)) == 1 and prometheus.value(
        'sum(vllm:num_requests_waiting{namespace="%s"})' % namespace) == 0, DEADLINE_S, what='one idle replica')
    recorder = ReplicaRecorder(api, namespace, kind='StatefulSet')
    try:
        # Queue above target: 20 waiting requests, 5 per replica wanted -> 4 replicas.
        crossed = time.monotonic()
        fleet.set_total_waiting(4 * TARGET)
        poll(lambda: recorder.first(crossed, lambda replicas, desired: (desired or 0) > 1), DEADLINE_S,
             what='the HPA to decide to scale up')

        def all_running():
            running = running_pods(api, namespace)
            return running if len(running) == MAX_REPLICAS else None
        pods = poll(all_running, DEADLINE_S, what='%d Running replicas' % MAX_REPLICAS)
        scaled_up = time.monotonic()
        assert {pod.spec.node_name for pod in pods} == set(GPU_NODES), [pod.spec.node_name for pod in pods]
        core = client.CoreV1Api(api)
        for pod in pods:
            assert pod.spec.containers[0].resources.limits['nvidia.com/gpu'] == str(TENSOR_PARALLEL)
            # Each replica its own claim, Bound to a volume of the node the pod runs on.
            (claim_name,) = [volume.persistent_volume_claim.claim_name for volume in pod.spec.volumes
                             if volume.persistent_volume_claim]
            claim = core.read_namespaced_persistent_volume_claim(claim_name, namespace)
            assert claim.status.phase == 'Bound', claim.status
            assert loop['volumes'].node_of(claim.spec.volume_name) == pod.spec.node_name, (claim_name, pod.spec.node_name)

        # The backlog alert fires (for: ALERT_FOR) while the queue stays high; replicas hold at the maximum.
        firing = poll(lambda: [a for a in prometheus.alerts(BACKLOG_ALERT) if a['state'] == 'firing'], DEADLINE_S,
                      interval=3, what='%s to fire' % BACKLOG_ALERT)
        assert (firing[0]['labels']['namespace'], firing[0]['labels']['model_name']) == (namespace, MODEL)

        # A converge in the middle of the burst leaves the autoscaler's count alone.
        rerun = run_playbook('playbooks/serving.yml', inventory=INVENTORY, extra_vars=loop['variables'],
                             env=loop['env'], timeout=900)
        applied = [obj for result in rerun.results_of('Apply vLLM, its autoscaler and network policies')
                   for obj in result.get('objects', []) if obj.get('action') != 'unchanged']
        assert rerun.rc == 0 and rerun.changed == 0, (applied, rerun.describe())
        time.sleep(HPA_SYNC_S)
        assert set(recorder.replicas_between(scaled_up)) == {MAX_REPLICAS}, recorder.samples
        assert len(running_pods(api, namespace)) == MAX_REPLICAS

        # The queue drains: the alert resolves, and replicas fall only after the stabilization window.
        dropped = time.monotonic()
        fleet.set_total_waiting(0)
        poll(lambda: not prometheus.alerts(BACKLOG_ALERT), DEADLINE_S, interval=3, what='%s to resolve' % BACKLOG_ALERT)
        first_down = poll(lambda: recorder.first(dropped, lambda replicas, _desired: replicas < MAX_REPLICAS),
                          DEADLINE_S, what='the scale-down')
        assert first_down - dropped >= SCALE_DOWN_WINDOW_S - HPA_SYNC_S, (first_down - dropped, recorder.samples)
        poll(lambda: len(running_pods(api, namespace)) == 1 and set(recorder.replicas_between(time.monotonic() - 3)) == {1},
             DEADLINE_S + SCALE_DOWN_WINDOW_S, what='back to one replica')
    finally:
        recorder.stop()
    counts = recorder.replicas_between(crossed)
    # Up once, down once: no flapping.
    assert counts[0] == 1 and max(counts) == MAX_REPLICAS and counts[-1] == 1, counts
    assert direction_changes(counts) == 1, counts
