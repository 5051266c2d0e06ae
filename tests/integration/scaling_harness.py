"""The autoscaling loop's real parts, run as local processes against the local cluster.

- KEDA v2.20.2 (operator and metrics API server, built by scripts/build-tools.sh
  keda). Its CRDs, RBAC, Services and APIService come from the real chart
  (../shared/charts/keda-2.20.2.tgz, see shared_dir(); `helm template` with the pinned helm),
  transformed the way kwokctl runs metrics-server: no Deployments; each
  Service becomes ExternalName 127.0.0.1 and the APIService points at the
  local port, so the kube-apiserver's aggregator reaches the local process.
  Each process runs with its chart ServiceAccount's token (the chart's RBAC
  is what it gets) and with the arguments and environment of the chart's
  Deployment, except listen addresses and the certificate folder. The
  operator's own certificate rotation fills the kedaorg-certs Secret and
  exits once to be restarted, as in a pod; KedaProcesses plays the kubelet:
  it restarts it and projects that Secret into the certificate folder.
- Prometheus 3.16 (built by scripts/build-tools.sh prometheus) discovering the
  vLLM pods through the API server (kubernetes_sd_configs role pod), with the
  labels the monitoring role's ServiceMonitor gives (job, namespace, pod;
  model_name comes from vLLM's series), and the monitoring role's alert rules.
  Its relabeling rewrites every target address to 127.0.0.1:<port of the
  pod's simulated exporter> and drops any target that is not on 127.0.0.1,
  before any scrape: KWOK pods have 10.0.0.x addresses, never contacted.
"""
import base64
import copy
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import yaml
from kubernetes import client

from built_tools import REPO_ROOT, tool_dir  # pylint: disable=import-error
from cluster_helpers import delete_if_present, poll, shared_dir  # pylint: disable=import-error
from vllm_exporter import EXPORTER_PORT_ANNOTATION  # pylint: disable=import-error

KEDA_CHART_FILE = os.path.join('charts', 'keda-2.20.2.tgz')
KEDA_NAMESPACE = 'keda'
KEDA_RELEASE = 'keda'
EXTERNAL_METRICS_API = 'v1beta1.external.metrics.k8s.io'
# The chart's certificate mount path and Secret (values certificates.mountPath / secretName).
CHART_CERT_DIR = '/certs'
CERT_SECRET = 'kedaorg-certs'
RULES_FILE = os.path.join(REPO_ROOT, 'roles', 'monitoring', 'files', 'vllm-gpu.rules.yml')
MONITORING_DEFAULTS = os.path.join(REPO_ROOT, 'roles', 'monitoring', 'defaults', 'main.yml')
START_TIMEOUT_S = 300


def free_port():
    """A free TCP port on 127.0.0.1 (bound and released: good enough for a test's processes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def http_get(url, timeout=10):
    """GET a loopback URL; returns (status, body)."""
    assert urllib.parse.urlparse(url).hostname == '127.0.0.1', url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # nosec: loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class LocalProcess:
    """A process this harness started (stopped by its own pid), its output in LOG."""

    def __init__(self, name, argv, env, log_path, cwd):
        self.name, self.argv, self.env, self.log_path, self.cwd = name, argv, env, log_path, cwd
        self.proc = None
        self.starts = 0

    def start(self):
        with open(self.log_path, 'ab') as log:
            log.write(('\n=== start %d: %s\n' % (self.starts + 1, ' '.join(self.argv))).encode())
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,  # pylint: disable=consider-using-with
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.starts += 1

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as handle:
                return ''.join(handle.readlines()[-lines:])
        except OSError:
            return ''


def wait_for_process(predicate, what, *processes, timeout=START_TIMEOUT_S, interval=2.0):
    """poll(), and on a timeout the last lines of the processes' logs in the message."""
    try:
        return poll(predicate, timeout, interval=interval, what=what)
    except AssertionError as error:
        tails = ''.join('\n--- %s (%s):\n%s' % (p.name, p.log_path, p.log_tail()) for p in processes if p is not None)
        raise AssertionError('%s%s' % (error, tails)) from None


