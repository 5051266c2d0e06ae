"""The autoscaling role's chart installs on the local cluster: the real prometheus-adapter 5.3.0
and KEDA 2.20.2 charts, from a llmscale_chart_dir made as `make charts` makes one.

KWOK nodes run no containers, so neither the adapter nor KEDA's operator runs: what this
proves is that the real charts install with our values through roles/_common/tasks/chart.yml,
that KEDA's real CRDs are established and admit the role's ScaledObject, and that a second
run changes nothing. Scaling itself needs the components running (a real cluster).
"""
import uuid

import pytest
import yaml
from kubernetes import client

from cluster_helpers import delete_if_present, poll  # pylint: disable=import-error
from helm_binary import env_with_helm, helm, helm_bin_dir  # pylint: disable=import-error
from helpers import run_playbook  # pylint: disable=import-error
from real_charts import copy_with_digests, helm_template  # pylint: disable=import-error

PLAYBOOK = [{'name': 'Autoscaling', 'hosts': 'localhost', 'gather_facts': False,
             'roles': [{'role': 'llmscale.gpu_serving.autoscaling'}]}]


@pytest.fixture(scope='module')
def setup(kubeconfig, api_client, tmp_path_factory):
    base = tmp_path_factory.mktemp('autoscaling_charts')
    chart_dir = copy_with_digests(str(base / 'charts'), charts=['prometheus-adapter', 'keda'])
    helm_dir = helm_bin_dir()
    playbook = base / 'play.yml'
    playbook.write_text(yaml.safe_dump(PLAYBOOK))
    suffix = uuid.uuid4().hex[:6]
    core = client.CoreV1Api(api_client)
    serving = 'serve-' + suffix
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=serving)))
    extensions = client.ApiextensionsV1Api(api_client)
    keda_crds = sorted(o['metadata']['name'] for o in helm_template('keda', {}, 'keda', 'keda')
                       if o['kind'] == 'CustomResourceDefinition')
    crds_before = {crd.metadata.name for crd in extensions.list_custom_resource_definition().items}
    releases = {'adapter': ('prometheus-adapter-' + suffix, 'adapter-' + suffix), 'keda': ('keda', 'keda-' + suffix)}
    base_vars = {
        'llmscale_kubeconfig': kubeconfig,
        'llmscale_helm_binary': helm_dir + '/helm',
        'llmscale_chart_dir': chart_dir,
        'autoscaling_namespace': serving,
        'autoscaling_served_model_name': 'qwen3-8b-test',
        'autoscaling_prometheus_adapter_release_name': releases['adapter'][0],
        'autoscaling_prometheus_adapter_namespace': releases['adapter'][1],
        'autoscaling_keda_release_name': releases['keda'][0],
        'autoscaling_keda_namespace': releases['keda'][1],
        'autoscaling_prometheus_url': 'http://prometheus-operated.monitoring.svc',
    }
    yield {'playbook': str(playbook), 'vars': base_vars, 'env': env_with_helm(helm_dir, kubeconfig), 'api': api_client,
           'helm_dir': helm_dir, 'kubeconfig': kubeconfig, 'releases': releases, 'serving': serving,
           'keda_crds': keda_crds}
    for release, namespace in releases.values():
        helm(helm_dir, kubeconfig, 'uninstall', release, '--namespace', namespace, '--wait')
        delete_if_present(core.delete_namespace, namespace)
    delete_if_present(core.delete_namespace, serving)
    for name in set(keda_crds) - crds_before:
        delete_if_present(extensions.delete_custom_resource_definition, name)


def run(setup, **overrides):
    return run_playbook(setup['playbook'], extra_vars=dict(setup['vars'], **overrides), env=setup['env'])


def release_status(setup, which):
    release, namespace = setup['releases'][which]
    proc = helm(setup['helm_dir'], setup['kubeconfig'], 'status', release, '--namespace', namespace, '-o', 'yaml')
    return yaml.safe_load(proc.stdout)['info']['status'] if proc.returncode == 0 else None


def test_prometheus_adapter_from_the_real_chart_carries_the_vllm_rule(setup):
    overrides = {'autoscaling_mode': 'prometheus_adapter', 'autoscaling_prometheus_adapter_install': True}
    first = run(setup, **overrides)
    assert first.rc == 0, first.describe()
    assert release_status(setup, 'adapter') == 'deployed'
    release, namespace = setup['releases']['adapter']
    data = client.CoreV1Api(setup['api']).read_namespaced_config_map(release, namespace).data
    (rule,) = yaml.safe_load(data['config.yaml'])['rules']
    assert rule['name'] == {'matches': '^vllm:num_requests_waiting$', 'as': 'vllm_num_requests_waiting'}
    assert rule['metricsQuery'] == 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    deployment = client.AppsV1Api(setup['api']).read_namespaced_deployment(release, namespace)
    assert '--prometheus-url=http://prometheus-operated.monitoring.svc:9090' in deployment.spec.template.spec.containers[0].args
    second = run(setup, **overrides)
    assert second.rc == 0 and second.changed == 0, second.describe()


def test_keda_from_the_real_chart_then_a_scaled_object_its_crd_admits(setup):
    overrides = {'autoscaling_mode': 'keda', 'autoscaling_keda_install': True}
    first = run(setup, **overrides)
    assert first.rc == 0, first.describe()
    assert release_status(setup, 'keda') == 'deployed'
    extensions = client.ApiextensionsV1Api(setup['api'])
    assert 'scaledobjects.keda.sh' in setup['keda_crds']
    for name in setup['keda_crds']:
        poll(lambda name=name: any(c.type == 'Established' and c.status == 'True'
                                   for c in extensions.read_custom_resource_definition(name).status.conditions or []),
             120, what='CRD %s established' % name)
    scaled = client.CustomObjectsApi(setup['api']).get_namespaced_custom_object(
        'keda.sh', 'v1alpha1', setup['serving'], 'scaledobjects', 'vllm-server')
    (trigger,) = scaled['spec']['triggers']
    assert trigger['type'] == 'prometheus' and 'model_name="qwen3-8b-test"' in trigger['metadata']['query']
    second = run(setup, **overrides)
    assert second.rc == 0 and second.changed == 0, second.describe()
