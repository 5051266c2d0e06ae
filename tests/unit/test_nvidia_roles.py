"""The OS dispatch and preflight of the nvidia_driver and nvidia_container_toolkit roles.

Only Debian 12 containers can be built here (no Ubuntu or RHEL mirror), so the
other OSes are checked through the roles' own dispatch: a real ansible-playbook
run of the role on localhost, in check mode, with the host's OS facts replaced
by those of the OS under test (extra vars win over gathered facts). Nothing
runs past the preflight on this machine.
"""
import os

import pytest
import yaml

from helpers import REPO_ROOT, run_playbook

DRIVER_ROLE = os.path.join(REPO_ROOT, 'roles', 'nvidia_driver')

OS_FACTS = {
    'ubuntu22': {'distribution': 'Ubuntu', 'distribution_major_version': '22', 'distribution_version': '22.04',
                 'os_family': 'Debian'},
    'ubuntu24': {'distribution': 'Ubuntu', 'distribution_major_version': '24', 'distribution_version': '24.04',
                 'os_family': 'Debian'},
    'debian12': {'distribution': 'Debian', 'distribution_major_version': '12', 'distribution_version': '12.8',
                 'os_family': 'Debian'},
    'rocky9': {'distribution': 'Rocky', 'distribution_major_version': '9', 'distribution_version': '9.5',
               'os_family': 'RedHat'},
    'rhel9': {'distribution': 'RedHat', 'distribution_major_version': '9', 'distribution_version': '9.5',
              'os_family': 'RedHat'},
    'debian11': {'distribution': 'Debian', 'distribution_major_version': '11', 'distribution_version': '11.11',
                 'os_family': 'Debian'},
    'alpine': {'distribution': 'Alpine', 'distribution_major_version': '3', 'distribution_version': '3.20',
               'os_family': 'Alpine'},
}


def facts(os_key, **extra):
    result = {'kernel': '0.0.0-llmscale-test', 'architecture': 'x86_64', 'nodename': 'gpu-node-1'}
    result.update(OS_FACTS[os_key])
    result.update(extra)
    return result


def write_playbook(tmp_path, tasks_from='main', show=()):
    play = {'name': 'Run the role', 'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'Run it', 'ansible.builtin.include_role': {'name': 'llmscale.gpu_serving.nvidia_driver',
                                                            'tasks_from': tasks_from, 'public': True}},
    ]}
    for var in show:
        play['tasks'].append({'name': 'Show ' + var, 'ansible.builtin.debug': {'var': var}})
    path = tmp_path / 'play.yml'
    path.write_text(yaml.safe_dump([play]))
    return str(path)


def run_driver(tmp_path, os_key, tasks_from='main', show=(), **variables):
    extra = {'ansible_facts': facts(os_key), 'nvidia_driver_health_check': False}
    extra.update(variables)
    return run_playbook(write_playbook(tmp_path, tasks_from, show), extra_vars=extra, check=True)


def shown(result, var):
    values = [r[var] for r in result.results_of('Show ' + var)]
    assert values, result.describe()
    return values[0]


@pytest.mark.parametrize('os_key', ['debian11', 'alpine'])
def test_unknown_os_fails_before_any_change_naming_the_facts(tmp_path, os_key):
    result = run_driver(tmp_path, os_key)
    assert result.rc != 0
    assert result.changed == 0
    message = ' '.join(result.failure_messages())
    assert 'unsupported OS' in message
    assert "ansible_facts['distribution']" in message
    assert 'Debian 12' in message  # the supported list


@pytest.mark.parametrize('os_key, repo, packages', [
    ('ubuntu22', 'ubuntu2204/x86_64', ['nvidia-headless-no-dkms-580-open', 'nvidia-utils-580', 'nvidia-dkms-580-open']),
    ('ubuntu24', 'ubuntu2404/x86_64', ['nvidia-headless-no-dkms-580-open', 'nvidia-utils-580', 'nvidia-dkms-580-open']),
    ('debian12', 'debian12/x86_64', ['nvidia-driver-cuda', 'nvidia-persistenced', 'nvidia-kernel-open-dkms']),
    ('rocky9', 'rhel9/x86_64', ['nvidia-driver-cuda', 'nvidia-persistenced', 'kmod-nvidia-open-dkms']),
    ('rhel9', 'rhel9/x86_64', ['nvidia-driver-cuda', 'nvidia-persistenced', 'kmod-nvidia-open-dkms']),
])
def test_each_os_resolves_its_cuda_repository_and_packages(tmp_path, os_key, repo, packages):
    # preflight alone: the kernel header check is what stops a real run here.
    result = run_driver(tmp_path, os_key, tasks_from='preflight', nvidia_driver_install_kernel_modules=False,
                        show=['__nvidia_driver_cuda_repo_url', '__nvidia_driver_os_default_packages'])
    assert result.rc == 0, result.describe()
    assert shown(result, '__nvidia_driver_cuda_repo_url') == \
        'https://developer.download.nvidia.com/compute/cuda/repos/' + repo
    assert shown(result, '__nvidia_driver_os_default_packages') == packages[:-1]
    with_modules = run_driver(tmp_path, os_key, tasks_from='preflight', show=['__nvidia_driver_os_default_packages'])
    assert with_modules.rc != 0  # no headers for the fake kernel
    assert any('0.0.0-llmscale-test' in m for m in with_modules.failure_messages())