def _tool_dirs():
    return {
        'keda': tool_dir('keda', 'KEDA_BIN_DIR', ['keda-operator', 'keda-adapter']),
        'prometheus': tool_dir('prometheus', 'PROMETHEUS_BIN_DIR', ['prometheus']),
        'helm': tool_dir('helm', 'HELM_BIN_DIR', ['helm']),
        'kubernetes': tool_dir('kubernetes', 'KUBERNETES_BIN_DIR', ['kubectl']),
    }


def render_keda_chart(helm_binary):
    """The chart's objects as `helm template` renders them (admission webhooks off: nothing runs them)."""
    proc = subprocess.run([helm_binary, 'template', KEDA_RELEASE, os.path.join(shared_dir(KEDA_CHART_FILE), KEDA_CHART_FILE), '--namespace', KEDA_NAMESPACE,
                           '--set', 'webhooks.enabled=false'],
                          capture_output=True, text=True, timeout=120, check=True)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def localize_keda_objects(objects, adapter_port):
    """Split the rendered chart into (objects to apply, Deployments by name), kwokctl-style."""
    applied, deployments = [], {}
    for obj in objects:
        obj = copy.deepcopy(obj)
        kind = obj['kind']
        if kind == 'Deployment':
            deployments[obj['metadata']['name']] = obj
            continue
        if kind == 'Service':
            # The aggregator resolves an ExternalName Service to that host and the APIService's port.
            obj['spec'] = {'type': 'ExternalName', 'externalName': '127.0.0.1'}
        elif kind == 'APIService':
            obj['spec']['service']['port'] = adapter_port
        elif kind in ('PodDisruptionBudget', 'NetworkPolicy'):
            continue  # about pods, and no pod runs
        applied.append(obj)
    return applied, deployments


def local_args(args, cert_dir, overrides):
    """A chart container's args with the certificate folder moved and some flags replaced (--name=value)."""
    replaced = {override.split('=', 1)[0] for override in overrides}
    kept = [arg.replace(CHART_CERT_DIR + '/', cert_dir + '/').replace('=' + CHART_CERT_DIR, '=' + cert_dir)
            for arg in args if arg.split('=', 1)[0] not in replaced]
    return kept + list(overrides)


def local_env(container, pod_name):
    """A chart container's environment, with the downward-API values a pod would get."""
    env = {}
    for item in container.get('env', []):
        if 'value' in item:
            env[item['name']] = str(item['value'])
        elif item.get('valueFrom', {}).get('fieldRef', {}).get('fieldPath') == 'metadata.namespace':
            env[item['name']] = KEDA_NAMESPACE
        elif item.get('valueFrom', {}).get('fieldRef', {}).get('fieldPath') == 'metadata.name':
            env[item['name']] = pod_name
    return env


class Kubectl:
    def __init__(self, binary, kubeconfig):
        self.binary, self.kubeconfig = binary, kubeconfig

    def __call__(self, *args, stdin=None, check=True, timeout=180):
        proc = subprocess.run([self.binary, '--kubeconfig', self.kubeconfig, '--request-timeout=60s'] + list(args),
                              input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError('kubectl %s failed: %s%s' % (' '.join(args), proc.stdout[-2000:], proc.stderr[-3000:]))
        return proc


def service_account_kubeconfig(api_client, admin_kubeconfig, namespace, name, path):
    """A kubeconfig that authenticates as ServiceAccount NAMESPACE/NAME (a TokenRequest token)."""
    token = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        name, namespace, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=6 * 3600))).status.token
    with open(admin_kubeconfig, encoding='utf-8') as handle:
        admin = yaml.safe_load(handle)
    context_name = admin['current-context']
    context = next(c for c in admin['contexts'] if c['name'] == context_name)['context']
    cluster = next(c for c in admin['clusters'] if c['name'] == context['cluster'])
    config = {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'sa',
        'clusters': [cluster],
        'users': [{'name': 'sa', 'user': {'token': token}}],
        'contexts': [{'name': 'sa', 'context': {'cluster': cluster['name'], 'user': 'sa'}}],
    }
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(config, handle)
    os.chmod(path, 0o600)
    return path


