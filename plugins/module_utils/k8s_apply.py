# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way this collection writes Kubernetes objects: server-side apply of a whole plan.

Order of a run, so that bad input changes nothing:
  1. every kind is looked up (discovery) and every live object read, in parallel;
  2. every object is dry-run by the API server (server-side apply, dryRun=All); an object whose namespace is
     created by this same plan is dry-run in an existing namespace, since its own does not exist yet;
  3. any error stops the run here, with every error at once and nothing written;
  4. only objects whose dry-run result differs from the live object are applied, in plan order;
  5. objects the plan no longer renders are pruned (opt-in, label-selected), then rollouts are waited for.
Check mode stops after step 3 and reports what would change, with a diff. Secret values never leave this
module: diffs and results show their keys only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import time
from concurrent.futures import ThreadPoolExecutor

# Applied first, in this order: later objects need them (a namespace, a CRD's kinds).
_FIRST_KINDS = ('Namespace', 'CustomResourceDefinition')
# Fields the API server owns: never part of a comparison or a diff.
_SERVER_METADATA = ('managedFields', 'resourceVersion', 'uid', 'creationTimestamp', 'generation', 'selfLink')
_WORKLOAD_KINDS = ('Deployment', 'StatefulSet', 'DaemonSet')
REDACTED = '<redacted>'
DRY_RUN_NAMESPACE = 'default'


class ApplyError(Exception):
    pass


# ---- pure helpers -------------------------------------------------------------------------------------------

def object_ref(obj):
    """(apiVersion, kind, namespace, name) of an object."""
    metadata = obj.get('metadata') or {}
    return (obj.get('apiVersion'), obj.get('kind'), metadata.get('namespace'), metadata.get('name'))


def describe(ref):
    api_version, kind, namespace, name = ref
    return '%s %s%s' % (kind, (namespace + '/') if namespace else '', name)


def order_objects(objects):
    """Namespaces, then CRDs, then everything else in the order given (a stable sort)."""
    def rank(obj):
        kind = obj.get('kind')
        return _FIRST_KINDS.index(kind) if kind in _FIRST_KINDS else len(_FIRST_KINDS)
    return sorted(objects, key=rank)


def check_objects(objects):
    """Errors of objects that cannot be applied at all (no kind, no name, duplicates)."""
    errors, seen = [], set()
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or not obj.get('apiVersion') or not obj.get('kind'):
            errors.append('object %d has no apiVersion or kind' % index)
            continue
        ref = object_ref(obj)
        if not ref[3]:
            errors.append('%s %d has no metadata.name' % (ref[1], index))
        elif ref in seen:
            errors.append('%s is in the plan twice' % describe(ref))
        seen.add(ref)
    return errors


def comparable(obj):
    """The object without what the API server changes on its own (for comparison and diffs)."""
    if obj is None:
        return None
    obj = copy.deepcopy(obj)
    metadata = obj.get('metadata') or {}
    for key in _SERVER_METADATA:
        metadata.pop(key, None)
    annotations = metadata.get('annotations') or {}
    annotations.pop('kubectl.kubernetes.io/last-applied-configuration', None)
    if not annotations:
        metadata.pop('annotations', None)
    obj.pop('status', None)
    return obj


def redact(obj):
    """A Secret with every value replaced; other objects unchanged."""
    if obj is None or obj.get('kind') != 'Secret':
        return obj
    obj = copy.deepcopy(obj)
    for field in ('data', 'stringData'):
        if isinstance(obj.get(field), dict):
            obj[field] = dict((key, REDACTED) for key in obj[field])
    return obj


def get_path(obj, path):
    for key in path.split('.'):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def set_path(obj, path, value):
    keys = path.split('.')
    for key in keys[:-1]:
        obj = obj.setdefault(key, {})
    obj[keys[-1]] = value


def del_path(obj, path):
    keys = path.split('.')
    for key in keys[:-1]:
        obj = obj.get(key)
        if not isinstance(obj, dict):
            return
    obj.pop(keys[-1], None)


