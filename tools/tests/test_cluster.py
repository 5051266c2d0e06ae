"""The test harness: the local cluster of scripts/cluster.sh is a real Kubernetes control plane, not a mock.

These test the harness, not the collection (scripts/test.sh runs them with the
integration tests, which rely on it).

Each test drives a real component: the scheduler (GPU placement, 9-GPU pod),
admission (PodSecurity), kubernetes.core against the API server (idempotence),
and metrics-server with the HPA controller (CPU utilisation from kwok's
simulated resource usage).
"""
import json
import os
import signal
import subprocess
import textwrap

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_helpers import poll  # pylint: disable=import-error
from helpers import run_playbook  # pylint: disable=import-error

GPU_NODES = {'gpu-node-0', 'gpu-node-1'}
PAUSE_IMAGE = 'registry.k8s.io/pause:3.10'  # never pulled: kwok only simulates containers
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS_DIR = os.path.join(REPO_ROOT, 'tools')


def _pinned_kubernetes_version():
    with open(os.path.join(TOOLS_DIR, 'versions.env'), encoding='utf-8') as versions:
        for line in versions:
            if line.startswith('KUBERNETES_VERSION='):
                return line.split('=', 1)[1].strip()
    raise AssertionError('KUBERNETES_VERSION missing from tools/versions.env')


def _container(name='main', requests=None, limits=None, security_context=None):
    return client.V1Container(
        name=name, image=PAUSE_IMAGE,
        resources=client.V1ResourceRequirements(requests=requests, limits=limits),
        security_context=security_context)


def _deployment(name, replicas, container, annotations=None):
    labels = {'app': name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels, annotations=annotations),
                spec=client.V1PodSpec(containers=[container]))))


def _condition(conditions, kind):
    return next((c for c in conditions or [] if c.type == kind), None)


def test_kubeconfig_command_prints_the_running_clusters_kubeconfig(kubeconfig):
    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'cluster.sh'), 'kubeconfig'],
                          capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == kubeconfig + '\n'


def test_kubeconfig_command_fails_for_a_cluster_that_does_not_run(tmp_path):
    # An empty state folder: no cluster was ever created there.
    env = dict(os.environ, LLMSCALE_KWOK_WORKDIR=str(tmp_path))
    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'cluster.sh'), 'kubeconfig'], env=env,
                          capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT)
    assert proc.returncode == 1
    assert proc.stdout == ''
    assert 'is not serving' in proc.stderr


def test_api_server_reports_the_pinned_version(api_client):
    assert client.VersionApi(api_client).get_code().git_version == _pinned_kubernetes_version()


def test_nodes_are_the_simulated_gpu_and_cpu_nodes(api_client):
    nodes = {node.metadata.name: node for node in client.CoreV1Api(api_client).list_node().items}
    assert set(nodes) == GPU_NODES | {'cpu-node-0'}
    for name in GPU_NODES:
        node = nodes[name]
        assert node.status.allocatable['nvidia.com/gpu'] == '8'
        assert node.status.capacity['nvidia.com/gpu'] == '8'
        assert node.metadata.labels['nvidia.com/gpu.product'] == 'NVIDIA-H100-80GB-HBM3'
        assert node.metadata.labels['nvidia.com/gpu.count'] == '8'
        assert node.metadata.labels['nvidia.com/gpu.memory'] == '81559'
        assert not node.spec.taints
    assert 'nvidia.com/gpu' not in nodes['cpu-node-0'].status.allocatable
    spot = {name for name, node in nodes.items() if node.metadata.labels.get('node.kubernetes.io/capacity-type') == 'spot'}
    assert spot == {'gpu-node-1'}


def test_gpu_deployment_becomes_available_on_gpu_nodes_only(api_client, namespace):
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    replicas = 4
    gpu = {'nvidia.com/gpu': '1'}
    apps.create_namespaced_deployment(namespace, _deployment(
        'gpu-workload', replicas, _container(requests=dict(gpu, cpu='100m'), limits=gpu)))

    def available():
        status = apps.read_namespaced_deployment_status('gpu-workload', namespace).status
        condition = _condition(status.conditions, 'Available')
        return status.available_replicas == replicas and condition is not None and condition.status == 'True'

    poll(available, 240, what='deployment gpu-workload Available')
    pods = core.list_namespaced_pod(namespace, label_selector='app=gpu-workload').items
    placed = {pod.metadata.name: pod.spec.node_name for pod in pods if pod.status.phase == 'Running'}
    assert len(placed) == replicas, placed
    assert set(placed.values()) <= GPU_NODES, placed


def test_pod_asking_for_nine_gpus_stays_pending_unschedulable(api_client, namespace):
    core = client.CoreV1Api(api_client)
    nine = {'nvidia.com/gpu': '9'}
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name='too-many-gpus'),
        spec=client.V1PodSpec(containers=[_container(requests=nine, limits=nine)])))

    def unschedulable():
        pod = core.read_namespaced_pod_status('too-many-gpus', namespace)
        scheduled = _condition(pod.status.conditions, 'PodScheduled')
        return pod if scheduled is not None and scheduled.status == 'False' and scheduled.reason == 'Unschedulable' else None

    pod = poll(unschedulable, 180, what='pod too-many-gpus to be marked Unschedulable')
    assert pod.status.phase == 'Pending'
    assert not pod.spec.node_name
    assert 'nvidia.com/gpu' in _condition(pod.status.conditions, 'PodScheduled').message


