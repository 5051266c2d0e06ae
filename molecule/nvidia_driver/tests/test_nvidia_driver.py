"""What the nvidia_driver role left in the Debian 12 container, read from the real system."""
import pytest

DRIVER_PACKAGES = ['nvidia-smi', 'libcuda1', 'libnvidia-cfg1', 'nvidia-persistenced', 'firmware-nvidia-gsp']
BRANCH = '535'


@pytest.mark.parametrize('name', DRIVER_PACKAGES)
def test_driver_package_installed_from_the_branch(host, name):
    package = host.package(name)
    assert package.is_installed
    assert package.version.startswith(BRANCH + '.'), package.version


def test_driver_packages_are_held(host):
    held = host.check_output('apt-mark showhold').split()
    assert sorted(held) == sorted(DRIVER_PACKAGES)


def test_no_kernel_module_packages_without_a_kernel(host):
    for name in ('nvidia-open-kernel-dkms', 'nvidia-kernel-dkms', 'dkms'):
        assert not host.package(name).is_installed, name


def test_apt_pins_the_branch(host):
    policy = host.check_output('apt-cache policy libnvidia-ml1')
    assert 'Candidate: %s.' % BRANCH in policy
    assert '1001' in host.check_output('apt-cache policy')  # the pin is in force
    pref = host.file('/etc/apt/preferences.d/nvidia-driver.pref')
    assert pref.mode == 0o644
    assert 'Pin: version %s.*' % BRANCH in pref.content_string


@pytest.mark.parametrize('name, suites', [
    ('debian-nvidia', 'bookworm bookworm-updates'),
    ('debian-security-nvidia', 'bookworm-security'),
])
def test_debian_nonfree_components_signed_by_the_archive_key(host, name, suites):
    sources = host.file('/etc/apt/sources.list.d/%s.sources' % name).content_string
    assert 'Suites: %s\n' % suites in sources
    assert 'Components: contrib non-free non-free-firmware' in sources
    assert 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' in sources


def test_apt_reads_the_nonfree_sources(host):
    # The non-free index is there after the update.
    assert 'bookworm/non-free' in host.check_output('apt-cache policy nvidia-smi')


def test_modprobe_sees_the_blacklist_and_the_parameters(host):
    config = host.check_output('modprobe --showconfig').splitlines()
    assert 'blacklist nouveau' in config
    assert 'options nouveau modeset=0' in config
    assert 'options nvidia NVreg_EnableStreamMemOPs=1 NVreg_OpenRmEnableUnsupportedGpus=1' in config


def test_persistence_daemon_enabled(host):
    service = host.service('nvidia-persistenced')
    assert service.is_enabled
    # No driver is loaded in a container, so the role leaves it stopped.
    assert not service.is_running


def test_userspace_is_the_real_driver(host):
    assert 'libcuda.so.1' in host.check_output('ldconfig -p')
    smi = host.run('nvidia-smi')
    # The real binary, finding no kernel driver in a container.
    assert smi.rc != 0
    assert 'NVIDIA driver' in smi.stdout + smi.stderr