class KedaProcesses:
    """KEDA's operator and metrics API server on this machine, installed into the cluster from the real chart."""

    def __init__(self, api_client, kubeconfig, workdir):
        self.api = api_client
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.dirs = _tool_dirs()
        self.kubectl = Kubectl(os.path.join(self.dirs['kubernetes'], 'kubectl'), kubeconfig)
        self.cert_dir = os.path.join(workdir, 'keda-tls')
        os.makedirs(self.cert_dir, exist_ok=True)
        self.adapter_port = free_port()
        self.grpc_port = free_port()
        self.operator_health_port = free_port()
        self.operator = self.adapter = None
        self.applied = []
        self._stop = threading.Event()
        self._supervisor = None
        self.max_operator_starts = 6

    # --- install ------------------------------------------------------------------------------------------
    def install(self):
        objects = render_keda_chart(os.path.join(self.dirs['helm'], 'helm'))
        self.applied, deployments = localize_keda_objects(objects, self.adapter_port)
        core = client.CoreV1Api(self.api)
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=KEDA_NAMESPACE)))
        except client.exceptions.ApiException as error:
            if error.status != 409:
                raise
        manifest = yaml.safe_dump_all(self.applied)
        self.kubectl('apply', '--server-side', '--force-conflicts', '--field-manager=llmscale-test-keda', '-f', '-',
                     stdin=manifest)
        self.kubectl('wait', '--for=condition=Established', '--timeout=120s', '-f', '-', stdin=yaml.safe_dump_all(
            [o for o in self.applied if o['kind'] == 'CustomResourceDefinition']))
        self.operator = self._operator_process(deployments['keda-operator'])
        self.adapter = self._adapter_process(deployments['keda-operator-metrics-apiserver'])
        return self

    def _operator_process(self, deployment):
        spec = deployment['spec']['template']['spec']
        container = spec['containers'][0]
        kubeconfig = service_account_kubeconfig(self.api, self.kubeconfig, KEDA_NAMESPACE, spec['serviceAccountName'],
                                                os.path.join(self.workdir, 'operator.kubeconfig'))
        args = local_args(container.get('args', []), self.cert_dir, [
            '--leader-elect=false',  # one local process; a restart need not wait for its old lease
            '--cert-dir=' + self.cert_dir,
            '--metrics-bind-address=127.0.0.1:%d' % free_port(),
            '--health-probe-bind-address=127.0.0.1:%d' % self.operator_health_port,
            '--metrics-service-bind-address=127.0.0.1:%d' % self.grpc_port,
            '--ca-dir=' + os.path.join(self.workdir, 'custom-ca'),
        ])
        env = dict(os.environ, KUBECONFIG=kubeconfig, KEDA_CLUSTER_OBJECT_NAMESPACE=KEDA_NAMESPACE,
                   **local_env(container, 'keda-operator-local'))
        os.makedirs(os.path.join(self.workdir, 'custom-ca'), exist_ok=True)
        return LocalProcess('keda-operator', [os.path.join(self.dirs['keda'], 'keda-operator')] + args, env,
                            os.path.join(self.workdir, 'keda-operator.log'), self.workdir)

    def _adapter_process(self, deployment):
        spec = deployment['spec']['template']['spec']
        container = spec['containers'][0]
        kubeconfig = service_account_kubeconfig(self.api, self.kubeconfig, KEDA_NAMESPACE, spec['serviceAccountName'],
                                                os.path.join(self.workdir, 'adapter.kubeconfig'))
        args = local_args(container.get('args', []), self.cert_dir, [
            '--port=%d' % free_port(),
            '--secure-port=%d' % self.adapter_port,
            '--bind-address=127.0.0.1',
            '--lister-kubeconfig=' + kubeconfig,
            '--authentication-kubeconfig=' + kubeconfig,
            '--authorization-kubeconfig=' + kubeconfig,
            '--metrics-service-address=127.0.0.1:%d' % self.grpc_port,
            # The operator's certificate names its Service, not 127.0.0.1.
            '--metrics-service-grpc-authority=keda-operator.%s.svc.cluster.local' % KEDA_NAMESPACE,
        ])
        env = dict(os.environ, KUBECONFIG=kubeconfig, KEDA_CLUSTER_OBJECT_NAMESPACE=KEDA_NAMESPACE,
                   **local_env(container, 'keda-metrics-apiserver-local'))
        return LocalProcess('keda-adapter', [os.path.join(self.dirs['keda'], 'keda-adapter')] + args, env,
                            os.path.join(self.workdir, 'keda-adapter.log'), self.workdir)

    # --- the kubelet's part -------------------------------------------------------------------------------
    def _project_certs(self):
        """Write the kedaorg-certs Secret's keys into the certificate folder, as a Secret volume would."""
        try:
            secret = client.CoreV1Api(self.api).read_namespaced_secret(CERT_SECRET, KEDA_NAMESPACE)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return False
            raise
        for key, value in (secret.data or {}).items():
            path = os.path.join(self.cert_dir, key)
            data = base64.b64decode(value)
            try:
                with open(path, 'rb') as handle:
                    if handle.read() == data:
                        continue
            except OSError:
                pass
            with open(path + '.tmp', 'wb') as handle:
                handle.write(data)
            os.chmod(path + '.tmp', 0o600)
            os.replace(path + '.tmp', path)
        return bool(secret.data)

    def _supervise(self):
        while not self._stop.is_set():
            try:
                self._project_certs()
            except Exception:  # pylint: disable=broad-except  # an API hiccup: next round
                pass
            for process in (self.operator, self.adapter):
                if process.proc is not None and not process.running() and not self._stop.is_set():
                    if process.starts >= self.max_operator_starts:
                        continue
                    process.start()  # restartPolicy: Always
            self._stop.wait(1.0)

    # --- start / stop -------------------------------------------------------------------------------------
    def start(self):
        self._project_certs()
        self.operator.start()
        self._supervisor = threading.Thread(target=self._supervise, name='keda-supervisor', daemon=True)
        self._supervisor.start()
        wait_for_process(lambda: http_get('http://127.0.0.1:%d/readyz' % self.operator_health_port, timeout=5)[0] == 200,
                         'keda-operator /readyz', self.operator)
        wait_for_process(lambda: all(os.path.exists(os.path.join(self.cert_dir, key))
                                     for key in ('ca.crt', 'tls.crt', 'tls.key')),
                         'the operator certificates projected into ' + self.cert_dir, self.operator)
        self.adapter.start()
        wait_for_process(self.external_metrics_api_available,
                         'APIService %s Available and answering' % EXTERNAL_METRICS_API, self.operator, self.adapter,
                         interval=3)
        return self

    def external_metrics_api_available(self):
        service = client.ApiregistrationV1Api(self.api).read_api_service(EXTERNAL_METRICS_API)
        available = any(c.type == 'Available' and c.status == 'True' for c in service.status.conditions or [])
        if not available:
            return False
        return api_get(self.api, '/apis/external.metrics.k8s.io/v1beta1').get('groupVersion') == \
            'external.metrics.k8s.io/v1beta1'

    def external_metric(self, namespace, metric, scaled_object):
        """The value KEDA's metrics API server gives the HPA controller (as a float), read through the aggregator."""
        answer = api_get(self.api, '/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/%s' % (namespace, metric),
                         labelSelector='scaledobject.keda.sh/name=' + scaled_object)
        return [parse_quantity(item['value']) for item in answer['items']]

    def stop(self):
        """Stop the processes and remove every object the chart added (ScaledObjects must be gone first)."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=30)
        for process in (self.adapter, self.operator):
            if process is not None:
                process.stop()
        # An APIService with no server behind it breaks API discovery for everyone: remove it first.
        delete_if_present(client.ApiregistrationV1Api(self.api).delete_api_service, EXTERNAL_METRICS_API)
        if self.applied:
            self.kubectl('delete', '--ignore-not-found', '--wait=true', '--timeout=120s', '-f', '-',
                         stdin=yaml.safe_dump_all(self.applied), check=False, timeout=300)
        delete_if_present(client.CoreV1Api(self.api).delete_namespace, KEDA_NAMESPACE)


def api_get(api, path, **query):
    """GET a path of the Kubernetes API (aggregated APIs included) as JSON."""
    method, url, headers, _body, _post = api.param_serialize('GET', path, query_params=list(query.items()),
                                                             auth_settings=['BearerToken'])
    response = api.call_api(method, url, header_params=headers, _request_timeout=20)
    body = response.read()
    if response.status != 200:
        raise RuntimeError('GET %s: %s %s' % (path, response.status, body[:500]))
    return json.loads(body)


def parse_quantity(text):
    """A Kubernetes quantity as the metrics APIs write it ('3', '2500m') as a float."""
    text = str(text)
    if text.endswith('m'):
        return float(text[:-1]) / 1000
    if text.endswith('k'):
        return float(text[:-1]) * 1000
    return float(text)


def monitoring_defaults():
    with open(MONITORING_DEFAULTS, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def prometheus_config(kubeconfig, namespaces, rules_path, scrape_interval, evaluation_interval):
    """A Prometheus configuration discovering vLLM pods as the monitoring role's ServiceMonitor selects them."""
    defaults = monitoring_defaults()
    selector = defaults['monitoring_vllm_service_selector']
    port_name = defaults['monitoring_vllm_metrics_port']
    annotation = 'llmscale_io_test_exporter_port'
    assert EXPORTER_PORT_ANNOTATION == 'llmscale.io/test-exporter-port'
    relabel = [
        # The ServiceMonitor's selector (the vLLM pods carry the Service's labels) and its port.
        *[{'source_labels': ['__meta_kubernetes_pod_label_' + _label_name(key)], 'regex': value, 'action': 'keep'}
          for key, value in selector.items()],
        {'source_labels': ['__meta_kubernetes_pod_container_port_name'], 'regex': port_name, 'action': 'keep'},
        # Every target goes to its pod's simulated exporter on loopback; anything else is dropped.
        {'source_labels': ['__meta_kubernetes_pod_annotation_' + annotation], 'regex': '([0-9]+)',
         'target_label': '__address__', 'replacement': '127.0.0.1:$1', 'action': 'replace'},
        {'source_labels': ['__address__'], 'regex': r'127\.0\.0\.1:[0-9]+', 'action': 'keep'},
        # The labels a ServiceMonitor target gets; job from app.kubernetes.io/name (its jobLabel).
        {'source_labels': ['__meta_kubernetes_namespace'], 'target_label': 'namespace'},
        {'source_labels': ['__meta_kubernetes_pod_name'], 'target_label': 'pod'},
        {'source_labels': ['__meta_kubernetes_pod_container_name'], 'target_label': 'container'},
        {'source_labels': ['__meta_kubernetes_pod_label_app_kubernetes_io_name'], 'target_label': 'job'},
        {'target_label': 'endpoint', 'replacement': port_name},
    ]
    return {
        'global': {'scrape_interval': scrape_interval, 'evaluation_interval': evaluation_interval},
        'rule_files': [rules_path],
        'scrape_configs': [{
            'job_name': 'vllm',
            'metrics_path': '/metrics',
            'kubernetes_sd_configs': [{'role': 'pod', 'kubeconfig_file': kubeconfig,
                                       'namespaces': {'names': list(namespaces)}}],
            'relabel_configs': relabel,
        }],
    }


