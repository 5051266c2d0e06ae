"""The one apply path (module llmscale.gpu_serving.k8s_apply) against the real API server, through both of its
transports: the standard-library one (the local cluster's kubeconfig has client certificates) and kubernetes.core's
client, which takes over for access the first does not handle (impersonation here).
"""
import base64
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_helpers import delete_if_present  # pylint: disable=import-error
from helpers import run_module  # pylint: disable=import-error

# Through kubernetes.core's client: impersonation is outside what the standard-library transport handles.
KUBERNETES_CLIENT = {'impersonate_user': 'llmscale-test', 'impersonate_groups': ['system:masters']}


def config_map(namespace, name, data):
    return {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': name, 'namespace': namespace}, 'data': data}


def apply(kubeconfig, objects, check=False, **extra):
    args = dict({'kubeconfig': kubeconfig, 'objects': objects}, **extra)
    return run_module('llmscale.gpu_serving.k8s_apply', args, check=check)


@pytest.mark.parametrize('transport', [{}, KUBERNETES_CLIENT], ids=['standard-library', 'kubernetes-client'])
def test_create_then_no_change_then_update(kubeconfig, api_client, namespace, transport):
    objects = [config_map(namespace, 'plan', {'a': '1'})]
    rc, result = apply(kubeconfig, objects, **transport)
    assert rc == 0 and result['changed'] and result['summary'] == {'create': 1}, result
    rc, result = apply(kubeconfig, objects, **transport)
    assert rc == 0 and not result['changed'] and result['summary'] == {'unchanged': 1}, result
    rc, result = apply(kubeconfig, [config_map(namespace, 'plan', {'a': '2'})], check=True, **transport)
    assert rc == 0 and result['changed'] and result['summary'] == {'update': 1}, result
    assert client.CoreV1Api(api_client).read_namespaced_config_map('plan', namespace).data == {'a': '1'}


def test_one_refused_object_means_nothing_is_applied(kubeconfig, api_client, namespace):
    bad = {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'bad', 'namespace': namespace},
           'spec': {'ports': [{'port': 700000}]}}
    rc, result = apply(kubeconfig, [config_map(namespace, 'first', {'a': '1'}), bad])
    assert rc != 0
    assert 'nothing was applied' in result['msg'] and 'Service %s/bad' % namespace in result['msg'], result
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(api_client).read_namespaced_config_map('first', namespace)
    assert missing.value.status == 404


def test_objects_in_a_namespace_the_plan_creates_are_dry_run_first(kubeconfig, api_client):
    name = 'apply-' + uuid.uuid4().hex[:6]
    core = client.CoreV1Api(api_client)
    objects = [{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': name}},
               config_map(name, 'cm', {'a': '1'})]
    try:
        rc, result = apply(kubeconfig, objects, check=True)
        assert rc == 0 and result['summary'] == {'create': 2}, result
        with pytest.raises(ApiException):
            core.read_namespace(name)
        # A refused object in the new namespace stops the plan before the namespace is created.
        bad = {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'p', 'namespace': name},
               'spec': {'containers': [{'name': 'c', 'image': 'x', 'resources': {'limits': {'memory': '8Gb'}}}]}}
        rc, result = apply(kubeconfig, objects + [bad])
        assert rc != 0 and 'Pod %s/p' % name in result['msg'], result
        with pytest.raises(ApiException):
            core.read_namespace(name)
        rc, result = apply(kubeconfig, objects)
        assert rc == 0 and core.read_namespaced_config_map('cm', name).data == {'a': '1'}, result
    finally:
        delete_if_present(core.delete_namespace, name)


def test_secret_values_stay_out_of_results_and_diffs(kubeconfig, api_client, namespace):
    value = 'hf_' + uuid.uuid4().hex
    encoded = base64.b64encode(value.encode()).decode()
    secret = {'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 'token', 'namespace': namespace},
              'type': 'Opaque', 'data': {'HF_TOKEN': encoded}}
    shape = dict(secret, data={})
    rc, result = run_module('llmscale.gpu_serving.k8s_apply', {'kubeconfig': kubeconfig, 'secrets': [shape],
                                                               'secret_data': [secret['data']]}, diff=True)
    assert rc == 0 and result['summary'] == {'create': 1}, result
    assert value not in repr(result) and encoded not in repr(result)
    # Only the values are masked: the Secret's name stays readable in the result.
    assert {'kind': 'Secret', 'namespace': namespace, 'name': 'token', 'action': 'create'} in result['objects']
    assert client.CoreV1Api(api_client).read_namespaced_secret('token', namespace).data['HF_TOKEN'] == encoded


def test_prune_removes_only_what_the_owner_label_marks_and_the_plan_dropped(kubeconfig, api_client, namespace):
    labels = {'llmscale.io/owner': 'test.' + namespace}
    keep, drop = config_map(namespace, 'keep', {}), config_map(namespace, 'drop', {})
    keep['metadata']['labels'] = drop['metadata']['labels'] = labels
    foreign = config_map(namespace, 'foreign', {})
    prune = [{'label_selector': 'llmscale.io/owner=test.' + namespace, 'namespace': namespace,
              'kinds': [{'api_version': 'v1', 'kind': 'ConfigMap'}]}]
    rc, result = apply(kubeconfig, [keep, drop, foreign], prune=prune)
    assert rc == 0, result
    rc, result = apply(kubeconfig, [keep], prune=prune)
    assert rc == 0 and result['summary'] == {'unchanged': 1, 'delete': 1}, result
    names = {item.metadata.name for item in client.CoreV1Api(api_client).list_namespaced_config_map(namespace).items}
    assert {'keep', 'foreign'} <= names and 'drop' not in names


def test_prune_leaves_what_a_controller_owns(kubeconfig, api_client, namespace):
    """An object carrying our owner label because its controller copied it (KEDA's HPA) is the controller's."""
    labels = {'llmscale.io/owner': 'test.' + namespace}
    owner = config_map(namespace, 'owner', {})
    owner['metadata']['labels'] = labels
    prune = [{'label_selector': 'llmscale.io/owner=test.' + namespace, 'namespace': namespace,
              'kinds': [{'api_version': 'v1', 'kind': 'ConfigMap'}]}]
    rc, result = apply(kubeconfig, [owner], prune=prune)
    assert rc == 0, result
    core = client.CoreV1Api(api_client)
    uid = core.read_namespaced_config_map('owner', namespace).metadata.uid
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(
        name='owned', labels=labels, owner_references=[client.V1OwnerReference(
            api_version='v1', kind='ConfigMap', name='owner', uid=uid, controller=True)])))
    rc, result = apply(kubeconfig, [owner], prune=prune)
    assert rc == 0 and result['summary'] == {'unchanged': 1}, result
    assert 'owned' in {item.metadata.name for item in core.list_namespaced_config_map(namespace).items}
