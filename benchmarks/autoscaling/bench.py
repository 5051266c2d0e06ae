"""Spike-to-serving on the local cluster: seconds from the vLLM queue crossing the autoscaling
target to KEDA/HPA's scale-up decision and to the new pods Running, and the flapping count over a
steady phase, for the autoscaling role's defaults and for a fast profile.

    .venv/bin/python benchmarks/autoscaling/bench.py [--profiles defaults,fast] [--steady 120]

Uses the test harness (tests/integration/scaling_harness.py): KEDA v2.20.2 and
Prometheus 3.16 as local processes, one simulated vLLM exporter per pod on
loopback. Prints one JSON document (also written to benchmarks/results/). See README.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import yaml
from kubernetes import client, config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(REPO_ROOT, 'tests'), os.path.join(REPO_ROOT, 'tests', 'integration')]
# pylint: disable=import-error,wrong-import-position
from helpers import run_playbook  # noqa: E402
from cluster_helpers import GPU_NODES, CacheVolumes, delete_if_present, poll  # noqa: E402
from scaling_harness import KedaProcesses, PrometheusProcess, ReplicaRecorder, direction_changes  # noqa: E402
from vllm_exporter import ExporterFleet  # noqa: E402
# pylint: enable=import-error,wrong-import-position

INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'local')
AUTOSCALING_DEFAULTS = os.path.join(REPO_ROOT, 'roles', 'autoscaling', 'defaults', 'main.yml')
MONITORING_DEFAULTS = os.path.join(REPO_ROOT, 'roles', 'monitoring', 'defaults', 'main.yml')
SELECTOR = 'app.kubernetes.io/instance=vllm-server'
MODEL = 'qwen3-bench'
MAX_REPLICAS = 4
TENSOR_PARALLEL = 4


def _load(path):
    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def profiles():
    """Scrape interval and the role variables of each profile (defaults: as the roles ship)."""
    defaults, monitoring = _load(AUTOSCALING_DEFAULTS), _load(MONITORING_DEFAULTS)
    keys = ['autoscaling_keda_polling_interval', 'autoscaling_scale_up_stabilization_seconds',
            'autoscaling_scale_up_period_seconds', 'autoscaling_scale_up_percent',
            'autoscaling_scale_down_stabilization_seconds', 'autoscaling_target_waiting_requests']
    return {
        'defaults': {'scrape_interval': monitoring['monitoring_vllm_scrape_interval'],
                     'variables': {key: defaults[key] for key in keys}},
        'fast': {'scrape_interval': '5s', 'variables': {
            'autoscaling_keda_polling_interval': 5, 'autoscaling_scale_up_stabilization_seconds': 0,
            'autoscaling_scale_up_period_seconds': 15, 'autoscaling_scale_up_percent': 100,
            'autoscaling_scale_down_stabilization_seconds': 60,
            'autoscaling_target_waiting_requests': defaults['autoscaling_target_waiting_requests']}},
    }


def cluster_kubeconfig():
    path = os.environ.get('KUBECONFIG', '')
    if path and os.path.isfile(path):
        return path
    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'cluster.sh'), 'up'], capture_output=True,
                          text=True, check=True, cwd=REPO_ROOT)
    return proc.stdout.strip().splitlines()[-1].split('=', 1)[1]


def measure(api, kubeconfig, workdir, name, profile, steady_s):
    """One profile: deploy, spike the queue, time the decision and the Running pods, then count flaps."""
    namespace = 'bench-as-' + uuid.uuid4().hex[:6]
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    target = int(profile['variables']['autoscaling_target_waiting_requests'])
    # One node-local volume per replica, as nvme_storage makes them: each replica claims its own.
    volumes = CacheVolumes(api, per_node=MAX_REPLICAS // len(GPU_NODES))
    prometheus = PrometheusProcess(kubeconfig, os.path.join(workdir, name), [namespace],
                                   scrape_interval=profile['scrape_interval'],
                                   evaluation_interval=profile['scrape_interval']).start()
    fleet = ExporterFleet(api, namespace, SELECTOR, MODEL)
    recorder = None
    try:
        variables = dict(profile['variables'], **{
            'llmscale_gpu_operator_enabled': False, 'llmscale_monitoring_enabled': False,
            'vllm_namespace': namespace, 'vllm_served_model_name': MODEL, 'vllm_replicas': 1,
            'vllm_tensor_parallel_size': TENSOR_PARALLEL, 'vllm_model_cache_storage_class': volumes.name,
            'autoscaling_mode': 'keda', 'autoscaling_min_replicas': 1, 'autoscaling_max_replicas': MAX_REPLICAS,
            'autoscaling_prometheus_url': 'http://127.0.0.1', 'autoscaling_prometheus_port': prometheus.port})
        result = run_playbook('playbooks/serving.yml', inventory=INVENTORY, extra_vars=variables,
                              env={'KUBECONFIG': kubeconfig}, timeout=1200)
        if result.rc != 0:
            raise RuntimeError(result.describe())
        autoscaling = client.AutoscalingV2Api(api)
        poll(lambda: autoscaling.read_namespaced_horizontal_pod_autoscaler('keda-hpa-vllm-server', namespace), 300,
             what="KEDA's HPA")
        poll(lambda: prometheus.value('count(up{job="vllm"} == 1)') == 1, 300, what='the first pod scraped')
        recorder = ReplicaRecorder(api, namespace, kind='StatefulSet')
        time.sleep(5)
        crossed = time.monotonic()
        fleet.set_total_waiting(MAX_REPLICAS * target)
        decided = poll(lambda: recorder.first(crossed, lambda _r, desired: (desired or 0) > 1), 600,
                       what='the scale-up decision')
        seen = poll(lambda: prometheus.value('sum(vllm:num_requests_waiting{namespace="%s"})' % namespace), 600,
                    what='Prometheus to see the spike')
        running_at = poll(lambda: time.monotonic() if _running(core, namespace) == MAX_REPLICAS else None, 900,
                          what='%d Running pods' % MAX_REPLICAS)
        steady_start = time.monotonic()
        time.sleep(steady_s)
        steady = recorder.replicas_between(steady_start)
        return {
            'profile': name, 'scrape_interval': profile['scrape_interval'], 'variables': profile['variables'],
            'queue_seen_by_prometheus': seen,
            'seconds_crossing_to_decision': round(decided - crossed, 1),
            'seconds_crossing_to_pods_running': round(running_at - crossed, 1),
            'steady_seconds': steady_s, 'steady_replicas': sorted(set(steady)),
            # Any change of the replica count while the queue holds still is a flap.
            'steady_replica_changes': sum(1 for a, b in zip(steady, steady[1:]) if a != b),
            'steady_direction_changes': direction_changes(steady),
            'nodes_used': sorted({pod.spec.node_name for pod in core.list_namespaced_pod(
                namespace, label_selector=SELECTOR).items if pod.status.phase == 'Running'}),
        }
    finally:
        if recorder is not None:
            recorder.stop()
        fleet.close()
        for item in custom.list_namespaced_custom_object('keda.sh', 'v1alpha1', namespace, 'scaledobjects')['items']:
            delete_if_present(custom.delete_namespaced_custom_object, 'keda.sh', 'v1alpha1', namespace, 'scaledobjects',
                              item['metadata']['name'])
        poll(lambda: not custom.list_namespaced_custom_object('keda.sh', 'v1alpha1', namespace, 'scaledobjects')['items'],
             180, what='the ScaledObject deleted')
        delete_if_present(core.delete_namespace, namespace)
        poll(lambda: namespace not in {n.metadata.name for n in core.list_namespace().items}, 300,
             what='namespace %s deleted' % namespace)
        volumes.delete()
        prometheus.stop()


def _running(core, namespace):
    return len([pod for pod in core.list_namespaced_pod(namespace, label_selector=SELECTOR).items
                if pod.status.phase == 'Running' and pod.metadata.deletion_timestamp is None])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--profiles', default='defaults,fast')
    parser.add_argument('--steady', type=int, default=120, help='seconds of steady queue to count flaps over')
    args = parser.parse_args()
    kubeconfig = cluster_kubeconfig()
    api = config.new_client_from_config(config_file=kubeconfig)
    workdir = tempfile.mkdtemp(prefix='llmscale-bench-autoscaling-')
    keda = KedaProcesses(api, kubeconfig, os.path.join(workdir, 'keda'))
    results = []
    try:
        keda.install().start()
        for name in args.profiles.split(','):
            results.append(measure(api, kubeconfig, workdir, name, profiles()[name], args.steady))
    finally:
        keda.stop()
    report = {'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'max_replicas': MAX_REPLICAS,
              'tensor_parallel': TENSOR_PARALLEL, 'results': results}
    out_dir = os.path.join(REPO_ROOT, 'benchmarks', 'results')
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'autoscaling-%d.json' % time.time()), 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == '__main__':
    main()
