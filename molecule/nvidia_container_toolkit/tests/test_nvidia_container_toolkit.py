"""containerd in the Debian 12 container, after the nvidia_container_toolkit role: read from containerd itself."""
import re

CONFIG = '/etc/containerd/config.toml'
RUNTIME = '/usr/bin/nvidia-container-runtime'


def test_config_file_has_one_managed_block(host):
    config = host.file(CONFIG)
    assert config.mode == 0o644
    text = config.content_string
    assert text.count('# BEGIN llmscale.gpu_serving.nvidia_container_toolkit') == 1
    # The package's own settings are still there: edited in place, not replaced.
    assert 'bin_dir = "/usr/lib/cni"' in text


def test_containerd_parses_the_nvidia_runtime(host):
    dump = host.check_output('containerd config dump')
    assert re.search(r'default_runtime_name = "nvidia"', dump)
    runtime = dump.split('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]', 1)[1]
    assert 'runtime_type = "io.containerd.runc.v2"' in runtime.split('[plugins.', 1)[0]
    assert 'BinaryName = "%s"' % RUNTIME in runtime
    assert 'SystemdCgroup = true' in runtime
    # The CRI section of the main file survived (a conf.d import would replace it).
    assert 'bin_dir = "/usr/lib/cni"' in dump


def test_running_containerd_loaded_it(host):
    assert host.service('containerd').is_running
    plugins = host.check_output('ctr plugins ls')
    assert re.search(r'io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok', plugins)
    starts = [line for line in host.check_output('journalctl -u containerd --no-pager -o cat').splitlines()
              if 'Start cri plugin with config' in line]
    assert starts, 'containerd never started its CRI plugin'
    last = starts[-1]
    assert 'DefaultRuntimeName:nvidia' in last
    assert re.search(r'nvidia:\{Type:io\.containerd\.runc\.v2 .*BinaryName:%s' % re.escape(RUNTIME), last)


def test_refused_edit_left_the_file_alone(host):
    text = host.file('/etc/containerd/duplicate-runtime.toml').content_string
    assert 'BEGIN llmscale' not in text
