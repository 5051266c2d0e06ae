"""The pure parts of the one apply path (plugins/module_utils/k8s_apply.py).

The run against a real API server (dry-run first, apply, prune, replace, waits) is tested on the local cluster in
tests/integration/test_serving.py and tests/integration/test_k8s_apply.py.
"""
from ansible_collections.llmscale.gpu_serving.plugins.module_utils import k8s_apply

MANAGER = 'llmscale.gpu_serving'


def statefulset(replicas=2, managed_fields=None):
    return {'apiVersion': 'apps/v1', 'kind': 'StatefulSet',
            'metadata': {'name': 'vllm-server', 'namespace': 'llm-serving', 'managedFields': managed_fields or []},
            'spec': {'replicas': replicas, 'template': {}}}


def apply_entry(manager, fields):
    return {'manager': manager, 'operation': 'Apply', 'fieldsType': 'FieldsV1', 'fieldsV1': fields}


def test_objects_a_controller_owns_are_never_pruned():
    # KEDA copies the ScaledObject's labels onto the HPA it creates and owns.
    hpa = {'kind': 'HorizontalPodAutoscaler', 'metadata': {'name': 'keda-hpa-vllm-server', 'ownerReferences': [
        {'apiVersion': 'keda.sh/v1alpha1', 'kind': 'ScaledObject', 'name': 'vllm-server', 'controller': True}]}}
    assert k8s_apply.controlled_by_another(hpa)
    hpa['metadata']['ownerReferences'][0]['controller'] = False
    assert not k8s_apply.controlled_by_another(hpa)
    assert not k8s_apply.controlled_by_another({'kind': 'ConfigMap', 'metadata': {'name': 'a'}})


def test_namespaces_and_crds_go_first_and_the_rest_keeps_its_order():
    objects = [{'kind': 'Service'}, {'kind': 'CustomResourceDefinition'}, {'kind': 'StatefulSet'}, {'kind': 'Namespace'}]
    assert [obj['kind'] for obj in k8s_apply.order_objects(objects)] == [
        'Namespace', 'CustomResourceDefinition', 'Service', 'StatefulSet']


def test_objects_without_kind_or_name_or_twice_in_the_plan_are_errors():
    objects = [{'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'a', 'namespace': 'x'}},
               {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'a', 'namespace': 'x'}},
               {'apiVersion': 'v1', 'metadata': {'name': 'b'}},
               {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {}}]
    errors = k8s_apply.check_objects(objects)
    assert errors == ['Service x/a is in the plan twice', 'object 2 has no apiVersion or kind',
                      'ConfigMap 3 has no metadata.name']


def test_comparison_ignores_what_the_server_owns():
    live = statefulset(managed_fields=[apply_entry(MANAGER, {})])
    live['metadata'].update(resourceVersion='7', uid='u', generation=3, creationTimestamp='t')
    live['status'] = {'readyReplicas': 2}
    assert k8s_apply.comparable(live) == k8s_apply.comparable(statefulset())


def test_secret_values_never_reach_a_diff():
    secret = {'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 't'}, 'data': {'HF_TOKEN': 'aGZfc2VjcmV0'}}
    entry = k8s_apply.diff_entry(k8s_apply.object_ref(secret), None, secret, repr)
    assert 'aGZfc2VjcmV0' not in repr(entry) and 'HF_TOKEN' in entry['after']
    assert secret['data']['HF_TOKEN'] == 'aGZfc2VjcmV0'  # the object itself is untouched


def test_the_replica_count_is_applied_on_creation_only():
    rendered = statefulset(replicas=2)
    assert k8s_apply.keep_live_fields(rendered, None, ['spec.replicas'], MANAGER)['spec']['replicas'] == 2


def test_a_count_the_autoscaler_took_over_is_left_out():
    # The HPA controller's scale update took spec.replicas: our Apply entry no longer lists it.
    live = statefulset(replicas=3, managed_fields=[
        apply_entry(MANAGER, {'f:spec': {'f:template': {}}}),
        {'manager': 'kube-controller-manager', 'operation': 'Update', 'fieldsV1': {'f:spec': {'f:replicas': {}}}}])
    body = k8s_apply.keep_live_fields(statefulset(replicas=1), live, ['spec.replicas'], MANAGER)
    assert 'replicas' not in body['spec']


def test_a_count_we_still_own_is_reapplied_as_it_is_live():
    # Dropping a field this manager owns would reset it to the default: the live value is applied instead.
    live = statefulset(replicas=2, managed_fields=[apply_entry(MANAGER, {'f:spec': {'f:replicas': {}}})])
    body = k8s_apply.keep_live_fields(statefulset(replicas=1), live, ['spec.replicas'], MANAGER)
    assert body['spec']['replicas'] == 2


def test_rollout_state_reads_what_the_controller_reports():
    obj = statefulset(replicas=2)
    obj['metadata']['generation'] = 2
    obj['status'] = {'observedGeneration': 1, 'readyReplicas': 2, 'updatedReplicas': 2}
    assert k8s_apply.rollout_state(obj)[0] is False
    obj['status']['observedGeneration'] = 2
    obj['status']['readyReplicas'] = 1
    assert k8s_apply.rollout_state(obj) == (False, '2 of 2 replicas updated, 1 ready')
    obj['status']['readyReplicas'] = 2
    assert k8s_apply.rollout_state(obj) == (True, 'rolled out')


def test_job_state():
    failed = {'status': {'conditions': [{'type': 'Failed', 'status': 'True', 'message': 'BackoffLimitExceeded'}]}}
    assert k8s_apply.job_state(failed) == (True, True, 'BackoffLimitExceeded')
    assert k8s_apply.job_state({'status': {'conditions': [{'type': 'Complete', 'status': 'True'}]}})[:2] == (True, False)
    assert k8s_apply.job_state({'status': {}}) == (False, False, 'running')


def test_only_objects_carrying_the_labels_are_replaced():
    ours = {'metadata': {'labels': {'app.kubernetes.io/managed-by': 'llmscale.gpu_serving', 'x': 'y'}}}
    assert k8s_apply.matches_selector(ours, 'app.kubernetes.io/managed-by=llmscale.gpu_serving')
    assert not k8s_apply.matches_selector({'metadata': {}}, 'app.kubernetes.io/managed-by=llmscale.gpu_serving')
    assert k8s_apply.matches_selector({'metadata': {}}, '')
