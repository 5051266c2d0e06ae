"""Small helpers for tests that talk to the local cluster."""
import os
import subprocess
import time
import uuid

from kubernetes import client
from kubernetes.client.rest import ApiException


# The simulated GPU nodes of tools/cluster/nodes.yaml.
GPU_NODES = ('gpu-node-0', 'gpu-node-1')
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER_SCRIPT = os.path.join(REPO_ROOT, 'scripts', 'cluster.sh')


def shared_dir(marker):
    """The shared reference folder (real charts, CRDs) holding MARKER (a path inside it): $LLMSCALE_SHARED_DIR, else
    ../shared next to this checkout or next to the main checkout of a git worktree."""
    candidates = [os.environ.get('LLMSCALE_SHARED_DIR', ''), os.path.join(os.path.dirname(REPO_ROOT), 'shared')]
    common = subprocess.run(['git', 'rev-parse', '--path-format=absolute', '--git-common-dir'], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    if common:
        candidates.append(os.path.join(os.path.dirname(os.path.dirname(common)), 'shared'))
    for candidate in candidates:
        if candidate and os.path.exists(os.path.join(candidate, marker)):
            return candidate
    raise RuntimeError('no %s in any of %s: set LLMSCALE_SHARED_DIR' % (marker, [c for c in candidates if c]))


def start_cluster():
    """Start (or reuse) the local cluster of $LLMSCALE_CLUSTER_NAME; return its kubeconfig path (`cluster.sh kubeconfig`)."""
    for command in ('up', 'kubeconfig'):
        proc = subprocess.run(['bash', CLUSTER_SCRIPT, command], capture_output=True, text=True,
                              timeout=3600, check=False, cwd=os.path.dirname(os.path.dirname(CLUSTER_SCRIPT)))
        if proc.returncode != 0:
            raise RuntimeError('scripts/cluster.sh %s failed (rc=%s):\n%s\n%s'
                               % (command, proc.returncode, proc.stdout[-3000:], proc.stderr[-5000:]))
    return proc.stdout.strip()


def delete_if_present(delete, *args, **kwargs):
    """Call a kubernetes client delete_* method; an object already gone is fine (cleanup)."""
    try:
        delete(*args, **kwargs)
    except ApiException as error:
        if error.status != 404:
            raise


def poll(predicate, timeout, interval=2.0, what='condition'):
    """Call predicate until it returns something truthy; return that value.

    A loaded 2-core machine makes every step slow now and then, so tests poll
    with generous deadlines instead of sleeping for fixed times.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (TypeError, AttributeError, NameError):
            raise  # a bug in the test, not a slow cluster
        except Exception as error:  # pylint: disable=broad-except  # keep polling through API hiccups
            last_error = error
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %ss waiting for %s (last error: %r)' % (timeout, what, last_error))
        time.sleep(interval)


class CacheVolumes:
    """A no-provisioner StorageClass of the test's own, with local PersistentVolumes on each GPU node.

    What nvme_storage creates on real nodes, so that each replica's claim binds to a volume of the node the
    scheduler picked. Deleted afterwards (they are Retain volumes: a released one never binds again).
    """

    def __init__(self, api, per_node, nodes=GPU_NODES):
        self.core = client.CoreV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.name = 'llmscale-test-local-' + uuid.uuid4().hex[:6]
        self.volumes = []
        self.storage.create_storage_class(client.V1StorageClass(
            metadata=client.V1ObjectMeta(name=self.name), provisioner='kubernetes.io/no-provisioner',
            volume_binding_mode='WaitForFirstConsumer', reclaim_policy='Retain'))
        for node in nodes:
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

    def on_node(self, node):
        """This class's volumes on NODE."""
        return [volume for volume in self.volumes if volume.startswith('%s-%s-' % (self.name, node))]

    def node_of(self, volume_name):
        volume = self.core.read_persistent_volume(volume_name)
        return volume.spec.node_affinity.required.node_selector_terms[0].match_expressions[0].values[0]

    def delete(self):
        for volume in self.volumes:
            delete_if_present(self.core.delete_persistent_volume, volume)
        delete_if_present(self.storage.delete_storage_class, self.name)
