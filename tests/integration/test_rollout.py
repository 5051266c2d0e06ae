"""playbooks/rollout.yml against the local cluster: the real kube-apiserver with the Gateway API v1.6.1 CRDs (the
HTTPRoute is checked by its real schema), StatefulSets of two vllm releases on KWOK GPU nodes, and a real
Prometheus 3.16 (tests/integration/scaling_harness.py) scraping a simulated vLLM exporter per pod on loopback
(vllm_exporter.py), whose traffic follows the HTTPRoute's weights as a gateway would send it.

One namespace, one stable workload (serving.yml), and rollouts of several canaries in turn: good metrics promote
(weights seen at every step), bad ones roll back (canary at zero, the failed gate reported), a finished rollout
re-run changes nothing, an interrupted one resumes at its recorded step. Nothing is sent outside loopback.
"""
import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_helpers import CacheVolumes, delete_if_present, poll  # pylint: disable=import-error
from helpers import REPO_ROOT, PlaybookResult, playbook_command, run_playbook  # pylint: disable=import-error
from vllm_exporter import ExporterFleet  # pylint: disable=import-error

INVENTORY = os.path.join(REPO_ROOT, 'inventories', 'local')
STABLE = 'vllm-server'
STABLE_SERVED = 'qwen3-0.6b'
TOTAL_RPS = 40.0
HEALTHY = {'error_ratio': 0.0, 'ttft': 0.3, 'itl': 0.03, 'queue_time': 0.2}
STEPS = [5, 25, 50, 100]
GROUP, VERSION = 'gateway.networking.k8s.io', 'v1'


HEADER_SHARE = 0.25  # of the requests carry the A/B header


def _weights(route):
    """{backend Service: weight} of the HTTPRoute's catch-all rule (its last)."""
    refs = route['spec']['rules'][-1]['backendRefs']
    return dict((ref['name'], ref.get('weight', 1)) for ref in refs)


def _shares(route):
    """{backend Service: share of the requests}: the catch-all rule's weights, and HEADER_SHARE of the requests
    matching the rules before it (a header split)."""
    rules = route['spec']['rules']
    shares = {}
    for rule, share in [(rule, HEADER_SHARE) for rule in rules[:-1]] + [(rules[-1], 1.0 - HEADER_SHARE * (len(rules) - 1))]:
        total = sum(ref.get('weight', 1) for ref in rule['backendRefs']) or 1
        for ref in rule['backendRefs']:
            shares[ref['name']] = shares.get(ref['name'], 0.0) + share * ref.get('weight', 1) / total
    return shares


class RouteFollower:
    """Reads the HTTPRoute every 0.3 s: records each distinct weight set, and sends each fleet its share of the
    traffic, as the gateway would."""

    def __init__(self, api, namespace, fleets, profiles):
        self.custom = client.CustomObjectsApi(api)
        self.namespace, self.fleets, self.profiles = namespace, fleets, profiles
        self.seen = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def route(self):
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, 'httproutes', STABLE)

    def _run(self):
        while not self._stop.is_set():
            try:
                route = self.route()
                weights = _weights(route)
                if not self.seen or self.seen[-1] != weights:
                    self.seen.append(weights)
                shares = _shares(route)
                for service, fleet in self.fleets.items():
                    fleet.set_traffic(TOTAL_RPS * shares.get(service, 0.0), **self.profiles.get(service, HEALTHY))
            except ApiException:
                pass  # an API hiccup while polling the route: the next round reads it again
            self._stop.wait(0.3)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope='module')