def _label_name(key):
    return ''.join(ch if ch.isalnum() else '_' for ch in key)


def rules_with_for(alert_for):
    """The monitoring role's rules file, with every alert's `for` set to ALERT_FOR (None: unchanged)."""
    with open(RULES_FILE, encoding='utf-8') as handle:
        rules = yaml.safe_load(handle)
    if alert_for is not None:
        for group in rules['groups']:
            for rule in group['rules']:
                if 'alert' in rule and 'for' in rule:
                    rule['for'] = alert_for
    return rules


class PrometheusProcess:
    """Prometheus 3.16 on 127.0.0.1, discovering and scraping the vLLM pods of NAMESPACES."""

    def __init__(self, kubeconfig, workdir, namespaces, scrape_interval='5s', evaluation_interval='5s', alert_for=None):
        self.dirs = {'prometheus': tool_dir('prometheus', 'PROMETHEUS_BIN_DIR', ['prometheus'])}
        self.workdir = os.path.join(workdir, 'prometheus')
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        rules_path = os.path.join(self.workdir, 'vllm-gpu.rules.yml')
        with open(rules_path, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(rules_with_for(alert_for), handle, sort_keys=False)
        config_path = os.path.join(self.workdir, 'prometheus.yml')
        self.config = prometheus_config(kubeconfig, namespaces, rules_path, scrape_interval, evaluation_interval)
        with open(config_path, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(self.config, handle, sort_keys=False)
        self.process = LocalProcess('prometheus', [
            os.path.join(self.dirs['prometheus'], 'prometheus'),
            '--config.file=' + config_path,
            '--storage.tsdb.path=' + os.path.join(self.workdir, 'data'),
            '--web.listen-address=127.0.0.1:%d' % self.port,
            '--storage.tsdb.retention.time=2h',
        ], dict(os.environ), os.path.join(self.workdir, 'prometheus.log'), self.workdir)

    def start(self):
        self.process.start()
        wait_for_process(lambda: self.process.running() and http_get(self.url + '/-/ready', timeout=5)[0] == 200,
                         'Prometheus /-/ready', self.process)
        return self

    def api(self, path, **params):
        status, body = http_get(self.url + path + ('?' + urllib.parse.urlencode(params) if params else ''), timeout=20)
        answer = json.loads(body)
        if status != 200 or answer.get('status') != 'success':
            raise RuntimeError('Prometheus %s: %s %s' % (path, status, body[:500]))
        return answer['data']

    def query(self, expr):
        return self.api('/api/v1/query', query=expr)['result']

    def value(self, expr):
        """The single value of a scalar-like instant query, or None when it has no result."""
        result = self.query(expr)
        return float(result[0]['value'][1]) if result else None

    def targets(self):
        return self.api('/api/v1/targets', state='any')

    def alerts(self, name=None):
        return [alert for alert in self.api('/api/v1/alerts')['alerts']
                if name is None or alert['labels'].get('alertname') == name]

    def stop(self):
        self.process.stop()


class ReplicaRecorder:
    """Samples the workload's replica count (scale subresource) and the HPA's decision every second, in a thread."""

    def __init__(self, api_client, namespace, name='vllm-server', hpa='keda-hpa-vllm-server', kind='Deployment'):
        apps = client.AppsV1Api(api_client)
        self._read_scale = {'Deployment': apps.read_namespaced_deployment_scale,
                            'StatefulSet': apps.read_namespaced_stateful_set_scale}[kind]
        self.autoscaling = client.AutoscalingV2Api(api_client)
        self.namespace, self.name, self.hpa = namespace, name, hpa
        self.samples = []  # (monotonic time, spec.replicas, HPA desiredReplicas)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                replicas = self._read_scale(self.name, self.namespace).spec.replicas
                status = self.autoscaling.read_namespaced_horizontal_pod_autoscaler(self.hpa, self.namespace).status
                self.samples.append((time.monotonic(), replicas, status.desired_replicas))
            except Exception:  # pylint: disable=broad-except  # an API hiccup: the next sample
                pass
            self._stop.wait(1.0)

    def first(self, since, predicate):
        """Time of the first sample at or after SINCE whose (replicas, desired) satisfies PREDICATE."""
        return next((t for t, replicas, desired in self.samples if t >= since and predicate(replicas, desired)), None)

    def replicas_between(self, start, end=float('inf')):
        return [replicas for t, replicas, _desired in self.samples if start <= t <= end]

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


def direction_changes(counts):
    """How often a replica sequence turns from growing to shrinking or back: up then down is 1."""
    steps = [b - a for a, b in zip(counts, counts[1:]) if b != a]
    return sum(1 for a, b in zip(steps, steps[1:]) if (a > 0) != (b > 0))
