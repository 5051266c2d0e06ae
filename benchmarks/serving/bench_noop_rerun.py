"""No-change re-run of playbooks/serving.yml next to the peer, `helm upgrade --install` of vLLM production-stack's
chart with one model, and to the floor, `kubectl apply --server-side` of the same rendered objects, against the
local cluster, in one run.

    .venv/bin/python benchmarks/serving/bench_noop_rerun.py [--rounds 5] [--chart PATH]

Prints one JSON document (also written to benchmarks/results/) with every timing, the medians and the ratios
playbook / helm and playbook / kubectl. See README.md.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import yaml
from kubernetes import client, config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, 'tests'))
from helpers import VENV_BIN, PlaybookResult, ansible_env, run_playbook  # noqa: E402  pylint: disable=import-error,wrong-import-position
from integration.cluster_helpers import delete_if_present, start_cluster  # noqa: E402  pylint: disable=import-error,wrong-import-position

INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'local')
FIELD_MANAGER = 'llmscale.gpu_serving'
DEFAULT_CHART = os.path.join(os.path.dirname(REPO_ROOT), 'shared', 'charts', 'vllm-stack-0.1.12.tgz')
# The same model as the playbook's, one replica of one GPU, no router: the peer's serving engine alone.
HELM_VALUES = {
    'servingEngineSpec': {
        'runtimeClassName': '',
        'modelSpec': [{
            'name': 'bench', 'repository': 'docker.io/vllm/vllm-openai', 'tag': 'v0.33.0',
            'modelURL': 'Qwen/Qwen3-0.6B', 'replicaCount': 1, 'requestCPU': 8, 'requestMemory': '64Gi',
            'requestGPU': 1, 'pvcStorage': '200Gi', 'runtimeClassName': '',
        }],
    },
    'routerSpec': {'enableRouter': False},
}


def cluster_kubeconfig():
    path = os.environ.get('KUBECONFIG', '')
    if path and os.path.isfile(path):
        return path
    return start_cluster()


def render_objects(variables, path):
    """The objects the three roles apply, rendered by their own render tasks, as one multi-document file."""
    plans = ['__vllm_plan', '__autoscaling_plan', '__network_policy_plan']  # the namespace first, for kubectl
    tasks = [{'name': 'Render ' + role, 'ansible.builtin.include_role': {'name': role, 'tasks_from': 'render'}}
             for role in ('autoscaling', 'vllm', 'network_policy')]
    expression = ' + '.join('%s.objects' % plan for plan in plans)
    tasks.append({'name': 'Write the objects', 'ansible.builtin.copy': {
        'dest': path, 'mode': '0600', 'content': '{{ (%s) | to_json }}' % expression}})
    with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as handle:
        yaml.safe_dump([{'name': 'Render', 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], handle)
        playbook = handle.name
    try:
        result = run_playbook(playbook, extra_vars=variables)
    finally:
        os.unlink(playbook)
    if result.rc != 0:
        raise RuntimeError(result.describe())
    with open(path, encoding='utf-8') as handle:
        objects = json.load(handle)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump_all(objects, handle)
    return len(objects)


def cache_volumes(core, storage, name, count):
    """A storage class of the benchmark's own and local volumes for the playbook's and the chart's claims."""
    storage.create_storage_class(client.V1StorageClass(
        metadata=client.V1ObjectMeta(name=name), provisioner='kubernetes.io/no-provisioner',
        volume_binding_mode='WaitForFirstConsumer', reclaim_policy='Delete'))
    volumes = []
    for index in range(count):
        volume = '%s-%d' % (name, index)
        core.create_persistent_volume(client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=volume),
            spec=client.V1PersistentVolumeSpec(
                capacity={'storage': '300Gi'}, access_modes=['ReadWriteOnce'], storage_class_name=name,
                host_path=client.V1HostPathVolumeSource(path='/tmp/' + volume))))
        volumes.append(volume)
    return volumes


def timed(command, env):
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
    return time.monotonic() - started, proc


