"""Simulated vLLM /metrics endpoints on loopback, one per vLLM pod of the local cluster.

KWOK pods run no container, so nothing serves vLLM's metrics. Each exporter
here serves, on 127.0.0.1 only, the series vLLM 0.33's PrometheusStatLogger
exposes for one engine (names from tests/vllm_metrics.py, labels model_name
and engine, text format 0.0.4 as prometheus_client writes it). A test sets the
number of waiting requests; ExporterFleet spreads a total backlog over the
pods that are Running, as a load balancer in front of them would, and tells
Prometheus each pod's exporter port through a pod annotation.

A test can also give a fleet traffic (set_traffic: requests per second, the
share vLLM finishes with finished_reason="error", and the time to first
token, inter-token latency and queue time every request sees): each pod's
counters and histograms then grow with the time that passes, as vLLM's do,
so rate()/increase()/histogram_quantile() over them answer what was set.
"""
import time
import http.server
import threading

from kubernetes import client

from vllm_metrics import VLLM_COUNTERS, VLLM_GAUGES, VLLM_HISTOGRAMS  # pylint: disable=import-error

# The annotation Prometheus's relabeling turns into the scrape address 127.0.0.1:<port>.
EXPORTER_PORT_ANNOTATION = 'llmscale.io/test-exporter-port'
CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

# (name, type, help) of what each simulated engine serves: the gauges the
# autoscaler and alerts read, and counters/histograms of the same families.
SERVED = [
    ('vllm:num_requests_running', 'gauge', 'Number of requests in model execution batches.'),
    ('vllm:num_requests_waiting', 'gauge', 'Number of requests waiting to be processed.'),
    ('vllm:kv_cache_usage_perc', 'gauge', 'KV-cache usage. 1 means 100 percent usage.'),
    ('vllm:prompt_tokens_total', 'counter', 'Number of prefill tokens processed.'),
    ('vllm:generation_tokens_total', 'counter', 'Number of generation tokens processed.'),
    ('vllm:request_success_total', 'counter', 'Count of successfully processed requests.'),
    ('vllm:time_to_first_token_seconds', 'histogram', 'Histogram of time to first token in seconds.'),
    ('vllm:inter_token_latency_seconds', 'histogram', 'Histogram of inter-token latency in seconds.'),
    ('vllm:request_queue_time_seconds', 'histogram', 'Histogram of time spent in WAITING phase for request.'),
]
# vLLM's buckets (vllm/v1/metrics/loggers.py): TTFT's own, ITL's own, and request_latency_buckets for the queue time.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0)
BUCKETS = {
    'vllm:time_to_first_token_seconds': TTFT_BUCKETS,
    'vllm:inter_token_latency_seconds': ITL_BUCKETS,
    'vllm:request_queue_time_seconds': REQUEST_LATENCY_BUCKETS,
}
# vLLM's FINISH_REASON_STRINGS: vllm:request_success_total has a series for each from the start.
FINISH_REASONS = ('stop', 'length', 'abort', 'error', 'repetition')
# Inter-token latencies observed per request (output tokens - 1) in the simulation.
TOKENS_PER_REQUEST = 64

assert all(name in VLLM_GAUGES | VLLM_COUNTERS | VLLM_HISTOGRAMS for name, _type, _help in SERVED)


def _number(value):
    return repr(float(value))


def empty_histogram(name):
    return {'buckets': [0.0] * len(BUCKETS[name]), 'count': 0.0, 'sum': 0.0}


def observe(histogram, bounds, value, count):
    """COUNT observations of VALUE into a cumulative HISTOGRAM ({'buckets', 'count', 'sum'}) with BOUNDS."""
    for index, bound in enumerate(bounds):
        if value <= bound:
            histogram['buckets'][index] += count
    histogram['count'] += count
    histogram['sum'] += value * count


def render_exposition(model_name, engine, values, histograms=None, finished=None):
    """Prometheus text exposition of one vLLM engine; VALUES maps a served gauge or counter name to its value,
    HISTOGRAMS a histogram name to {'buckets', 'count', 'sum'} (empty when absent), FINISHED a finish reason to
    vllm:request_success_total's value."""
    labels = 'engine="%s",model_name="%s"' % (engine, model_name)
    lines = []
    for name, kind, text in SERVED:
        lines.append('# HELP %s %s' % (name, text))
        lines.append('# TYPE %s %s' % (name, kind))
        if kind == 'histogram':
            histogram = (histograms or {}).get(name) or empty_histogram(name)
            for bound, count in zip(BUCKETS[name], histogram['buckets']):
                lines.append('%s_bucket{%s,le="%s"} %s' % (name, labels, _number(bound), _number(count)))
            lines.append('%s_bucket{%s,le="+Inf"} %s' % (name, labels, _number(histogram['count'])))
            lines.append('%s_count{%s} %s' % (name, labels, _number(histogram['count'])))
            lines.append('%s_sum{%s} %s' % (name, labels, _number(histogram['sum'])))
        elif name == 'vllm:request_success_total':
            for reason in FINISH_REASONS:
                lines.append('%s{%s,finished_reason="%s"} %s' % (name, labels, reason,
                                                                 _number((finished or {}).get(reason, 0))))
        else:
            lines.append('%s{%s} %s' % (name, labels, _number(values.get(name, 0))))
    return '\n'.join(lines) + '\n'