def stage(kubeconfig, api_client, gateway_api_crds, tmp_path_factory):  # pylint: disable=unused-argument
    """The stable workload served by serving.yml behind its HTTPRoute, and Prometheus scraping the namespace."""
    from scaling_harness import PrometheusProcess  # pylint: disable=import-error,import-outside-toplevel
    namespace = 'rollout-' + uuid.uuid4().hex[:6]
    # Established is not served yet: a fresh CRD answers "storage is (re)initializing" for a moment.
    custom = client.CustomObjectsApi(api_client)
    for group, version, plural in ((GROUP, VERSION, 'httproutes'), ('inference.networking.k8s.io', 'v1', 'inferencepools')):
        poll(lambda g=group, v=version, p=plural: custom.list_cluster_custom_object(g, v, p) is not None, 120,
             what='%s served' % plural)
    volumes = CacheVolumes(api_client, per_node=3)
    variables = {
        'llmscale_gpu_operator_enabled': False, 'llmscale_monitoring_enabled': False,
        'autoscaling_mode': 'prometheus_adapter', 'autoscaling_min_replicas': 1, 'autoscaling_max_replicas': 2,
        'vllm_namespace': namespace, 'vllm_name': STABLE, 'vllm_service_name': STABLE,
        'vllm_served_model_name': STABLE_SERVED, 'vllm_model_cache_storage_class': volumes.name,
        'vllm_replicas': 1, 'vllm_wait_timeout': 300, 'vllm_route_kind': 'gateway',
    }
    env = {'KUBECONFIG': kubeconfig}
    prometheus = PrometheusProcess(kubeconfig, str(tmp_path_factory.mktemp('rollout')), [namespace],
                                   scrape_interval='1s', evaluation_interval='5s')
    fleets = {}
    try:
        served = run_playbook('playbooks/serving.yml', inventory=INVENTORY, extra_vars=variables, env=env, timeout=900)
        assert served.rc == 0, served.describe()
        prometheus.start()
        fleets[STABLE] = ExporterFleet(api_client, namespace, 'app.kubernetes.io/instance=' + STABLE, STABLE_SERVED,
                                       interval=0.5)
        yield {'api': api_client, 'namespace': namespace, 'vars': variables, 'env': env, 'prometheus': prometheus,
               'fleets': fleets, 'report_dir': str(tmp_path_factory.mktemp('rollout-report'))}
    finally:
        for fleet in fleets.values():
            fleet.close()
        prometheus.stop()
        core = client.CoreV1Api(api_client)
        delete_if_present(core.delete_namespace, namespace)
        poll(lambda: not core.list_namespaced_persistent_volume_claim(namespace).items, 180, what='claims gone')
        volumes.delete()


def canary_vars(stage, name, **overrides):
    variables = dict(stage['vars'], rollout_canary_name=name, rollout_canary_served_model_name=name + '-model',
                     rollout_steps=STEPS, rollout_step_pause_seconds=6, rollout_gate_window='15s',
                     rollout_min_requests=5, rollout_prometheus_url=stage['prometheus'].url,
                     rollout_report_dir=stage['report_dir'])
    variables.update(overrides)
    return variables


class Rollout:
    """One run of playbooks/rollout.yml, with the route followed and the canary's fleet fed as it runs."""

    def __init__(self, stage, name, profile, **overrides):
        self.stage, self.name = stage, name
        self.variables = canary_vars(stage, name, **overrides)
        fleets = stage['fleets']
        if name not in fleets:
            fleets[name] = ExporterFleet(stage['api'], stage['namespace'], 'app.kubernetes.io/instance=' + name,
                                         name + '-model', interval=0.5)
        self.follower = RouteFollower(stage['api'], stage['namespace'], fleets, {STABLE: HEALTHY, name: profile})

    def run(self, timeout=900, stop_at=None):
        """Run to the end, or with STOP_AT (canary weight) kill the playbook once the route shows that weight."""
        cmd, env, vars_path = playbook_command('playbooks/rollout.yml', inventory=INVENTORY,
                                               extra_vars=self.variables, env=self.stage['env'])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,  # pylint: disable=consider-using-with
                                cwd=REPO_ROOT, start_new_session=True)
        try:
            if stop_at is not None:
                # The route and the state are one apply: killed once both show the step.
                poll(lambda: any(seen.get(self.name) == stop_at for seen in self.follower.seen)
                     and recorded_state(self.stage)['weight'] == stop_at, timeout,
                     interval=0.3, what='the route and the state at %s %% canary' % stop_at)
                os.killpg(proc.pid, signal.SIGKILL)  # the group we started: the playbook and its workers
                proc.wait(timeout=60)
                return None
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            os.unlink(vars_path)
        try:
            output = json.loads(stdout)
        except ValueError:
            output = {}
        return PlaybookResult(rc=proc.returncode, output=output, stderr=stderr, raw_stdout=stdout)

    def stop(self):
        self.follower.stop()


def roll(stage, name, profile, **overrides):
    """One whole run of playbooks/rollout.yml for canary NAME; returns (result, the route's weight sets seen)."""
    rollout = Rollout(stage, name, profile, **overrides)
    try:
        return rollout.run(), rollout.follower.seen
    finally:
        rollout.stop()


def recorded_state(stage):
    config_map = client.CoreV1Api(stage['api']).read_namespaced_config_map(STABLE + '-rollout', stage['namespace'])
    return json.loads(config_map.data['state'])


def route_weights(stage):
    route = client.CustomObjectsApi(stage['api']).get_namespaced_custom_object(
        GROUP, VERSION, stage['namespace'], 'httproutes', STABLE)
    return _weights(route)


def statefulset(stage, name):
    try:
        return client.AppsV1Api(stage['api']).read_namespaced_stateful_set(name, stage['namespace'])
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def hpa_targets(stage):
    hpas = client.AutoscalingV2Api(stage['api']).list_namespaced_horizontal_pod_autoscaler(stage['namespace']).items
    return sorted(hpa.spec.scale_target_ref.name for hpa in hpas)


def canary_steps(seen, name):
    """The canary weights the route went through, in order."""
    return [weights[name] for weights in seen if name in weights]


