"""Which kubeconfigs the standard-library transport takes, and which it leaves to the kubernetes client.

Its requests run against the real API server in every integration test (the local cluster's kubeconfig uses client
certificates); tests/integration/test_k8s_apply.py runs the kubernetes-client path too.
"""
from ansible_collections.llmscale.gpu_serving.plugins.module_utils.k8s_http import access_from_kubeconfig, load_access


def kubeconfig(user, cluster=None):
    return {
        'current-context': 'ctx',
        'contexts': [{'name': 'ctx', 'context': {'cluster': 'c', 'user': 'u'}}],
        'clusters': [{'name': 'c', 'cluster': dict({'server': 'https://127.0.0.1:6443/', 'certificate-authority': 'ca.crt'},
                                                   **(cluster or {}))}],
        'users': [{'name': 'u', 'user': user}],
    }


def test_client_certificates_and_relative_paths():
    access = access_from_kubeconfig(kubeconfig({'client-certificate': 'admin.crt', 'client-key': '/abs/admin.key'}),
                                    base_dir='/etc/kube')
    assert access['server'] == 'https://127.0.0.1:6443'
    assert (access['ca_file'], access['cert_file'], access['key_file']) == (
        '/etc/kube/ca.crt', '/etc/kube/admin.crt', '/abs/admin.key')


def test_exec_plugins_auth_providers_proxies_and_impersonation_go_to_the_kubernetes_client():
    assert access_from_kubeconfig(kubeconfig({'exec': {'command': 'aws'}})) is None
    assert access_from_kubeconfig(kubeconfig({'auth-provider': {'name': 'oidc'}})) is None
    assert access_from_kubeconfig(kubeconfig({'token': 't'}, {'proxy-url': 'http://proxy:3128'})) is None
    assert access_from_kubeconfig(kubeconfig({'token': 't', 'as': 'admin'})) is None
    assert load_access({'kubeconfig': kubeconfig({'token': 't'}), 'impersonate_user': 'x'}, environ={}) is None


def test_a_context_that_does_not_exist_is_not_guessed():
    assert access_from_kubeconfig(kubeconfig({'token': 't'}), context_name='other') is None


def test_module_options_and_k8s_auth_variables_come_first():
    access = load_access({'host': 'https://api:6443', 'api_key': 'secret', 'validate_certs': False}, environ={})
    assert access['server'] == 'https://api:6443' and access['token'] == 'secret' and access['insecure'] is True
    access = load_access({}, environ={'K8S_AUTH_HOST': 'https://env:6443', 'K8S_AUTH_API_KEY': 'e'})
    assert access['server'] == 'https://env:6443' and access['token'] == 'e'


def test_several_merged_kubeconfig_files_go_to_the_kubernetes_client():
    assert load_access({}, environ={'KUBECONFIG': '/a:/b'}) is None