def owns(live, field_manager, path):
    """Whether field_manager's Apply entry in managedFields owns the field at path (a.b.c)."""
    for entry in (live.get('metadata') or {}).get('managedFields') or []:
        if entry.get('manager') != field_manager or entry.get('operation') != 'Apply':
            continue
        fields = entry.get('fieldsV1') or {}
        for key in path.split('.'):
            fields = fields.get('f:' + key) if isinstance(fields, dict) else None
        if fields is not None:
            return True
    return False


def keep_live_fields(obj, live, paths, field_manager):
    """The object to apply when the fields at paths are set at creation only (spec.replicas under an autoscaler).

    On creation the rendered values are applied. Afterwards the field is left to whoever changed it since (the
    HPA): applying our value would undo theirs, and dropping a field this manager still owns would reset it, so
    while we still own it the live value is re-applied, and once another manager took it over it is left out.
    """
    if live is None or not paths:
        return obj
    obj = copy.deepcopy(obj)
    for path in paths:
        if owns(live, field_manager, path) and get_path(live, path) is not None:
            set_path(obj, path, get_path(live, path))
        else:
            del_path(obj, path)
    return obj


def matches_selector(obj, selector):
    """Whether an object's labels satisfy an equality-based selector (k=v,k2=v2); an empty selector matches."""
    labels = (obj.get('metadata') or {}).get('labels') or {}
    for term in (selector or '').split(','):
        if term.strip():
            key, _sep, value = term.partition('=')
            if labels.get(key.strip()) != value.strip():
                return False
    return True


def in_namespace(obj, namespace):
    obj = copy.deepcopy(obj)
    obj.setdefault('metadata', {})['namespace'] = namespace
    return obj


def rollout_state(obj):
    """(done, what is missing) of a Deployment, StatefulSet or DaemonSet as the API server reports it."""
    kind = obj.get('kind')
    spec, status = obj.get('spec') or {}, obj.get('status') or {}
    generation = (obj.get('metadata') or {}).get('generation') or 0
    if (status.get('observedGeneration') or 0) < generation:
        return False, 'the controller has not seen the latest spec yet'
    if kind == 'DaemonSet':
        wanted = status.get('desiredNumberScheduled') or 0
        ready = status.get('numberAvailable') or 0
        updated = status.get('updatedNumberScheduled') or 0
    else:
        wanted = spec.get('replicas', 1)
        ready = status.get('availableReplicas' if kind == 'Deployment' else 'readyReplicas') or 0
        updated = status.get('updatedReplicas') or 0
    if updated < wanted or ready < wanted:
        return False, '%d of %d replicas updated, %d ready' % (updated, wanted, ready)
    return True, 'rolled out'


def job_state(obj):
    """(done, failed, reason) of a Job."""
    for condition in (obj.get('status') or {}).get('conditions') or []:
        if condition.get('status') != 'True':
            continue
        if condition.get('type') == 'Complete':
            return True, False, 'complete'
        if condition.get('type') == 'Failed':
            return True, True, condition.get('message') or condition.get('reason') or 'failed'
    return False, False, 'running'


def diff_entry(ref, before, after, yaml_dump):
    return {
        'before_header': describe(ref) + (' (live)' if before is not None else ' (absent)'),
        'after_header': describe(ref) + ' (applied)',
        'before': yaml_dump(redact(comparable(before))) if before is not None else '',
        'after': yaml_dump(redact(comparable(after))) if after is not None else '',
    }


def controlled_by_another(obj):
    """True when a controller owns OBJ (KEDA's HPA of a ScaledObject, a ReplicaSet of a Deployment): it carries
    our labels because its controller copies them, and goes away with its owner; pruning it fights that controller."""
    return any(ref.get('controller') for ref in (obj.get('metadata') or {}).get('ownerReferences') or [])


def list_labelled(transport, prune):
    """Objects of prune['kinds'] ({api_version, kind}) in prune['namespace'] carrying prune['label_selector']."""
    found = []
    for kind in prune.get('kinds') or []:
        found.extend(transport.list(kind['api_version'], kind['kind'], prune.get('namespace'), prune['label_selector']))
    return found