def playbook_result(proc):
    """What a timed ansible-playbook run (JSON callback) did."""
    return PlaybookResult(proc.returncode, json.loads(proc.stdout), proc.stderr, proc.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--chart', default=os.environ.get('LLMSCALE_VLLM_STACK_CHART', DEFAULT_CHART))
    args = parser.parse_args()
    # The kubectl and helm built with the local cluster (scripts/benchmarks.sh puts them on PATH).
    kubectl, helm = shutil.which('kubectl'), shutil.which('helm')
    if not kubectl or not helm:
        sys.exit('kubectl and helm must be on PATH: run through `make benchmarks`, which uses the ones `make tools` builds')
    if not os.path.isfile(args.chart):
        sys.exit('the peer chart %s is missing (set --chart or LLMSCALE_VLLM_STACK_CHART)' % args.chart)
    kubeconfig = cluster_kubeconfig()
    api = config.new_client_from_config(config_file=kubeconfig)
    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    namespace = 'bench-' + uuid.uuid4().hex[:6]
    kubectl_namespace, helm_namespace = namespace + '-kubectl', namespace + '-helm'
    storage_class = namespace + '-cache'
    volumes = cache_volumes(core, storage, storage_class, 3)
    HELM_VALUES['servingEngineSpec']['modelSpec'][0]['storageClass'] = storage_class
    variables = {'llmscale_gpu_operator_enabled': False, 'llmscale_monitoring_enabled': False,
                 'vllm_namespace': namespace, 'vllm_served_model_name': 'bench-model', 'vllm_model': 'Qwen/Qwen3-0.6B',
                 'vllm_model_cache_storage_class': storage_class, 'autoscaling_mode': 'prometheus_adapter'}
    env = ansible_env({'KUBECONFIG': kubeconfig, 'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.json'})
    workdir = tempfile.mkdtemp(prefix='llmscale-bench-')
    try:
        vars_file = os.path.join(workdir, 'vars.json')
        with open(vars_file, 'w', encoding='utf-8') as handle:
            json.dump(variables, handle)
        values_file = os.path.join(workdir, 'values.yaml')
        with open(values_file, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(HELM_VALUES, handle)
        playbook = [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', INVENTORY, '-e', '@' + vars_file,
                    os.path.join(REPO_ROOT, 'playbooks', 'serving.yml')]
        first = subprocess.run(playbook, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
        if first.returncode != 0:
            raise RuntimeError('first apply failed:\n' + first.stdout[-4000:] + first.stderr[-2000:])
        # Controllers still update the new objects (claim binding, rollout status) for a few
        # seconds; a run in that window can see them move. Measure from a settled state.
        for _attempt in range(5):
            _seconds, proc = timed(playbook, env)
            if proc.returncode == 0 and playbook_result(proc).changed == 0:
                break
        # kubectl gets the same objects in a namespace of its own: each tool re-applies only what it
        # applied itself, so neither sees the other's field ownership as a change.
        objects_file = os.path.join(workdir, 'objects.yaml')
        count = render_objects(dict(variables, vllm_namespace=kubectl_namespace), objects_file)
        apply = [kubectl, '--kubeconfig', kubeconfig, 'apply', '--server-side', '--field-manager', FIELD_MANAGER,
                 '--force-conflicts', '-f', objects_file]
        _seconds, proc = timed(apply, env)
        if proc.returncode != 0:
            raise RuntimeError('first kubectl apply failed: ' + proc.stderr)
        upgrade = [helm, '--kubeconfig', kubeconfig, 'upgrade', '--install', 'bench', args.chart, '--namespace',
                   helm_namespace, '--create-namespace', '-f', values_file]
        _seconds, proc = timed(upgrade, env)
        if proc.returncode != 0:
            raise RuntimeError('first helm upgrade --install failed: ' + proc.stderr)
        playbook_s, kubectl_s, helm_s = [], [], []
        for _round in range(args.rounds):
            seconds, proc = timed(playbook, env)
            result = playbook_result(proc)
            if result.rc != 0 or result.changed != 0:
                raise RuntimeError('the re-run was not a no-change run: ' + result.describe())
            playbook_s.append(seconds)
            seconds, proc = timed(upgrade, env)
            if proc.returncode != 0:
                raise RuntimeError('helm upgrade failed: ' + proc.stderr)
            helm_s.append(seconds)
            seconds, proc = timed(apply, env)
            if proc.returncode != 0:
                raise RuntimeError('kubectl apply failed: ' + proc.stderr)
            # A no-change server-side apply reports every object "serverside-applied"; nothing may be created.
            if 'created' in proc.stdout:
                raise RuntimeError('the kubectl re-run created objects: ' + proc.stdout)
            kubectl_s.append(seconds)
        medians = {name: statistics.median(values) for name, values in
                   (('playbook', playbook_s), ('helm', helm_s), ('kubectl', kubectl_s))}
        report = {
            'what': 'no-change re-run of playbooks/serving.yml vs helm upgrade --install of vLLM production-stack '
                    '(one model) vs kubectl apply --server-side of the same objects',
            'objects': count, 'rounds': args.rounds, 'chart': os.path.basename(args.chart),
            'playbook_seconds': [round(value, 3) for value in playbook_s],
            'helm_seconds': [round(value, 3) for value in helm_s],
            'kubectl_seconds': [round(value, 3) for value in kubectl_s],
            'playbook_median_s': round(medians['playbook'], 3),
            'helm_median_s': round(medians['helm'], 3),
            'kubectl_median_s': round(medians['kubectl'], 3),
            'ratio_playbook_over_helm': round(medians['playbook'] / medians['helm'], 2),
            'ratio_playbook_over_kubectl': round(medians['playbook'] / medians['kubectl'], 2),
            'kubectl': json.loads(subprocess.run([kubectl, 'version', '--client', '-o', 'json'], capture_output=True,
                                                 text=True, check=True).stdout)['clientVersion']['gitVersion'],
            'cpus': os.cpu_count(),
        }
        print(json.dumps(report, indent=2))
        results = os.path.join(REPO_ROOT, 'benchmarks', 'results')
        os.makedirs(results, exist_ok=True)
        with open(os.path.join(results, 'serving-noop-%s.json' % time.strftime('%Y%m%d-%H%M%S')), 'w',
                  encoding='utf-8') as handle:
            json.dump(report, handle, indent=2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        subprocess.run([helm, '--kubeconfig', kubeconfig, 'uninstall', 'bench', '--namespace', helm_namespace],
                       capture_output=True, check=False)
        for name in (namespace, kubectl_namespace, helm_namespace):
            delete_if_present(core.delete_namespace, name)
        for volume in volumes:
            delete_if_present(core.delete_persistent_volume, volume)
        delete_if_present(storage.delete_storage_class, storage_class)
        api.close()


if __name__ == '__main__':
    main()
