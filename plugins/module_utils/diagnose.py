# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Diagnose: why the serving workload is not serving, not scaling or slow.

Pure functions: ``analyse(facts, settings)`` takes Kubernetes objects as the API
returns them (pods, events, nodes, claims, autoscalers...), container logs and
per-node GPU health results, and returns findings. Nothing here talks to a
cluster; the diagnose module hands the gathered facts over.

A finding is ``{id, severity, object, evidence, remedy}``: ``evidence`` quotes
what was seen (an event message, a container state, a log line), ``remedy``
names the collection variable to change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

CRITICAL = 'critical'
WARNING = 'warning'
INFO = 'info'
SEVERITIES = (CRITICAL, WARNING, INFO)
SCHEMA_VERSION = 1

GPU_RESOURCE = 'nvidia.com/gpu'
PRODUCT_LABEL = 'nvidia.com/gpu.product'
CAPACITY_TYPE_LABEL = 'node.kubernetes.io/capacity-type'
DRIVER_LABELS = ('nvidia.com/cuda.driver-version.full', 'nvidia.com/cuda.driver.major')

# Messages of vLLM 0.33 (and of PyTorch's allocator, which vLLM re-raises), matched in container logs.
# Each pattern is a fixed part of the source's message; see tests/unit/plugins/module_utils/test_diagnose_logs.py.
LOG_SIGNATURES = (
    # vllm/v1/worker/gpu_model_runner.py (load_model)
    ('vllm_weights_oom', re.compile(r'Failed to load model - not enough GPU memory\.')),
    # torch.OutOfMemoryError, as printed in vLLM tracebacks
    ('vllm_cuda_oom', re.compile(r'CUDA out of memory\. Tried to allocate [\d.]+ [KMGT]?i?B\.')),
    # vllm/v1/core/kv_cache_planning.py (_check_enough_kv_cache_memory)
    ('vllm_no_kv_cache_memory', re.compile(r'No available memory for the cache blocks\.')),
    ('vllm_kv_cache_too_small', re.compile(
        r"To serve at least one request with the models?'s max seq len \((\d+)\), \(([\d.]+) GiB KV cache is needed, "
        r"which is larger than the available KV cache memory \(([\d.]+) GiB\)\.(?: Based on the available memory, "
        r"the estimated maximum model length is (\d+)\.)?")),
    # vllm/envs.py (get_vllm_port)
    ('vllm_port_uri', re.compile(r"VLLM_PORT '([^']*)' appears to be a URI\.")),
    ('vllm_port_invalid', re.compile(r"VLLM_PORT '([^']*)' must be a valid integer")),
    # huggingface_hub, raised through vllm/transformers_utils when HF_HUB_OFFLINE=1 and the cache lacks the model
    ('vllm_offline_cache_miss', re.compile(r'LocalEntryNotFoundError[^\n]*')),
)

# Container waiting reasons of the kubelet that mean the image could not be pulled.
IMAGE_PULL_REASONS = ('ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull')

_QUANTITY = re.compile(r'^([0-9.]+)([a-zA-Z]*)$')
_QUANTITY_FACTORS = {
    '': 1, 'm': 1e-3, 'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'P': 1e15,
    'Ki': 2 ** 10, 'Mi': 2 ** 20, 'Gi': 2 ** 30, 'Ti': 2 ** 40, 'Pi': 2 ** 50, 'n': 1e-9, 'u': 1e-6,
}


def quantity(value):
    """A Kubernetes quantity ('8', '500m', '64Gi', '1234567n') as a float; None when absent or unreadable."""
    if value is None:
        return None
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _QUANTITY_FACTORS:
        return None
    return float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]


def finding(finding_id, severity, obj, evidence, remedy):
    return {'id': finding_id, 'severity': severity, 'object': obj, 'evidence': evidence, 'remedy': remedy}


def _meta(obj, key, default=None):
    return (obj.get('metadata') or {}).get(key, default)


def _ref(obj, kind=None):
    """'Kind/namespace/name' (namespace left out for cluster objects)."""
    kind = kind or obj.get('kind') or 'Object'
    namespace = _meta(obj, 'namespace')
    return '/'.join(part for part in (kind, namespace, _meta(obj, 'name')) if part)