class VllmPodExporter:
    """One pod's /metrics on 127.0.0.1:<port>, in a thread."""

    def __init__(self, pod_name, model_name, engine='0'):
        self.pod_name = pod_name
        self.model_name = model_name
        self.engine = engine
        self.values = {}
        self.scrapes = 0
        self.traffic = None
        self.histograms = dict((name, empty_histogram(name)) for name in BUCKETS)
        self.finished = dict((reason, 0.0) for reason in FINISH_REASONS)
        self._since = time.monotonic()
        self._lock = threading.Lock()
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # pylint: disable=invalid-name
                if self.path.split('?', 1)[0] != '/metrics':
                    self.send_error(404)
                    return
                with exporter._lock:  # pylint: disable=protected-access
                    exporter._advance()  # pylint: disable=protected-access
                    body = render_exposition(exporter.model_name, exporter.engine, exporter.values,
                                             exporter.histograms, exporter.finished).encode()
                    exporter.scrapes += 1
                self.send_response(200)
                self.send_header('Content-Type', CONTENT_TYPE)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet: Prometheus scrapes every few seconds
                pass

        self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name='exporter-' + pod_name, daemon=True)
        self._thread.start()

    def set(self, **values):
        """Set gauges by short name, e.g. set(num_requests_waiting=3)."""
        with self._lock:
            self.values.update({'vllm:' + key: value for key, value in values.items()})

    def set_traffic(self, traffic):
        """TRAFFIC: {'rps', 'error_ratio', 'ttft', 'itl', 'queue_time'} (seconds) from now on; None: idle."""
        with self._lock:
            self._advance()
            self.traffic = dict(traffic) if traffic else None

    def _advance(self):
        """Count the requests that finished since the last call at the current traffic (lock held)."""
        now = time.monotonic()
        elapsed, self._since = now - self._since, now
        traffic = self.traffic
        if not traffic or elapsed <= 0:
            return
        requests = traffic['rps'] * elapsed
        errors = requests * traffic.get('error_ratio', 0.0)
        self.finished['error'] += errors
        self.finished['stop'] += requests - errors
        observe(self.histograms['vllm:time_to_first_token_seconds'], TTFT_BUCKETS, traffic['ttft'], requests)
        observe(self.histograms['vllm:request_queue_time_seconds'], REQUEST_LATENCY_BUCKETS, traffic['queue_time'],
                requests)
        observe(self.histograms['vllm:inter_token_latency_seconds'], ITL_BUCKETS, traffic['itl'],
                requests * (TOKENS_PER_REQUEST - 1))

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def split_backlog(total, count):
    """TOTAL waiting requests spread over COUNT pods as evenly as whole requests allow."""
    if count <= 0:
        return []
    base, extra = divmod(int(total), count)
    return [base + (1 if index < extra else 0) for index in range(count)]


class ExporterFleet:
    """An exporter for every Running pod of NAMESPACE matching SELECTOR, annotated with its port.

    A pod that is not Running yet gets no annotation, so Prometheus drops it
    (its relabeling keeps only annotated pods): nothing ever scrapes a 10.x
    pod address. Deleted pods lose their exporter.
    """

    def __init__(self, api_client, namespace, selector, model_name, interval=1.0):
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.selector = selector
        self.model_name = model_name
        self.interval = interval
        self.exporters = {}
        self.total_waiting = 0
        self.traffic = None
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='exporter-fleet', daemon=True)
        self._thread.start()

    def set_total_waiting(self, total):
        """The backlog in front of the whole fleet; each Running pod reports its share."""
        with self._lock:
            self.total_waiting = int(total)
            self._spread()

    def set_traffic(self, rps, error_ratio=0.0, ttft=0.2, itl=0.02, queue_time=0.05):
        """Requests per second in front of the whole fleet, and what each sees; every Running pod serves its share."""
        with self._lock:
            self.traffic = {'rps': float(rps), 'error_ratio': float(error_ratio), 'ttft': float(ttft),
                            'itl': float(itl), 'queue_time': float(queue_time)}
            self._spread()

    def _spread(self):
        names = sorted(self.exporters)
        for name in names:
            share = dict(self.traffic, rps=self.traffic['rps'] / len(names)) if self.traffic else None
            if self.exporters[name].traffic != share:
                self.exporters[name].set_traffic(share)
        for name, waiting in zip(names, split_backlog(self.total_waiting, len(names))):
            # A pod with a backlog has a full batch running and a busy KV cache.
            self.exporters[name].set(num_requests_waiting=waiting, num_requests_running=8 if waiting else 0,
                                     kv_cache_usage_perc=0.9 if waiting else 0.1)

    def _run(self):
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as error:  # pylint: disable=broad-except  # API hiccups: retry next round
                self.errors.append(repr(error))
                del self.errors[:-20]
            self._stop.wait(self.interval)

    def _sync(self):
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
        running = {pod.metadata.name: pod for pod in pods
                   if pod.status.phase == 'Running' and pod.metadata.deletion_timestamp is None}
        with self._lock:
            for name in set(self.exporters) - set(running):
                self.exporters.pop(name).close()
            for name, pod in running.items():
                if name not in self.exporters:
                    self.exporters[name] = VllmPodExporter(name, self.model_name)
                port = str(self.exporters[name].port)
                if (pod.metadata.annotations or {}).get(EXPORTER_PORT_ANNOTATION) != port:
                    self.core.patch_namespaced_pod(name, self.namespace,
                                                   {'metadata': {'annotations': {EXPORTER_PORT_ANNOTATION: port}}})
            self._spread()

    def pods(self):
        with self._lock:
            return sorted(self.exporters)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            for exporter in self.exporters.values():
                exporter.close()
            self.exporters.clear()