def test_restricted_namespace_rejects_privileged_pod_at_admission(api_client):
    core = client.CoreV1Api(api_client)
    name = 'restricted-' + os.urandom(4).hex()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={'pod-security.kubernetes.io/enforce': 'restricted'})))
    try:
        with pytest.raises(ApiException) as rejected:
            core.create_namespaced_pod(name, client.V1Pod(
                metadata=client.V1ObjectMeta(name='privileged'),
                spec=client.V1PodSpec(containers=[_container(
                    security_context=client.V1SecurityContext(privileged=True))])))
        assert rejected.value.status == 403
        assert 'violates PodSecurity "restricted' in json.loads(rejected.value.body)['message']
        # The namespace itself works: a pod that meets "restricted" is admitted.
        core.create_namespaced_pod(name, client.V1Pod(
            metadata=client.V1ObjectMeta(name='compliant'),
            spec=client.V1PodSpec(
                security_context=client.V1PodSecurityContext(
                    run_as_non_root=True, run_as_user=65532,
                    seccomp_profile=client.V1SeccompProfile(type='RuntimeDefault')),
                containers=[_container(security_context=client.V1SecurityContext(
                    allow_privilege_escalation=False,
                    capabilities=client.V1Capabilities(drop=['ALL'])))])))
        assert core.read_namespaced_pod('compliant', name).metadata.name == 'compliant'
    finally:
        core.delete_namespace(name)


def test_kubernetes_core_apply_reports_changed_only_the_first_time(kubeconfig, api_client, namespace, tmp_path):
    playbook = tmp_path / 'apply.yml'
    playbook.write_text(textwrap.dedent('''\
        - name: Apply one object through kubernetes.core
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Apply the ConfigMap
              kubernetes.core.k8s:
                kubeconfig: "{{ kubeconfig }}"
                state: present
                apply: true
                definition:
                  apiVersion: v1
                  kind: ConfigMap
                  metadata:
                    name: idempotence
                    namespace: "{{ namespace }}"
                  data:
                    model: llama
        '''))
    extra_vars = {'kubeconfig': kubeconfig, 'namespace': namespace}
    first = run_playbook(str(playbook), extra_vars=extra_vars, timeout=600)
    assert first.rc == 0 and first.failed == 0, first.describe()
    assert first.changed == 1, first.describe()
    config_map = client.CoreV1Api(api_client).read_namespaced_config_map('idempotence', namespace)
    assert config_map.data == {'model': 'llama'}
    second = run_playbook(str(playbook), extra_vars=extra_vars, timeout=600)
    assert second.rc == 0 and second.failed == 0, second.describe()
    assert second.changed == 0, second.describe()


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): only a running process counts.
    with open(f'/proc/{pid}/stat', encoding='ascii') as stat:
        return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'


def test_cluster_up_starts_an_exited_metrics_server_again(kubeconfig, api_client):
    """kwokctl never restarts a component; metrics-server exits when it starts
    before the API server listens (it did so in CI). `cluster.sh up` must
    notice and start it again, in a way `kwokctl stop` can still stop."""
    pid_file = os.path.join(os.path.dirname(kubeconfig), 'pids', 'metrics-server.pid')
    with open(pid_file, encoding='ascii') as handle:
        old_pid = int(handle.read())
    os.kill(old_pid, signal.SIGTERM)
    poll(lambda: not _process_alive(old_pid), 60, what='metrics-server to exit')

    proc = subprocess.run(['bash', os.path.join(REPO_ROOT, 'scripts', 'cluster.sh'), 'up'],
                          capture_output=True, text=True, timeout=900, check=False, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'starting metrics-server again' in proc.stderr, proc.stderr[-3000:]
    with open(pid_file, encoding='ascii') as handle:
        recorded = handle.read()
    assert recorded.isdigit(), repr(recorded)  # kwokctl stop parses it with Atoi
    assert int(recorded) != old_pid and _process_alive(int(recorded))
    with open(f'/proc/{recorded}/cmdline', 'rb') as cmdline:
        assert cmdline.read().split(b'\0')[0] == os.path.join(os.path.dirname(kubeconfig), 'bin', 'metrics-server').encode()
    # And it serves the metrics API through the aggregation layer again.
    node_metrics = client.CustomObjectsApi(api_client).list_cluster_custom_object('metrics.k8s.io', 'v1beta1', 'nodes')
    assert node_metrics['kind'] == 'NodeMetricsList'


def test_hpa_on_cpu_gets_current_value_from_metrics_server(api_client, namespace):
    apps = client.AppsV1Api(api_client)
    autoscaling = client.AutoscalingV2Api(api_client)
    # kwok reports the CPU a pod uses from this annotation (tools/cluster:
    # kwok's ClusterResourceUsage); 250m of a 500m request is 50 %.
    apps.create_namespaced_deployment(namespace, _deployment(
        'cpu-workload', 1, _container(requests={'cpu': '500m', 'memory': '64Mi'}),
        annotations={'kwok.x-k8s.io/usage-cpu': '250m', 'kwok.x-k8s.io/usage-memory': '32Mi'}))
    autoscaling.create_namespaced_horizontal_pod_autoscaler(namespace, client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name='cpu-workload'),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(api_version='apps/v1', kind='Deployment', name='cpu-workload'),
            min_replicas=1, max_replicas=3,
            metrics=[client.V2MetricSpec(type='Resource', resource=client.V2ResourceMetricSource(
                name='cpu', target=client.V2MetricTarget(type='Utilization', average_utilization=80)))])))

    def current_utilization():
        status = autoscaling.read_namespaced_horizontal_pod_autoscaler_status('cpu-workload', namespace).status
        for metric in status.current_metrics or []:
            if metric.resource is not None and metric.resource.name == 'cpu':
                return metric.resource.current.average_utilization
        return None

    # metrics-server scrapes every 15 s and needs two scrapes for a rate; the
    # HPA controller syncs every 15 s.
    utilization = poll(current_utilization, 420, interval=5, what='the HPA to report CPU utilisation')
    assert 30 <= utilization <= 70, utilization