def test_good_canary_metrics_promote_with_the_weights_moved_at_every_step(stage):
    result, rollout_seen = roll(stage, 'vllm-next', HEALTHY, rollout_canary_vars={'vllm_model': 'Qwen/Qwen3-1.7B'})
    assert result.rc == 0, result.describe()
    assert canary_steps(rollout_seen, 'vllm-next') == STEPS, rollout_seen
    assert rollout_seen[-1] == {STABLE: 100}, rollout_seen
    state = recorded_state(stage)
    assert state['phase'] == 'promoted' and [entry['weight'] for entry in state['history']] == STEPS
    assert all(entry['passed'] for entry in state['history'])
    assert state['backends'] == [{'name': STABLE, 'port': 80, 'weight': 100}]
    # The stable workload runs the new version; the canary is gone with its autoscaler.
    args = statefulset(stage, STABLE).spec.template.spec.containers[0].args
    assert args[0] == 'Qwen/Qwen3-1.7B' and args[1:3] == ['--served-model-name', STABLE_SERVED]
    assert statefulset(stage, 'vllm-next') is None
    assert hpa_targets(stage) == [STABLE]
    with open(os.path.join(stage['report_dir'], 'rollout.md'), encoding='utf-8') as handle:
        assert handle.read().startswith('# Rollout: promoted')


def test_a_finished_rollout_re_run_changes_nothing(stage):
    before = recorded_state(stage)
    result, _seen = roll(stage, 'vllm-next', HEALTHY, rollout_canary_vars={'vllm_model': 'Qwen/Qwen3-1.7B'})
    assert result.rc == 0 and result.changed == 0, result.describe()
    assert recorded_state(stage) == before


def test_serving_refuses_to_undo_a_promotion_and_keeps_it_with_the_promoted_variables(stage):
    assert recorded_state(stage)['stable_vars'] == {'vllm_model': 'Qwen/Qwen3-1.7B'}
    before = statefulset(stage, STABLE).metadata.resource_version
    # The site's variables of before the rollout would put the old model back: refused, naming the variable.
    old = run_playbook('playbooks/serving.yml', inventory=INVENTORY, extra_vars=stage['vars'], env=stage['env'],
                       timeout=900)
    assert old.rc != 0 and old.changed == 0, old.describe()
    assert any('vllm_model: promoted "Qwen/Qwen3-1.7B", this run "Qwen/Qwen3-0.6B"' in message
               for message in old.failure_messages()), old.failure_messages()
    assert statefulset(stage, STABLE).metadata.resource_version == before
    # With the promoted value the stable workload stays as the promotion left it.
    kept = run_playbook('playbooks/serving.yml', inventory=INVENTORY, env=stage['env'], timeout=900,
                        extra_vars=dict(stage['vars'], vllm_model='Qwen/Qwen3-1.7B'))
    assert kept.rc == 0, kept.describe()
    assert statefulset(stage, STABLE).spec.template.spec.containers[0].args[0] == 'Qwen/Qwen3-1.7B'
    assert route_weights(stage) == {STABLE: 100}


def test_bad_canary_metrics_roll_back_and_report_the_failed_gate(stage):
    slow = dict(HEALTHY, ttft=3.0)
    result, rollout_seen = roll(stage, 'vllm-slow', slow)
    assert result.rc != 0, result.describe()
    assert any('gate ttft failed' in message for message in result.failure_messages()), result.failure_messages()
    assert canary_steps(rollout_seen, 'vllm-slow') == [5, 0], rollout_seen
    assert route_weights(stage) == {STABLE: 100, 'vllm-slow': 0}
    state = recorded_state(stage)
    assert state['phase'] == 'rolled_back' and state['history'][-1]['failed'] == ['ttft']
    assert statefulset(stage, 'vllm-slow').spec.replicas == 0
    assert 'vllm-slow' not in hpa_targets(stage)
    poll(lambda: not client.CoreV1Api(stage['api']).list_namespaced_pod(
        stage['namespace'], label_selector='app.kubernetes.io/instance=vllm-slow').items, 120, what='canary pods gone')
    with open(os.path.join(stage['report_dir'], 'rollout.md'), encoding='utf-8') as handle:
        report = handle.read()
    assert report.startswith('# Rollout: rolled back')
    assert '| ttft | p95 time to first token | ' in report and 'FAILED: canary' in report

    rerun, _seen = roll(stage, 'vllm-slow', slow)
    assert rerun.changed == 0 and rerun.rc != 0, rerun.describe()
    assert recorded_state(stage) == state