# ---- the run ------------------------------------------------------------------------------------------------

class Applier(object):
    """Applies a plan through a transport (see K8sTransport), which does the HTTP calls."""

    def __init__(self, transport, field_manager, check_mode, yaml_dump, workers=8, sleep=time.sleep):
        self.transport = transport
        self.field_manager = field_manager
        self.check_mode = check_mode
        self.yaml_dump = yaml_dump
        self.workers = workers
        self.sleep = sleep

    def _parallel(self, function, items):
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(function, items))

    def run(self, objects, create_only=(), prune=(), replace=(), wait=False, wait_timeout=300):
        errors = check_objects(objects)
        if errors:
            raise ApplyError('; '.join(errors))
        objects = order_objects(objects)
        refs = [object_ref(obj) for obj in objects]
        kinds_in_plan = set((obj['apiVersion'], obj['kind']) for obj in objects)
        crd_kinds = set()
        for obj in objects:
            if obj['kind'] == 'CustomResourceDefinition':
                spec = obj.get('spec') or {}
                for version in spec.get('versions') or []:
                    crd_kinds.add(('%s/%s' % (spec.get('group'), version.get('name')), (spec.get('names') or {}).get('kind')))

        served = dict((kind, self.transport.served(*kind)) for kind in kinds_in_plan)
        errors = ['%s %s is not served by this cluster (is its CRD installed?)' % kind[::-1] for kind, ok in served.items()
                  if not ok and kind not in crd_kinds]
        if errors:
            raise ApplyError('; '.join(errors))

        live = self._parallel(lambda obj: self.transport.get(obj) if served[(obj['apiVersion'], obj['kind'])] else None,
                              objects)
        new_namespaces = set(ref[3] for ref, current in zip(refs, live) if ref[1] == 'Namespace' and current is None)
        bodies = [keep_live_fields(obj, current, create_only, self.field_manager) for obj, current in zip(objects, live)]

        def dry_run(index):
            obj, ref = bodies[index], refs[index]
            if not served[(obj['apiVersion'], obj['kind'])]:
                return None, None  # its CRD comes with this plan: nothing to dry-run against yet
            if ref[2] and ref[2] in new_namespaces:
                try:
                    self.transport.apply(in_namespace(obj, DRY_RUN_NAMESPACE), dry_run=True)
                except ApplyError as error:
                    return None, '%s: %s' % (describe(ref), error)
                return None, None
            try:
                return self.transport.apply(obj, dry_run=True), None
            except ApplyError as error:
                return None, '%s: %s' % (describe(ref), error)

        outcomes = self._parallel(dry_run, range(len(objects)))
        errors = [error for _result, error in outcomes if error]
        if errors:
            raise ApplyError('the API server refused the plan, nothing was applied: ' + '; '.join(errors))

        results, diffs, to_apply = [], [], []
        for index, (ref, current, (predicted, _error)) in enumerate(zip(refs, live, outcomes)):
            if current is None:
                action = 'create'
            elif comparable(predicted) != comparable(current):
                action = 'update'
            else:
                action = 'unchanged'
            results.append({'kind': ref[1], 'namespace': ref[2], 'name': ref[3], 'action': action})
            if action != 'unchanged':
                to_apply.append(index)
                diffs.append(diff_entry(ref, current, predicted if predicted is not None else bodies[index],
                                        self.yaml_dump))

        keep = set((ref[1], ref[2], ref[3]) for ref in refs)
        replaced = []
        for entry in replace or ():
            current = self.transport.get({'apiVersion': entry['api_version'], 'kind': entry['kind'],
                                          'metadata': {'name': entry['name'], 'namespace': entry.get('namespace')}})
            if current is not None and (entry['kind'], entry.get('namespace'), entry['name']) not in keep \
                    and matches_selector(current, entry.get('label_selector')):
                replaced.append(current)
                diffs.append(diff_entry(object_ref(current), current, None, self.yaml_dump))
        pruned = []
        for selection in prune or ():
            for candidate in list_labelled(self.transport, selection):
                key = object_ref(candidate)
                if (key[1], key[2], key[3]) not in keep and candidate not in replaced \
                        and not controlled_by_another(candidate):
                    pruned.append(candidate)
                    diffs.append(diff_entry(key, candidate, None, self.yaml_dump))

        if not self.check_mode:
            # What the plan replaces goes first and is waited for, so old and new never run side by side.
            for current in replaced:
                self.transport.delete(current, wait_timeout=wait_timeout)
            for index in to_apply:
                self.transport.apply(bodies[index], dry_run=False)
            for candidate in pruned:
                self.transport.delete(candidate)
            if wait:
                self._wait([objects[index] for index in range(len(objects))], wait_timeout)

        results += [dict(zip(('kind', 'namespace', 'name'), object_ref(obj)[1:]), action='delete')
                    for obj in replaced + pruned]
        return {'changed': bool(to_apply or pruned or replaced), 'objects': results, 'diff': diffs, 'summary': self._summary(results)}

    @staticmethod
    def _summary(results):
        counts = {}
        for result in results:
            counts[result['action']] = counts.get(result['action'], 0) + 1
        return counts

    def _wait(self, objects, timeout):
        deadline = time.monotonic() + timeout
        pending = [obj for obj in objects if obj['kind'] in _WORKLOAD_KINDS + ('Job',)]
        while pending:
            still = []
            for obj in pending:
                current = self.transport.get(obj)
                if current is None:
                    still.append((obj, 'not created yet'))
                    continue
                if obj['kind'] == 'Job':
                    done, failed, reason = job_state(current)
                    if failed:
                        raise ApplyError('%s failed: %s' % (describe(object_ref(obj)), reason))
                else:
                    done, reason = rollout_state(current)
                if not done:
                    still.append((obj, reason))
            if not still:
                return
            if time.monotonic() >= deadline:
                raise ApplyError('timed out after %ss waiting for %s' % (
                    timeout, '; '.join('%s (%s)' % (describe(object_ref(obj)), reason) for obj, reason in still)))
            pending = [obj for obj, _reason in still]
            self.sleep(2)


