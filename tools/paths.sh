# Sourced by scripts/build-tools.sh and scripts/cluster.sh: where the pinned
# control-plane binaries live. One folder per component and version, outside
# the repository, so a pin change rebuilds only that component and every
# clone on the machine shares the result.
# shellcheck shell=bash
LLMSCALE_TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/versions.env
source "${LLMSCALE_TOOLS_DIR}/versions.env"
LLMSCALE_BIN_ROOT="${LLMSCALE_BIN_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/llmscale/bin}"
KUBERNETES_BIN_DIR="${LLMSCALE_BIN_ROOT}/kubernetes-${KUBERNETES_VERSION}"
ETCD_BIN_DIR="${LLMSCALE_BIN_ROOT}/etcd-${ETCD_VERSION}"
KWOK_BIN_DIR="${LLMSCALE_BIN_ROOT}/kwok-${KWOK_VERSION}"
METRICS_SERVER_BIN_DIR="${LLMSCALE_BIN_ROOT}/metrics-server-${METRICS_SERVER_VERSION}"
HELM_BIN_DIR="${LLMSCALE_BIN_ROOT}/helm-${HELM_VERSION}"
KEDA_BIN_DIR="${LLMSCALE_BIN_ROOT}/keda-${KEDA_VERSION}"
PROMETHEUS_BIN_DIR="${LLMSCALE_BIN_ROOT}/prometheus-${PROMETHEUS_RELEASE}"
CYCLONUS_BIN_DIR="${LLMSCALE_BIN_ROOT}/cyclonus-${CYCLONUS_VERSION}"