def test_an_interrupted_rollout_resumes_from_its_recorded_step(stage):
    first = Rollout(stage, 'vllm-third', HEALTHY)
    try:
        assert first.run(stop_at=25) is None
    finally:
        first.stop()
    state = recorded_state(stage)
    assert state['phase'] == 'in_progress' and state['weight'] == 25 and len(state['history']) == 1
    time.sleep(1)
    result, second_seen = roll(stage, 'vllm-third', HEALTHY)
    assert result.rc == 0, result.describe()
    # It continues at 25 %: the route never goes back to 5 %.
    assert canary_steps(second_seen, 'vllm-third') == [25, 50, 100], second_seen
    state = recorded_state(stage)
    assert state['phase'] == 'promoted' and [entry['weight'] for entry in state['history']] == STEPS


def test_check_mode_shows_the_first_step_and_changes_nothing(stage):
    before = (recorded_state(stage), route_weights(stage), hpa_targets(stage))
    result = run_playbook('playbooks/rollout.yml', inventory=INVENTORY, check=True, env=stage['env'], timeout=600,
                          extra_vars=canary_vars(stage, 'vllm-check'))
    assert result.rc == 0, result.describe()
    changed = [name for name, _host in result.changed_tasks()]
    assert 'Apply the canary workload vllm-check and its autoscaler' in changed, changed
    assert any(name.startswith('Apply the route (95/5)') for name in changed), changed
    assert (recorded_state(stage), route_weights(stage), hpa_targets(stage)) == before
    assert statefulset(stage, 'vllm-check') is None


def test_bad_rollout_variables_fail_naming_them_before_any_change(stage):
    before = recorded_state(stage)
    result = run_playbook('playbooks/rollout.yml', inventory=INVENTORY, env=stage['env'], timeout=600,
                          extra_vars=canary_vars(stage, 'vllm-bad', rollout_steps=[5, 50, 25],
                                                 rollout_gate_window='five minutes'),
                          cli_vars={'rollout_max_latency_ratio': '0.5'})
    assert result.rc != 0 and result.changed == 0, result.describe()
    message = ' '.join(result.failure_messages())
    for words in ('rollout_steps must increase strictly', 'rollout_steps must end at 100',
                  'rollout_gate_window must be a Prometheus duration', 'rollout_max_latency_ratio must be >= 1'):
        assert words in message, message
    assert recorded_state(stage) == before


def test_an_ab_split_by_header_compares_the_two_models_without_promotion(stage):
    slower = dict(HEALTHY, itl=0.15)
    result, _seen = roll(stage, 'vllm-ab', slower, rollout_mode='ab', rollout_ab_header_name='x-llmscale-variant',
                         rollout_ab_header_value='b')
    assert result.rc == 0, result.describe()
    route = client.CustomObjectsApi(stage['api']).get_namespaced_custom_object(
        GROUP, VERSION, stage['namespace'], 'httproutes', STABLE)
    assert len(route['spec']['rules']) == 2  # the header rule before the catch-all one
    header_rule = route['spec']['rules'][0]
    assert header_rule['matches'][0]['headers'] == [{'type': 'Exact', 'name': 'x-llmscale-variant', 'value': 'b'}]
    assert [ref['name'] for ref in header_rule['backendRefs']] == ['vllm-ab']
    assert _weights(route) == {STABLE: 100, 'vllm-ab': 0}
    state = recorded_state(stage)
    assert state['mode'] == 'ab' and state['phase'] == 'ab' and state['rules'][0]['backends'][0]['name'] == 'vllm-ab'
    assert statefulset(stage, 'vllm-ab').spec.replicas == 1
    with open(os.path.join(stage['report_dir'], 'rollout.md'), encoding='utf-8') as handle:
        report = handle.read()
    # 0.15 s against the stable 0.03 s is within the absolute 0.2 s, not within 1.25 x the stable one + 0.05 s:
    # the comparison says the canary would not pass the ITL gate; the other gates pass.
    assert report.startswith('# A/B comparison\n') and '| itl | p95 inter-token latency |' in report
    itl_row = report.split('| itl |')[1].split('\n')[0]
    assert 'FAILED: canary' in itl_row and '> stable' in itl_row, report
    assert report.count('FAILED') == 1, report

    rerun, _seen = roll(stage, 'vllm-ab', slower, rollout_mode='ab', rollout_ab_header_name='x-llmscale-variant',
                        rollout_ab_header_value='b')
    assert rerun.rc == 0, rerun.describe()
    # Nothing on the cluster changes; only the comparison report may be new.
    assert [name for name, _host in rerun.changed_tasks()] in ([], ['Write the report']), rerun.describe()
    assert recorded_state(stage) == state

    result, _seen = roll(stage, 'vllm-ab', slower, rollout_mode='ab', rollout_abort=True)
    assert result.rc == 0, result.describe()
    assert route_weights(stage) == {STABLE: 100, 'vllm-ab': 0} and recorded_state(stage)['phase'] == 'rolled_back'
    assert statefulset(stage, 'vllm-ab').spec.replicas == 0