class K8sTransport(object):
    """The HTTP side, through kubernetes.core's API client (its authentication, proxies and discovery cache)."""

    def __init__(self, k8s_client, field_manager):
        from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError
        self._client = k8s_client
        self._field_manager = field_manager
        self._api_error = DynamicApiError
        self._not_found = NotFoundError
        self._no_resource = ResourceNotFoundError
        self._resources = {}

    def _resource(self, api_version, kind):
        key = (api_version, kind)
        if key not in self._resources:
            try:
                self._resources[key] = self._client.resource(kind, api_version)
            except self._no_resource:
                self._resources[key] = None
        return self._resources[key]

    def served(self, api_version, kind):
        return self._resource(api_version, kind) is not None

    @staticmethod
    def _message(error):
        summary = getattr(error, 'summary', None)
        return summary() if callable(summary) else str(error)

    def get(self, obj):
        api_version, kind, namespace, name = object_ref(obj)
        resource = self._resource(api_version, kind)
        try:
            return self._client.client.get(resource, name=name, namespace=namespace).to_dict()
        except self._not_found:
            return None
        except self._api_error as error:
            raise ApplyError(self._message(error))

    def apply(self, obj, dry_run):
        api_version, kind, namespace, name = object_ref(obj)
        resource = self._resource(api_version, kind)
        try:
            result = self._client.client.server_side_apply(
                resource, body=obj, name=name, namespace=namespace, field_manager=self._field_manager,
                force_conflicts=True, dry_run='All' if dry_run else None)
        except self._api_error as error:
            raise ApplyError(self._message(error))
        return result.to_dict()

    def delete(self, obj, wait_timeout=None):
        """Delete an object; with wait_timeout, foreground deletion waited for until it (and its pods) are gone."""
        api_version, kind, namespace, name = object_ref(obj)
        try:
            self._client.client.delete(self._resource(api_version, kind), name=name, namespace=namespace,
                                       propagation_policy='Foreground' if wait_timeout else 'Background')
        except self._not_found:
            return
        except self._api_error as error:
            raise ApplyError(self._message(error))
        deadline = time.monotonic() + (wait_timeout or 0)
        while wait_timeout and self.get(obj) is not None:
            if time.monotonic() >= deadline:
                raise ApplyError('timed out after %ss waiting for %s to be deleted' % (wait_timeout, describe(object_ref(obj))))
            time.sleep(1)

    def list(self, api_version, kind, namespace=None, label_selector=None):
        """Objects of a kind (in a namespace for namespaced kinds), with apiVersion and kind set on each."""
        resource = self._resource(api_version, kind)
        if resource is None:
            return []
        try:
            listed = self._client.client.get(resource, namespace=namespace if resource.namespaced else None,
                                             label_selector=label_selector)
        except self._api_error as error:
            raise ApplyError(self._message(error))
        items = listed.to_dict().get('items') or []
        for item in items:
            item.setdefault('apiVersion', api_version)
            item.setdefault('kind', kind)
        return items


