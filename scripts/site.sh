#!/usr/bin/env bash
# The main job on the local default: start (or reuse) the local cluster, then
# run playbooks/site.yml against it with inventories/local.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"

bash scripts/cluster.sh up >/dev/null
KUBECONFIG=$(bash scripts/cluster.sh kubeconfig)
export KUBECONFIG
echo "==> ansible-playbook -i inventories/local playbooks/site.yml (KUBECONFIG=$KUBECONFIG)"
ansible-playbook -i inventories/local playbooks/site.yml "$@"
echo "==> done. The cluster keeps running: 'make cluster-down' stops it."
