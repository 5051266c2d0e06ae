"""Warnings for values that work but are probably not what a site wants."""
import pytest

from ansible_collections.llmscale.gpu_serving.plugins.module_utils import serving_warnings as sw

DIGEST = '@sha256:' + 'c' * 64


@pytest.mark.parametrize('host, reason', [
    ('llm.yourdomain.com', 'a placeholder'),
    ('llm.example.com', 'an example domain'),
    ('example.org', 'an example domain'),
    ('llm.example', 'reserved for tests'),
    ('vllm.invalid', 'reserved for tests'),
    ('api.test', 'reserved for tests'),
    ('localhost', 'localhost'),
    ('app.localhost', 'reserved for tests'),
    ('127.0.0.1', 'loopback'),
    ('::1', 'loopback'),
    ('*.example.net', 'an example domain'),
    ('LLM.YourDomain.com', 'a placeholder'),
])
def test_placeholder_hosts(host, reason):
    warning = sw.placeholder_host_warning('vllm_ingress_host', host)
    assert warning.startswith('vllm_ingress_host: ') and reason in warning


@pytest.mark.parametrize('host', ['llm.corp.acme.io', 'inference.ml.internal', 'examples.io', 'myexample.com',
                                  '10.1.2.3', '', None])
def test_real_hosts_pass(host):
    assert sw.placeholder_host_warning('vllm_ingress_host', host) is None


@pytest.mark.parametrize('image, moving', [
    ('vllm/vllm-openai:latest', 'moving tag'),
    ('vllm/vllm-openai', 'no tag'),
    ('ghcr.io/org/vllm:main', 'moving tag'),
    ('ghcr.io/org/vllm:nightly', 'moving tag'),
    ('ghcr.io/org/vllm:cu128-nightly', 'moving tag'),
    ('ghcr.io/org/vllm:LATEST', 'moving tag'),
])
def test_mutable_tags(image, moving):
    warning = sw.mutable_image_warning('vllm_image', image)
    assert warning.startswith('vllm_image: ') and moving in warning


@pytest.mark.parametrize('image', ['vllm/vllm-openai:v0.33.0', 'vllm/vllm-openai:latest' + DIGEST,
                                   'vllm/vllm-openai' + DIGEST, 'nvcr.io/nvidia/vllm:25.09-py3', 'not a ref!'])
def test_pinned_images_pass(image):
    assert sw.mutable_image_warning('vllm_image', image) is None


def test_startup_budget():
    warning = sw.startup_budget_warning('vllm_startup_timeout_seconds', 30)
    assert warning.startswith('vllm_startup_timeout_seconds: 30 s is shorter than loading a model can take')
    assert sw.startup_budget_warning('vllm_startup_timeout_seconds', 299)
    assert sw.startup_budget_warning('vllm_startup_timeout_seconds', 300) is None
    assert sw.startup_budget_warning('vllm_startup_timeout_seconds', 1800) is None
    assert sw.startup_budget_warning('vllm_startup_timeout_seconds', 600, minimum=900)
    assert sw.startup_budget_warning('vllm_startup_timeout_seconds', '30') is None  # the settings step converts first


def test_several_checks_at_once():
    found = sw.serving_warnings([
        (sw.placeholder_host_warning, 'vllm_ingress_host', 'llm.yourdomain.com'),
        (sw.mutable_image_warning, 'vllm_image', 'vllm/vllm-openai:v0.33.0'),
        (sw.startup_budget_warning, 'vllm_startup_timeout_seconds', 30),
    ])
    assert [w.split(':')[0] for w in found] == ['vllm_ingress_host', 'vllm_startup_timeout_seconds']
