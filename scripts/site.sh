#!/usr/bin/env bash
# The main job on the local default: start (or reuse) the local cluster, then
# run playbooks/site.yml against it with inventories/local.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"

KUBECONFIG=$(bash scripts/cluster.sh up | tail -n 1 | sed -n 's/^KUBECONFIG=//p')
[ -n "$KUBECONFIG" ] || { echo "cluster.sh up did not print KUBECONFIG=<path>" >&2; exit 1; }
export KUBECONFIG
echo "==> ansible-playbook -i inventories/local playbooks/site.yml (KUBECONFIG=$KUBECONFIG)"
ansible-playbook -i inventories/local playbooks/site.yml "$@"
echo "==> done. The cluster keeps running: 'make cluster-down' stops it."