def label_selector_matches(selector, labels):
    """Kubernetes LabelSelector semantics (matchLabels and matchExpressions): None selects nothing, {} everything."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get('matchLabels') or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get('matchExpressions') or []:
        key, operator, values = expression.get('key'), expression.get('operator'), expression.get('values') or []
        if operator == 'In' and labels.get(key) not in values:
            return False
        if operator == 'NotIn' and key in labels and labels[key] in values:
            return False
        if operator == 'Exists' and key not in labels:
            return False
        if operator == 'DoesNotExist' and key in labels:
            return False
    return True


def workload_ref(facts, settings):
    """'StatefulSet/namespace/name' of the serving workload (the vllm role's kind when it is missing)."""
    workload = facts.get('workload') or {}
    return '%s/%s/%s' % (workload.get('kind') or 'StatefulSet', settings.get('vllm_namespace'), settings.get('vllm_name'))


def serving_pods(facts, settings):
    """The serving workload's pods: those its selector matches (Deployment or StatefulSet), else by the vLLM label."""
    workload = facts.get('workload') or {}
    selector = (workload.get('spec') or {}).get('selector') or {'matchLabels': {'app.kubernetes.io/name': 'vllm'}}
    return [pod for pod in facts.get('pods') or [] if label_selector_matches(selector, _meta(pod, 'labels'))]


def _events_for(events, kind, name):
    found = [event for event in events or []
             if (event.get('involvedObject') or event.get('regarding') or {}).get('kind') == kind
             and (event.get('involvedObject') or event.get('regarding') or {}).get('name') == name]
    return sorted(found, key=lambda event: event.get('lastTimestamp') or event.get('eventTime') or '')


def _event_message(event):
    return event.get('message') or event.get('note') or ''


def _pod_requests(pod, resource):
    total = 0.0
    for container in (pod.get('spec') or {}).get('containers') or []:
        requests = (container.get('resources') or {}).get('requests') or {}
        limits = (container.get('resources') or {}).get('limits') or {}
        total += quantity(requests.get(resource, limits.get(resource))) or 0.0
    return total


def _is_terminated(pod):
    return (pod.get('status') or {}).get('phase') in ('Succeeded', 'Failed')


def gpu_capacity_by_node(nodes, pods):
    """{node: {'product', 'allocatable', 'requested', 'free'}} for nodes that advertise nvidia.com/gpu."""
    requested = {}
    for pod in pods or []:
        node = (pod.get('spec') or {}).get('nodeName')
        if node and not _is_terminated(pod):
            requested[node] = requested.get(node, 0.0) + _pod_requests(pod, GPU_RESOURCE)
    capacity = {}
    for node in nodes or []:
        allocatable = quantity(((node.get('status') or {}).get('allocatable') or {}).get(GPU_RESOURCE))
        if not allocatable:
            continue
        name = _meta(node, 'name')
        used = requested.get(name, 0.0)
        capacity[name] = {'product': (_meta(node, 'labels') or {}).get(PRODUCT_LABEL), 'allocatable': int(allocatable),
                          'requested': int(used), 'free': int(allocatable - used)}
    return capacity


def _scheduling_findings(pod, events, facts, settings):
    """A pending pod: the scheduler's last FailedScheduling message, translated."""
    ref = _ref(pod, 'Pod')
    failed = [event for event in _events_for(events, 'Pod', _meta(pod, 'name')) if event.get('reason') == 'FailedScheduling']
    conditions = [c for c in (pod.get('status') or {}).get('conditions') or [] if c.get('type') == 'PodScheduled']
    message = _event_message(failed[-1]) if failed else (conditions[0].get('message') if conditions else '')
    if not message:
        return [finding('pod_pending', WARNING, ref, 'phase Pending, no scheduler message yet',
                        'Wait for the scheduler, then run diagnose again.')]
    found = []
    products = list(settings.get('vllm_gpu_products') or [])
    if 'Insufficient %s' % GPU_RESOURCE in message:
        asked = int(_pod_requests(pod, GPU_RESOURCE))
        capacity = gpu_capacity_by_node(facts.get('nodes'), facts.get('pods'))
        free = ', '.join('%s (%s): %d of %d free' % (name, info['product'], info['free'], info['allocatable'])
                         for name, info in sorted(capacity.items())
                         if not products or info['product'] in products) or 'no node of %s' % ', '.join(products)
        largest = max([info['allocatable'] for info in capacity.values()] or [0])
        if asked > largest:
            remedy = ('The pod asks %d GPUs, more than any node has (%d): lower vllm_tensor_parallel_size x '
                      'vllm_pipeline_parallel_size to at most %d, or add nodes with more GPUs.' % (asked, largest, largest))
        else:
            remedy = ('The pod asks %d GPUs and no node has that many free: add GPU nodes of vllm_gpu_products, lower '
                      'autoscaling_max_replicas, or free GPUs used by other pods.' % asked)
        found.append(finding('pod_pending_insufficient_gpu', CRITICAL, ref,
                             '%s | asked %d nvidia.com/gpu; %s' % (message, asked, free), remedy))
    # kube-scheduler 1.37 (volumebinding/binder.go ErrReasonNodeConflict); "volume node affinity conflict" before.
    if "didn't match PersistentVolume's node affinity" in message or 'volume node affinity conflict' in message:
        claims = [volume['persistentVolumeClaim']['claimName'] for volume in (pod.get('spec') or {}).get('volumes') or []
                  if volume.get('persistentVolumeClaim')]
        bound = []
        for claim in facts.get('pvcs') or []:
            if _meta(claim, 'name') in claims:
                volume_name = (claim.get('spec') or {}).get('volumeName')
                nodes = _volume_nodes(facts.get('pvs'), volume_name)
                bound.append('%s bound to %s on %s' % (_meta(claim, 'name'), volume_name, ', '.join(nodes) or 'no node'))
        found.append(finding('pod_pending_volume_node_conflict', CRITICAL, ref,
                             '%s | %s' % (message, '; '.join(bound) or 'claims: %s' % ', '.join(claims)),
                             'The model-cache claim is bound to a local volume on another node than the ones that can '
                             'take the pod. Free GPUs on that node, or delete the claim (it is a cache: the next '
                             'run of the vllm role recreates it, sized by vllm_model_cache_size) so it binds where '
                             'the pod fits.'))
    if "didn't match Pod's node affinity/selector" in message:
        present = sorted(set(info['product'] for info in gpu_capacity_by_node(facts.get('nodes'), []).values()))
        if not set(products) & set(present):
            found.append(finding('pod_pending_no_gpu_product', CRITICAL, ref,
                                 '%s | vllm_gpu_products: %s; GPU products in the cluster: %s' % (
                                     message, ', '.join(products) or 'none', ', '.join(p or 'unlabelled' for p in present) or 'none'),
                                 'Set vllm_gpu_products to products the nodes carry (label nvidia.com/gpu.product), '
                                 'or add nodes of that product.'))
    if 'untolerated taint' in message:
        taints = sorted(set('%s=%s:%s' % (taint.get('key'), taint.get('value', ''), taint.get('effect'))
                            for node in facts.get('nodes') or [] for taint in (node.get('spec') or {}).get('taints') or []))
        found.append(finding('pod_pending_untolerated_taint', CRITICAL, ref,
                             '%s | node taints: %s' % (message, ', '.join(taints) or 'none'),
                             'Add the taint to vllm_tolerations if the pod may run there, or remove the taint from '
                             'the GPU nodes.'))
    if not found:
        found.append(finding('pod_unschedulable', CRITICAL, ref, message,
                             'Read the scheduler message: each clause names a node count and the reason it was '
                             'filtered out.'))
    return found


def _volume_nodes(pvs, volume_name):
    for volume in pvs or []:
        if _meta(volume, 'name') == volume_name:
            terms = (((volume.get('spec') or {}).get('nodeAffinity') or {}).get('required') or {}).get('nodeSelectorTerms') or []
            return sorted(value for term in terms for expression in term.get('matchExpressions') or []
                          for value in expression.get('values') or [])
    return []


def scan_log(text):
    """[(signature id, matched text, groups)] for each vLLM signature found in a container log, first match each."""
    matches = []
    for signature, pattern in LOG_SIGNATURES:
        match = pattern.search(text or '')
        if match:
            matches.append((signature, match.group(0).strip(), match.groups()))
    return matches


def _log_findings(ref, text, settings):
    found = []
    for signature, quoted, groups in scan_log(text):
        if signature in ('vllm_weights_oom', 'vllm_cuda_oom'):
            found.append(finding('vllm_cuda_out_of_memory', CRITICAL, ref, quoted,
                                 'The model does not fit the GPU memory vLLM may use: raise vllm_tensor_parallel_size '
                                 '(now %s), set vllm_quantization, lower vllm_max_model_len (now %s), or lower '
                                 'vllm_gpu_memory_utilization (now %s) when other processes share the GPU.' % (
                                     settings.get('vllm_tensor_parallel_size'), settings.get('vllm_max_model_len'),
                                     settings.get('vllm_gpu_memory_utilization'))))
        elif signature == 'vllm_kv_cache_too_small':
            estimate = groups[3]
            found.append(finding('vllm_kv_cache_too_small', CRITICAL, ref, quoted,
                                 'Set vllm_max_model_len to %s or less (the model asks %s), or raise '
                                 'vllm_gpu_memory_utilization (now %s) or vllm_tensor_parallel_size.' % (
                                     estimate or 'a smaller value', groups[0], settings.get('vllm_gpu_memory_utilization'))))
        elif signature == 'vllm_no_kv_cache_memory':
            found.append(finding('vllm_kv_cache_too_small', CRITICAL, ref, quoted,
                                 'The weights leave no memory for the KV cache: raise vllm_gpu_memory_utilization '
                                 '(now %s) or vllm_tensor_parallel_size, or set vllm_quantization.' % (
                                     settings.get('vllm_gpu_memory_utilization'))))
        elif signature in ('vllm_port_uri', 'vllm_port_invalid'):
            found.append(finding('vllm_port_environment', CRITICAL, ref, quoted,
                                 'Kubernetes injects <SERVICE>_PORT=tcp://... for every Service in the namespace; a '
                                 'Service named "vllm" sets VLLM_PORT. Rename it (vllm_service_name) or the Service '
                                 'in the namespace named vllm.'))
        elif signature == 'vllm_offline_cache_miss':
            found.append(finding('vllm_offline_cache_miss', CRITICAL, ref, quoted,
                                 'HF_HUB_OFFLINE=1 and the model is not in the cache: run playbooks/prewarm.yml for '
                                 'vllm_model on this node, or set vllm_model_cache_prewarmed: false.'))
    # One finding per kind and container: vLLM's own message first, the allocator's behind it is the same cause.
    unique = []
    for item in found:
        if item['id'] not in [kept['id'] for kept in unique]:
            unique.append(item)
    return unique


def _container_findings(pod, events, logs, settings):
    ref = _ref(pod, 'Pod')
    found = []
    pod_logs = (logs or {}).get(_meta(pod, 'name')) or {}
    pod_events = _events_for(events, 'Pod', _meta(pod, 'name'))
    for status in (pod.get('status') or {}).get('containerStatuses') or []:
        name = status.get('name')
        where = '%s container %s' % (ref, name)
        state = status.get('state') or {}
        last = (status.get('lastState') or {}).get('terminated') or {}
        terminated = state.get('terminated') or {}
        waiting = state.get('waiting') or {}
        restarts = status.get('restartCount') or 0
        for ended in (terminated, last):
            if ended.get('reason') == 'OOMKilled':
                found.append(finding('container_oom_killed', CRITICAL, where,
                                     'terminated OOMKilled (exit code %s) at %s, %d restarts' % (
                                         ended.get('exitCode'), ended.get('finishedAt'), restarts),
                                     'The container passed its host-memory limit: raise vllm_memory_limit (now %s) '
                                     'and vllm_memory_request (now %s); loading weights through host memory needs '
                                     'about the model size free.' % (settings.get('vllm_memory_limit'),
                                                                     settings.get('vllm_memory_request'))))
                break
        if waiting.get('reason') in IMAGE_PULL_REASONS:
            found.append(finding('image_pull_failed', CRITICAL, where,
                                 '%s: %s' % (waiting.get('reason'), waiting.get('message') or status.get('image')),
                                 'Check vllm_image_repository, vllm_image_tag and vllm_image_digest, and that the '
                                 'nodes can reach the registry.'))
        startup_kills = [event for event in pod_events if event.get('reason') == 'Killing'
                         and 'failed startup probe' in _event_message(event)]
        if startup_kills:
            found.append(finding('startup_probe_exhausted', CRITICAL, where,
                                 '%s (x%s)' % (_event_message(startup_kills[-1]), startup_kills[-1].get('count') or 1),
                                 'The model did not load within vllm_startup_timeout_seconds (now %s): raise it, or '
                                 'pre-warm the model cache (playbooks/prewarm.yml, vllm_model_cache_prewarmed).' % (
                                     settings.get('vllm_startup_timeout_seconds'))))
        container_logs = pod_logs.get(name) or {}
        log_found = _log_findings(where, '%s\n%s' % (container_logs.get('previous') or '', container_logs.get('current') or ''),
                                  settings)
        found.extend(log_found)
        if waiting.get('reason') == 'CrashLoopBackOff' and not log_found and not any(
                f['object'] == where for f in found):
            found.append(finding('container_crash_loop', CRITICAL, where,
                                 'CrashLoopBackOff, %d restarts, last exit: %s (exit code %s)' % (
                                     restarts, last.get('reason'), last.get('exitCode')),
                                 'Read the previous log (playbooks/support_bundle.yml collects it) for the error '
                                 'vLLM exited with.'))
    return found


def _env_value(pod, name):
    for container in (pod.get('spec') or {}).get('containers') or []:
        for variable in container.get('env') or []:
            if variable.get('name') == name:
                return variable.get('value')
    return None


def _cold_start_findings(pods, facts, settings):
    found = []
    caches = facts.get('node_caches') or {}
    model = settings.get('vllm_model')
    for pod in pods:
        node = (pod.get('spec') or {}).get('nodeName')
        offline = _env_value(pod, 'HF_HUB_OFFLINE') == '1'
        if node in caches:
            models = caches[node].get('models') or []
            if model and model not in models:
                found.append(finding('model_not_prewarmed', CRITICAL if offline else WARNING, _ref(pod, 'Pod'),
                                     'node %s holds %s in its model cache; the pod serves %s%s' % (
                                         node, ', '.join(models) or 'no model', model,
                                         ' with HF_HUB_OFFLINE=1' if offline else ''),
                                     'Run playbooks/prewarm.yml for vllm_model on %s (or limit the pods to '
                                     'pre-warmed nodes).' % node))
    downloading = [pod for pod in pods if _env_value(pod, 'HF_HUB_OFFLINE') != '1']
    if downloading:
        # NetworkPolicies add up: egress is blocked only when some policy selects the pod for Egress and none of
        # those allows port 443.
        selecting = [policy for policy in facts.get('network_policies') or []
                     if 'Egress' in ((policy.get('spec') or {}).get('policyTypes') or [])
                     and label_selector_matches((policy.get('spec') or {}).get('podSelector') or {},
                                                _meta(downloading[0], 'labels'))]
        allowing = [policy for policy in selecting if any(
            not rule.get('ports') or any(str(port.get('port')) in ('443', 'https') for port in rule.get('ports') or [])
            for rule in (policy.get('spec') or {}).get('egress') or [])]
        if selecting and not allowing:
            found.append(finding('model_download_blocked', CRITICAL if settings.get('vllm_model_cache_prewarmed') is False
                                 else WARNING, _ref(downloading[0], 'Pod'),
                                 'HF_HUB_OFFLINE unset (the pods download the model), and the egress policies '
                                 'selecting them allow no port 443: %s' % ', '.join(
                                     _ref(policy, 'NetworkPolicy') for policy in selecting),
                                 'Allow the download (network_policy_allow_model_download: true, to '
                                 'network_policy_model_download_cidr), or pre-warm the cache (playbooks/prewarm.yml) '
                                 'and set vllm_model_cache_prewarmed: true.'))
    return found


def _condition(obj, condition_type):
    for condition in (obj.get('status') or {}).get('conditions') or []:
        if condition.get('type') == condition_type:
            return condition
    return None


def _scaling_findings(pods, facts, settings):
    found = []
    hpas = facts.get('hpas') or []
    scaled_objects = facts.get('scaled_objects') or []
    name = settings.get('vllm_name')
    found.extend(_autoscaler_presence_findings(hpas, scaled_objects, facts, settings))
    for hpa in hpas:
        ref = _ref(hpa, 'HorizontalPodAutoscaler')
        active = _condition(hpa, 'ScalingActive')
        able = _condition(hpa, 'AbleToScale')
        limited = _condition(hpa, 'ScalingLimited')
        if active and active.get('status') == 'False':
            metric_apis = _api_services_text(facts)
            found.append(finding('hpa_metric_unavailable', CRITICAL, ref,
                                 'ScalingActive=False %s: %s | metric APIs: %s' % (
                                     active.get('reason'), active.get('message'), metric_apis),
                                 'The HPA cannot read its metric. With autoscaling_mode prometheus_adapter, install '
                                 'the Prometheus adapter (autoscaling_prometheus_adapter_install: true), or use KEDA '
                                 '(autoscaling_mode: keda); and check that Prometheus at autoscaling_prometheus_url '
                                 'has vllm:num_requests_waiting for model_name %s.' % settings.get('vllm_served_model_name')))
        if able and able.get('status') == 'False':
            found.append(finding('hpa_unable_to_scale', CRITICAL, ref,
                                 'AbleToScale=False %s: %s' % (able.get('reason'), able.get('message')),
                                 'The HPA cannot change the target\'s scale: check autoscaling_target_name (%s) '
                                 'names the serving workload.' % name))
        if limited and limited.get('status') == 'True' and limited.get('reason') == 'TooManyReplicas':
            status = hpa.get('status') or {}
            found.append(finding('replicas_at_max', WARNING, ref,
                                 'ScalingLimited=True TooManyReplicas: %s (desired %s, max %s)' % (
                                     limited.get('message'), status.get('desiredReplicas'),
                                     (hpa.get('spec') or {}).get('maxReplicas')),
                                 'Raise autoscaling_max_replicas (now %s) if there are GPUs for more replicas.' % (
                                     settings.get('autoscaling_max_replicas'))))
    for scaled in scaled_objects:
        ref = _ref(scaled, 'ScaledObject')
        ready = _condition(scaled, 'Ready')
        if ready and ready.get('status') != 'True':
            found.append(finding('scaledobject_not_ready', CRITICAL, ref,
                                 'Ready=%s %s: %s' % (ready.get('status'), ready.get('reason'), ready.get('message')),
                                 'KEDA cannot read the trigger: check autoscaling_prometheus_url and that the query '
                                 'returns a value for model_name %s.' % settings.get('vllm_served_model_name')))
        elif not (scaled.get('status') or {}).get('conditions'):
            found.append(finding('keda_not_reconciling', CRITICAL, ref,
                                 'the ScaledObject has no status conditions (created %s) | metric APIs: %s' % (
                                     _meta(scaled, 'creationTimestamp'), _api_services_text(facts)),
                                 'KEDA\'s operator is not running or not watching the namespace: install KEDA before '
                                 'using autoscaling_mode keda.'))
    found.extend(_prometheus_findings(facts.get('prometheus') or {}, settings))
    # Pending pods are a scale-up the cluster cannot place only when the autoscaler asked for more than its floor
    # (a replica recreated at the minimum is a scheduling finding, not a scaling one).
    pending = [pod for pod in pods if (pod.get('status') or {}).get('phase') == 'Pending']
    for hpa in hpas:
        desired = (hpa.get('status') or {}).get('desiredReplicas') or 0
        floor = (hpa.get('spec') or {}).get('minReplicas') or 1
        if pending and desired > floor:
            found.append(finding('scale_up_pending', WARNING, _ref(hpa, 'HorizontalPodAutoscaler'),
                                 'desired %d replicas (min %d, max %s); %d of %d serving pods Pending: %s' % (
                                     desired, floor, (hpa.get('spec') or {}).get('maxReplicas'), len(pending), len(pods),
                                     ', '.join(_meta(pod, 'name') for pod in pending)),
                                 'The autoscaler asked for more replicas than the cluster can place: see the '
                                 'pod_pending findings for why, and size autoscaling_max_replicas to the GPUs there are.'))
    return found


def _prometheus_findings(prometheus, settings):
    """The autoscaler's series, asked of the configured Prometheus (diagnose_prometheus_url)."""
    if not prometheus.get('queried'):
        return []
    where = 'Prometheus %s' % prometheus.get('url')
    if not prometheus.get('answered'):
        return [finding('prometheus_unreachable', WARNING, where, 'query %s: %s' % (
            prometheus.get('query'), prometheus.get('error') or 'no answer'),
            'Set diagnose_prometheus_url to a Prometheus reachable from the k8s_api host (for example a '
            'port-forward, playbooks/debug_commands.yml) to check the autoscaler\'s metric.')]
    if prometheus.get('series'):
        return []
    elsewhere = ['%s/%s' % (labels.get('namespace', '?'), labels.get('model_name', '?'))
                 for labels in prometheus.get('elsewhere') or []]
    served = settings.get('autoscaling_served_model_name')
    if elsewhere:
        evidence = 'query %s returned no series; Prometheus has vllm:num_requests_waiting for namespace/model_name: %s' % (
            prometheus.get('query'), ', '.join(sorted(elsewhere)))
        remedy = ('The autoscaler asks for model_name %s in namespace %s, and vLLM reports another name: set '
                  'autoscaling_served_model_name (now %s) to vLLM\'s --served-model-name (vllm_served_model_name, now '
                  '%s), or leave it unset so it follows vllm_served_model_name.' % (
                      served, settings.get('autoscaling_namespace'), served, settings.get('vllm_served_model_name')))
    else:
        evidence = 'query %s returned no series; Prometheus has vllm:num_requests_waiting for no model at all' % (
            prometheus.get('query'))
        remedy = ('Prometheus scrapes no vLLM pod: check that the monitoring role\'s ServiceMonitor is selected '
                  '(monitoring_object_labels), that monitoring_vllm_namespaces holds %s, and that the pods are Ready.' % (
                      settings.get('vllm_namespace')))
    return [finding('metric_absent_in_prometheus', CRITICAL, where, evidence, remedy)]


def _autoscaler_presence_findings(hpas, scaled_objects, facts, settings):
    """The autoscaler autoscaling_mode asks for, and the API it reads through, exist."""
    mode = settings.get('autoscaling_mode')
    where = workload_ref(facts, settings)
    unread = (facts.get('unread') or {}).get('scaled_objects') or {}
    if mode == 'keda' and unread and not unread.get('served'):
        return [finding('keda_missing', CRITICAL, where,
                        'autoscaling_mode is keda and the cluster serves no keda.sh/v1alpha1 ScaledObject (KEDA\'s '
                        'CRDs are not installed)',
                        'Install KEDA (autoscaling_keda_install: true), or choose another autoscaling_mode.')]
    if mode == 'keda' and not scaled_objects or mode in ('prometheus_adapter', 'resource') and not hpas:
        return [finding('autoscaler_missing', WARNING, where,
                        'autoscaling_mode is %s and no %s targets %s' % (
                            mode, 'ScaledObject' if mode == 'keda' else 'HorizontalPodAutoscaler', settings.get('vllm_name')),
                        'Run playbooks/serving.yml (the autoscaling role), or set autoscaling_mode: none to leave the '
                        'replica count to vllm_replicas.')]
    registered = [_meta(api, 'name') for api in facts.get('api_services') or []]
    if mode == 'prometheus_adapter' and 'v1beta1.custom.metrics.k8s.io' not in registered:
        return [finding('metrics_adapter_missing', CRITICAL, where,
                        'autoscaling_mode is prometheus_adapter and no v1beta1.custom.metrics.k8s.io APIService is '
                        'registered | metric APIs: %s' % _api_services_text(facts),
                        'Install the Prometheus adapter (autoscaling_prometheus_adapter_install: true), or use '
                        'autoscaling_mode: keda.')]
    return []


def _api_services_text(facts):
    return ', '.join('%s %s' % (_meta(api, 'name'), _api_service_state(api))
                     for api in facts.get('api_services') or []) or 'none registered'


def _unread_findings(facts):
    """Kinds the gather could not read: the findings that need them are missing, say so."""
    return [finding('read_failed', WARNING, '%s %s' % (item.get('api_version'), item.get('kind')),
                    item.get('error'), 'The findings that need %s are missing from this report: fix the API it is '
                    'served by, then run diagnose again.' % item.get('kind'))
            for _key, item in sorted((facts.get('unread') or {}).items()) if item.get('error')]


def _api_service_state(api):
    available = _condition(api, 'Available') or {}
    return 'Available=%s%s' % (available.get('status', 'Unknown'),
                               (' (%s)' % available.get('reason')) if available.get('reason') else '')


def _performance_findings(pods, facts, settings):
    found = []
    for node, health in sorted((facts.get('gpu_health') or {}).items()):
        for problem in health.get('problems') or []:
            where = 'Node/%s%s' % (node, '' if problem.get('gpu') is None else ' GPU %s' % problem['gpu'])
            found.append(finding('gpu_health_%s' % problem.get('check'),
                                 CRITICAL if problem.get('severity') == 'critical' else WARNING, where,
                                 problem.get('detail'),
                                 'Drain the node (the gpu_health role taints unhealthy nodes) and follow '
                                 'docs/gpu_health.md for %s.' % problem.get('check')))
    nodes = dict((_meta(node, 'name'), _meta(node, 'labels') or {}) for node in facts.get('nodes') or [])
    running = [pod for pod in pods if (pod.get('status') or {}).get('phase') == 'Running']
    for label, what in ((PRODUCT_LABEL, 'GPU product'),) + tuple((label, 'driver') for label in DRIVER_LABELS[:1]):
        values = dict((_meta(pod, 'name'), nodes.get((pod.get('spec') or {}).get('nodeName'), {}).get(label))
                      for pod in running)
        if len(set(v for v in values.values() if v)) > 1:
            found.append(finding('replica_%s_mismatch' % ('product' if label == PRODUCT_LABEL else 'driver'), WARNING,
                                 workload_ref(facts, settings),
                                 '%s differs across replicas: %s' % (what, ', '.join(
                                     '%s=%s' % item for item in sorted(values.items()))),
                                 'Replicas on different %ss serve at different speeds: narrow vllm_gpu_products to '
                                 'one product and keep one driver version across the GPU nodes.' % what))
    usage = dict((_meta(metric, 'name'), metric) for metric in facts.get('pod_metrics') or [])
    for pod in running:
        metric = usage.get(_meta(pod, 'name'))
        if not metric:
            continue
        used = sum(quantity((container.get('usage') or {}).get('cpu')) or 0.0 for container in metric.get('containers') or [])
        requested = _pod_requests(pod, 'cpu')
        if requested and used > 2 * requested:
            found.append(finding('cpu_request_too_low', WARNING, _ref(pod, 'Pod'),
                                 'uses %.1f CPUs, requests %.1f' % (used, requested),
                                 'The engine uses more CPU than it asks for and is throttled under contention: raise '
                                 'vllm_cpu_request (now %s) to about %d.' % (settings.get('vllm_cpu_request'), int(used + 0.999))))
    return found


def _monitoring_findings(facts, settings):
    found = []
    prometheuses = facts.get('prometheuses') or []
    namespaces = dict((_meta(ns, 'name'), _meta(ns, 'labels') or {}) for ns in facts.get('namespaces') or [])
    for monitor in facts.get('service_monitors') or []:
        selecting = [p for p in prometheuses
                     if _selects(p, 'serviceMonitorSelector', 'serviceMonitorNamespaceSelector', monitor, namespaces)]
        if prometheuses and not selecting:
            found.append(finding('servicemonitor_not_selected', CRITICAL, _ref(monitor, 'ServiceMonitor'),
                                 'labels %s; Prometheus selectors: %s' % (_meta(monitor, 'labels') or {}, '; '.join(
                                     '%s %s' % (_ref(p, 'Prometheus'), (p.get('spec') or {}).get('serviceMonitorSelector'))
                                     for p in prometheuses)),
                                 'No Prometheus selects this ServiceMonitor: add the labels its serviceMonitorSelector '
                                 'asks for to monitoring_object_labels.'))
    for rule in facts.get('prometheus_rules') or []:
        if prometheuses and not any(_selects(p, 'ruleSelector', 'ruleNamespaceSelector', rule, namespaces)
                                    for p in prometheuses):
            found.append(finding('rules_not_loaded', WARNING, _ref(rule, 'PrometheusRule'),
                                 'labels %s match no Prometheus ruleSelector' % (_meta(rule, 'labels') or {}),
                                 'Add the labels the Prometheus ruleSelector asks for to monitoring_object_labels.'))
    sidecars = grafana_dashboard_sidecars(facts.get('grafana_deployments'))
    for config_map in facts.get('dashboards') or []:
        labels = _meta(config_map, 'labels') or {}
        if sidecars:
            if any(_sidecar_loads(sidecar, config_map) for sidecar in sidecars):
                continue
            watched = '; '.join('%s watches %s=%s in %s' % (
                sidecar['ref'], sidecar['label'], sidecar['value'] or '(any)', sidecar['namespaces']) for sidecar in sidecars)
            found.append(finding('dashboard_not_loaded', WARNING, _ref(config_map, 'ConfigMap'),
                                 'labels %s; Grafana\'s dashboard sidecar: %s' % (labels, watched),
                                 'Set monitoring_dashboard_label (now %s) and monitoring_dashboard_label_value (now %s) '
                                 'to the label and value the sidecar watches (%s=%s).' % (
                                     settings.get('monitoring_dashboard_label'),
                                     settings.get('monitoring_dashboard_label_value'), sidecars[0]['label'],
                                     sidecars[0]['value'])))
            continue
        sidecar_label = settings.get('monitoring_dashboard_label') or 'grafana_dashboard'
        if sidecar_label not in labels:
            found.append(finding('dashboard_not_loaded', WARNING, _ref(config_map, 'ConfigMap'),
                                 'dashboard ConfigMap without the %s label' % sidecar_label,
                                 'Grafana\'s sidecar loads only ConfigMaps labelled %s: set monitoring_dashboard_label '
                                 'to the label the sidecar watches.' % sidecar_label))
    return found


def grafana_dashboard_sidecars(deployments):
    """[{ref, label, value, namespaces}] of the dashboard sidecar containers (env LABEL, LABEL_VALUE, NAMESPACE, as
    kube-prometheus-stack's Grafana runs k8s-sidecar) in Grafana Deployments."""
    sidecars = []
    for deployment in deployments or []:
        containers = ((((deployment.get('spec') or {}).get('template') or {}).get('spec') or {}).get('containers') or [])
        for container in containers:
            env = dict((item.get('name'), item.get('value')) for item in container.get('env') or [])
            if 'LABEL' in env and 'dashboard' in (container.get('name') or ''):
                sidecars.append({'ref': _ref(deployment, 'Deployment'), 'label': env['LABEL'],
                                 'value': env.get('LABEL_VALUE'),
                                 'namespaces': env.get('NAMESPACE') or _meta(deployment, 'namespace')})
    return sidecars


def _sidecar_loads(sidecar, config_map):
    labels = _meta(config_map, 'labels') or {}
    if sidecar['label'] not in labels or (sidecar['value'] and labels[sidecar['label']] != sidecar['value']):
        return False
    namespaces = sidecar['namespaces']
    return namespaces == 'ALL' or _meta(config_map, 'namespace') in [part.strip() for part in namespaces.split(',')]


def _selects(prometheus, selector_key, namespace_key, obj, namespaces):
    spec = prometheus.get('spec') or {}
    selector = spec.get(selector_key)
    # The operator selects nothing when the selector is absent (an empty selector selects everything).
    if not label_selector_matches(selector, _meta(obj, 'labels')):
        return False
    namespace_selector = spec.get(namespace_key)
    if namespace_selector is None:
        return _meta(obj, 'namespace') == _meta(prometheus, 'namespace')
    return label_selector_matches(namespace_selector, namespaces.get(_meta(obj, 'namespace'), {}))


def analyse(facts, settings):
    """Every finding for the gathered facts, most severe first (stable order within a severity)."""
    events = facts.get('events') or []
    pods = serving_pods(facts, settings)
    found = []
    if not facts.get('workload'):
        found.append(finding('workload_missing', CRITICAL, workload_ref(facts, settings),
                             'no StatefulSet or Deployment of that name',
                             'Run playbooks/serving.yml, or set vllm_namespace and vllm_name to the workload to diagnose.'))
    for pod in pods:
        status = pod.get('status') or {}
        if status.get('phase') == 'Pending' and not (pod.get('spec') or {}).get('nodeName'):
            found.extend(_scheduling_findings(pod, events, facts, settings))
        found.extend(_container_findings(pod, events, facts.get('logs'), settings))
    products = settings.get('vllm_gpu_products') or []
    if settings.get('vllm_prefer_spot'):
        capacity_types = set((_meta(node, 'labels') or {}).get(CAPACITY_TYPE_LABEL) for node in facts.get('nodes') or []
                             if (_meta(node, 'labels') or {}).get(PRODUCT_LABEL) in products)
        if capacity_types and 'spot' not in capacity_types:
            found.append(finding('spot_preference_unsatisfiable', INFO, 'Node', 'vllm_prefer_spot is true and no node '
                                 'of %s is labelled %s=spot' % (', '.join(products), CAPACITY_TYPE_LABEL),
                                 'The preference is soft: pods run on on-demand nodes. Set vllm_prefer_spot: false '
                                 'to say so, or add spot capacity.'))
    found.extend(_cold_start_findings(pods, facts, settings))
    found.extend(_scaling_findings(pods, facts, settings))
    found.extend(_performance_findings(pods, facts, settings))
    found.extend(_monitoring_findings(facts, settings))
    found.extend(_unread_findings(facts))
    order = dict((severity, index) for index, severity in enumerate(SEVERITIES))
    return sorted(found, key=lambda item: order[item['severity']])


def summary_line(item):
    """The one line printed per finding."""
    return '%s %s %s: %s' % (item['severity'].upper(), item['id'], item['object'], item['evidence'])