def test_rhel_stream_follows_branch_and_flavor(tmp_path):
    result = run_driver(tmp_path, 'rocky9', tasks_from='preflight', nvidia_driver_install_kernel_modules=False,
                        nvidia_driver_branch='570', nvidia_driver_open_kernel_modules=False,
                        show=['__nvidia_driver_module_stream'])
    assert shown(result, '__nvidia_driver_module_stream') == 'nvidia-driver:570-dkms'


def test_distribution_source_on_rhel_names_the_variables(tmp_path):
    result = run_driver(tmp_path, 'rocky9', nvidia_driver_source='distribution')
    assert result.rc != 0 and result.changed == 0
    message = ' '.join(result.failure_messages())
    assert 'nvidia_driver_source' in message and 'ships no NVIDIA driver' in message


def test_distribution_branch_must_be_one_debian_ships(tmp_path):
    result = run_driver(tmp_path, 'debian12', nvidia_driver_source='distribution', nvidia_driver_branch='580')
    assert result.rc != 0 and result.changed == 0
    message = ' '.join(result.failure_messages())
    assert 'nvidia_driver_branch=580' in message and 'ships only branch 535' in message


@pytest.mark.parametrize('variables, named', [
    ({'nvidia_driver_branch': '58'}, 'nvidia_driver_branch'),
    ({'nvidia_driver_source': 'ppa'}, 'nvidia_driver_source'),
    ({'nvidia_driver_open_kernel_modules': 'maybe'}, 'nvidia_driver_open_kernel_modules'),
])
def test_bad_variables_fail_naming_them(tmp_path, variables, named):
    result = run_driver(tmp_path, 'ubuntu24', **variables)
    assert result.rc != 0 and result.changed == 0
    assert any(named in m for m in result.failure_messages()), result.describe()


def test_gpu_operator_managed_driver_is_left_alone(tmp_path):
    # An unsupported OS would fail: the role must end before looking.
    result = run_driver(tmp_path, 'alpine', llmscale_gpu_operator_driver_enabled=True)
    assert result.rc == 0, result.describe()
    assert result.changed == 0
    assert not result.results_of('Check that the OS is supported')


def test_every_supported_os_has_a_vars_file():
    for name in ('Ubuntu-22.yml', 'Ubuntu-24.yml', 'Debian-12.yml', 'RedHat-9.yml'):
        with open(os.path.join(DRIVER_ROLE, 'vars', name), encoding='utf-8') as handle:
            data = yaml.safe_load(handle)
        for source, flavors in data['__nvidia_driver_os_packages'].items():
            for flavor in ('open', 'proprietary'):
                assert flavors[flavor]['userspace'] and flavors[flavor]['kernel'], (name, source, flavor)


TOOLKIT_TEMPLATE = os.path.join(REPO_ROOT, 'roles', 'nvidia_container_toolkit', 'templates', 'nvidia-runtime.toml.j2')


@pytest.mark.parametrize('version, plugin', [(2, 'io.containerd.grpc.v1.cri'), (3, 'io.containerd.cri.v1.runtime')])
@pytest.mark.parametrize('default_runtime, has_table', [(True, False), (True, True), (False, False)])
def test_runtime_block_is_valid_toml_for_both_config_versions(tmp_path, version, plugin, default_runtime, has_table):
    """containerd 2.x is not in Debian 12: check the version 3 block with a TOML parser (2 runs for real in Molecule)."""
    import tomllib

    rendered = tmp_path / 'block.toml'
    play = [{'name': 'Render', 'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'Render the block', 'ansible.builtin.template': {'src': TOOLKIT_TEMPLATE, 'dest': str(rendered), 'mode': '0600'}}]}]
    (tmp_path / 'play.yml').write_text(yaml.safe_dump(play))
    result = run_playbook(str(tmp_path / 'play.yml'), extra_vars={
        '__nvidia_container_toolkit_cri': plugin,
        '__nvidia_container_toolkit_has_runtime_table': has_table,
        'nvidia_container_toolkit_default_runtime': default_runtime,
        'nvidia_container_toolkit_runtime_binary': '/usr/bin/nvidia-container-runtime',
        'nvidia_container_toolkit_systemd_cgroup': True,
    })
    assert result.rc == 0, result.describe()
    data = tomllib.loads('version = %d\n' % version + rendered.read_text())
    containerd = data['plugins'][plugin]['containerd']
    nvidia = containerd['runtimes']['nvidia']
    assert nvidia['runtime_type'] == 'io.containerd.runc.v2'
    assert nvidia['options'] == {'BinaryName': '/usr/bin/nvidia-container-runtime', 'SystemdCgroup': True}
    # With a containerd table already in the file the default goes there (lineinfile), never twice.
    assert ('default_runtime_name' in containerd) == (default_runtime and not has_table)