def transport_for(params, field_manager):
    """The standard-library transport when the access allows it, else kubernetes.core's client (k8s_http.py)."""
    from ansible_collections.llmscale.gpu_serving.plugins.module_utils.k8s_http import (
        AccessError, HttpClient, HttpTransport, load_access)
    try:
        access = load_access(params)
    except (IOError, OSError, ValueError, KeyError) as error:
        raise ApplyError('cannot read the kubeconfig (llmscale_kubeconfig): %s' % error)
    if access is not None:
        try:
            return HttpTransport(HttpClient(access), field_manager, ApplyError)
        except (AccessError, IOError, OSError, ValueError) as error:
            raise ApplyError('cannot use the credentials of the kubeconfig (llmscale_kubeconfig): %s' % error)
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    try:
        return K8sTransport(get_api_client(**dict((name, params.get(name)) for name in AUTH_ARG_SPEC)), field_manager)
    except CoreException as error:
        raise ApplyError(str(error))


def run_module(module, yaml_dump):
    """What the k8s_apply module does once its parameters are parsed."""
    params = module.params
    try:
        applier = Applier(transport_for(params, params['field_manager']), params['field_manager'],
                          module.check_mode, yaml_dump)
        if len(params['secrets']) != len(params['secret_data']):
            raise ApplyError('secrets and secret_data must have one entry per Secret')
        secrets = [dict(secret, data=data) for secret, data in zip(params['secrets'], params['secret_data'])]
        result = applier.run(params['objects'] + secrets, create_only=params['create_only'],
                             prune=params['prune'], replace=params['replace'], wait=params['wait'],
                             wait_timeout=params['wait_timeout'])
    except ApplyError as error:
        module.fail_json(msg=str(error))
    if not module._diff:
        result.pop('diff')
    module.exit_json(**result)


def read_all(transport, queries, workers=8, record_errors=False):
    """{query name: {'served': bool, 'items': [objects]}} for queries of {name, api_version, kind, namespace,
    label_selector}, read in parallel: the cluster facts a plan is checked against, in one module call.

    record_errors: a query that fails (an aggregated API whose server is down) gets its message in 'error' and no
    items instead of failing the whole read; diagnosing a broken cluster must read the rest."""
    def read(query):
        try:
            if not transport.served(query['api_version'], query['kind']):
                return query['name'], {'served': False, 'items': []}
            items = transport.list(query['api_version'], query['kind'], query.get('namespace'),
                                   query.get('label_selector'))
        except ApplyError as error:
            if not record_errors:
                raise
            return query['name'], {'served': True, 'items': [], 'error': str(error)}
        return query['name'], {'served': True, 'items': items}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(read, queries))


def run_read_module(module):
    """What the k8s_read module does once its parameters are parsed."""
    try:
        resources = read_all(transport_for(module.params, None), module.params['queries'],
                             record_errors=module.params.get('on_error') == 'record')
    except ApplyError as error:
        module.fail_json(msg=str(error))
    module.exit_json(changed=False, resources=resources)
