"""cyclonus (github.com/mattfenwick/cyclonus, built by scripts/build-tools.sh) as a NetworkPolicy engine for tests.

`cyclonus analyze --mode query-traffic` reads NetworkPolicies from a file and
says, for each connection of a traffic file, whether the policies allow it,
with Kubernetes' semantics (default deny per direction once a policy selects a
pod, namespace and pod selectors, ipBlock with except, ports and protocols).
No cluster and no CNI plugin are involved.
"""
import json
import os
import re
import subprocess

import yaml

from built_tools import tool_dir  # pylint: disable=import-error

# The footer of each verdict table (tablewriter upper-cases footers).
_VERDICT = re.compile(r'^\|\s*IS ALLOWED\?\s*\|\s*(TRUE|FALSE)\s*\|', re.MULTILINE)
_TRAFFIC = re.compile(r'^Traffic:$', re.MULTILINE)


def parse_query_traffic(output):
    """[allowed, ...] from query-traffic output, one per connection in the order of the traffic file. Pure."""
    verdicts = [match == 'TRUE' for match in _VERDICT.findall(output)]
    headers = len(_TRAFFIC.findall(output))
    if headers != len(verdicts):
        raise ValueError('cyclonus output has %d connections but %d verdicts' % (headers, len(verdicts)))
    return verdicts


def pod(namespace, labels, ip):
    """A pod as a traffic peer: its namespace carries kubernetes.io/metadata.name, as the API server sets it."""
    return {'Internal': {'Namespace': namespace, 'NamespaceLabels': {'kubernetes.io/metadata.name': namespace},
                         'PodLabels': dict(labels)}, 'IP': ip}


def outside(ip):
    """An address outside the cluster (the internet, the metadata endpoint)."""
    return {'IP': ip}


def connection(source, destination, port, protocol='TCP'):
    return {'Source': source, 'Destination': destination, 'Protocol': protocol, 'ResolvedPort': port,
            'ResolvedPortName': ''}


def query_traffic(policies, connections, workdir):
    """Run cyclonus on POLICIES (NetworkPolicy dicts) for CONNECTIONS; returns [allowed, ...]."""
    binary = os.path.join(tool_dir('cyclonus', 'CYCLONUS_BIN_DIR', ['cyclonus']), 'cyclonus')
    policy_path = os.path.join(workdir, 'policies.yaml')
    traffic_path = os.path.join(workdir, 'traffic.json')
    with open(policy_path, 'w', encoding='utf-8') as handle:
        # cyclonus reads one policy or one NetworkPolicyList per file.
        yaml.safe_dump({'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicyList', 'items': policies}, handle)
    with open(traffic_path, 'w', encoding='utf-8') as handle:
        json.dump(connections, handle)
    proc = subprocess.run([binary, 'analyze', '--policy-path', policy_path, '--mode', 'query-traffic',
                           '--traffic-path', traffic_path], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError('cyclonus failed (rc=%s):\n%s\n%s' % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return parse_query_traffic(proc.stdout)
