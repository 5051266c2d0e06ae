#!/usr/bin/env bash
# The local default cluster: a real control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, metrics-server) run as local
# processes by kwokctl's binary runtime, with kwok simulating the nodes of
# tools/cluster/nodes.yaml (two 8-GPU H100 nodes, one CPU node).
#
# Usage: scripts/cluster.sh up|down|status|kubeconfig
#   up          start (or reuse) the cluster; the last line on stdout is
#               KUBECONFIG=<absolute path>. Progress goes to stderr.
#   down        stop it and remove its state (a no-op when there is none).
#   status      say whether it is up and how much memory its processes use.
#   kubeconfig  print the absolute path of the kubeconfig of the running
#               cluster (the one line on stdout); exit 1 when it is not serving.
# Every binary comes from scripts/build-tools.sh; nothing is downloaded.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/paths.sh
source "${repo_root}/tools/paths.sh"

cluster_name="${LLMSCALE_CLUSTER_NAME:-llmscale}"
# kwokctl keeps each cluster's pki, logs, pids and kubeconfig under this.
export KWOK_WORKDIR="${LLMSCALE_KWOK_WORKDIR:-${XDG_STATE_HOME:-$HOME/.local/state}/llmscale/kwok}"
cluster_dir="${KWOK_WORKDIR}/clusters/${cluster_name}"
kubeconfig="${cluster_dir}/kubeconfig.yaml"
# kwokctl looks kubectl up on PATH before its configured binary.
export PATH="${KUBERNETES_BIN_DIR}:${KWOK_BIN_DIR}:${PATH}"
kwokctl="${KWOK_BIN_DIR}/kwokctl"
kubectl=("${KUBERNETES_BIN_DIR}/kubectl" --kubeconfig "${kubeconfig}" --request-timeout=20s)
# Whatever changes the running binaries or their configuration: a cluster
# started with other pins or another config is recreated, not reused.
pins_file="${cluster_dir}/llmscale-pins"

log() { printf '%s cluster: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

api_ready() {
  [[ -f "${kubeconfig}" ]] && "${kubectl[@]}" get --raw /readyz >/dev/null 2>&1
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll, since a loaded 2-core machine
# can take a minute for what usually takes seconds.
wait_for() {
  local timeout="$1" what="$2" deadline; shift 2
  deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      "$@" >&2 || true
      die "timed out after ${timeout}s waiting for ${what}"
    fi
    sleep 2
  done
  log "ready: ${what}"
}

write_kwokctl_config() {
  # Every *Binary and *BinaryPrefix points at local files, so kwokctl never
  # falls back to a release URL; components we do not build (prometheus,
  # jaeger, kind, kectl, etcdctl) point at a folder that does not exist, so
  # enabling one fails loudly instead of downloading.
  local unavailable="${LLMSCALE_BIN_ROOT}/not-built"
  cat <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: ${KUBERNETES_VERSION}
  etcdVersion: ${ETCD_VERSION#v}
  kwokVersion: ${KWOK_VERSION}
  metricsServerVersion: ${METRICS_SERVER_VERSION}
  # TLS, RBAC and the default admission plugins (PodSecurity included) as
  # in a real cluster; kwokctl's binary runtime then also sets up the
  # aggregation layer (front-proxy client cert) that metrics-server needs.
  securePort: true
  kubeAuthorization: true
  kubeAdmission: true
  enableMetricsServer: true
  cacheDir: ${KWOK_WORKDIR}/cache
  kubeBinaryPrefix: ${KUBERNETES_BIN_DIR}
  kubeApiserverBinary: ${KUBERNETES_BIN_DIR}/kube-apiserver
  kubeControllerManagerBinary: ${KUBERNETES_BIN_DIR}/kube-controller-manager
  kubeSchedulerBinary: ${KUBERNETES_BIN_DIR}/kube-scheduler
  kubectlBinary: ${KUBERNETES_BIN_DIR}/kubectl
  etcdBinaryPrefix: ${ETCD_BIN_DIR}
  etcdBinary: ${ETCD_BIN_DIR}/etcd
  etcdctlBinary: ${unavailable}/etcdctl
  etcdutlBinary: ${unavailable}/etcdutl
  kwokBinaryPrefix: ${KWOK_BIN_DIR}
  kwokControllerBinary: ${KWOK_BIN_DIR}/kwok
  metricsServerBinaryPrefix: ${METRICS_SERVER_BIN_DIR}
  metricsServerBinary: ${METRICS_SERVER_BIN_DIR}/metrics-server
  # A local kustomize folder (upstream's release overlay), not the release URL.
  metricsServerManifests:
  - ${METRICS_SERVER_BIN_DIR}/manifests/overlays/release
  prometheusBinaryPrefix: ${unavailable}
  prometheusBinary: ${unavailable}/prometheus
  jaegerBinaryPrefix: ${unavailable}
  jaegerBinary: ${unavailable}/jaeger
  kindBinaryPrefix: ${unavailable}
  kindBinary: ${unavailable}/kind
  kectlBinary: ${unavailable}/kectl
  schedulerPluginsManifests: [${unavailable}/scheduler-plugins]
  kueueManifests: [${unavailable}/kueue]
  jobsetManifests: [${unavailable}/jobset]
  lwsManifests: [${unavailable}/lws]
  deschedulerManifests: [${unavailable}/descheduler]
YAML
}

cluster_pins() {
  { cat "${LLMSCALE_TOOLS_DIR}/versions.env" "${KWOK_BIN_DIR}/metrics-usage.yaml"; write_kwokctl_config; } | sha256sum | cut -d' ' -f1
}

create_cluster() {
  local config_file
  config_file="$(mktemp "${TMPDIR:-/tmp}/llmscale-kwokctl.XXXXXX.yaml")"
  {
    write_kwokctl_config
    # kwok's own resource-usage objects: pod CPU/memory from the
    # kwok.x-k8s.io/usage-cpu|memory annotations, served as kubelet's
    # /metrics/resource for metrics-server to scrape.
    echo "---"
    cat "${KWOK_BIN_DIR}/metrics-usage.yaml"
  } >"${config_file}"
  log "creating cluster '${cluster_name}' in ${cluster_dir}"
  # --kubeconfig '': leave ~/.kube/config alone; the cluster has its own.
  # 9>&-: the components kwokctl starts outlive it and must not hold our lock.
  "${kwokctl}" create cluster --name "${cluster_name}" --config "${config_file}" \
    --kubeconfig '' --timeout 10m --wait 5m >&2 9>&-
  rm -f "${config_file}"
  cluster_pins >"${pins_file}"
  # Its options (binaries, manifests) must be local paths; the components'
  # own flags name local listen URLs, which are fine.
  local remote_sources
  remote_sources="$(awk '/^options:/{inside=1; next} /^[a-z]/{inside=0} inside' "${cluster_dir}/kwok.yaml" | grep -E 'https?://' || true)"
  [[ -z "${remote_sources}" ]] || die "the kwokctl configuration names a download URL: ${remote_sources}"
}

delete_cluster() {
  if [[ -d "${cluster_dir}" ]]; then
    log "deleting cluster '${cluster_name}'"
    local pid_file pid
    # kwokctl delete wants some kubeconfig to drop the context from: give it
    # a scratch one, so ~/.kube/config stays untouched.
    "${kwokctl}" delete cluster --name "${cluster_name}" --kubeconfig "${KWOK_WORKDIR}/.scratch-kubeconfig" >&2 9>&- ||
      log "kwokctl delete failed; stopping its processes and removing its state anyway"
    # Whatever kwokctl left running (by the pids it recorded) must go too.
    for pid_file in "${cluster_dir}"/pids/*.pid; do
      [[ -f "${pid_file}" ]] || continue
      pid="$(cat "${pid_file}")"
      if [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null; then
        log "stopping leftover $(basename "${pid_file}" .pid) (pid ${pid})"
        kill "${pid}" 2>/dev/null || true
      fi
    done
    rm -rf "${cluster_dir}"
  fi
}

# The shared reference folder (real charts and CRDs): $LLMSCALE_SHARED_DIR, else ../shared next to this checkout or
# next to the main checkout of a git worktree. Empty when there is none.
shared_dir() {
  local common candidate
  common="$(git -C "${repo_root}" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
  for candidate in "${LLMSCALE_SHARED_DIR:-}" "$(dirname "${repo_root}")/shared" \
      ${common:+"$(dirname "$(dirname "${common}")")/shared"}; do
    if [[ -n "${candidate}" && -d "${candidate}/crds" ]]; then
      echo "${candidate}"
      return 0
    fi
  done
}

# What a site's gateway implementation installs with itself: the Gateway API (standard channel) and Inference
# Extension CRDs, so that the vllm role's default route (an HTTPRoute) applies on the local default too. The real
# upstream CRDs from the shared reference folder; no gateway runs here.
install_gateway_api_crds() {
  local shared folder
  shared="$(shared_dir)"
  if [[ -z "${shared}" ]]; then
    log "WARNING: no shared reference folder with crds/ (set LLMSCALE_SHARED_DIR): the Gateway API CRDs are not" \
        "installed, and the default route (vllm_route_kind: gateway) will be refused; -e vllm_route_kind=none serves" \
        "without a route"
    return 0
  fi
  for folder in gateway-api-v1.6.1 gateway-api-inference-extension-v1.6.0; do
    log "applying the CRDs of ${shared}/crds/${folder}"
    "${kubectl[@]}" apply --server-side --force-conflicts --field-manager=llmscale-local-cluster \
      -f "${shared}/crds/${folder}" >/dev/null
  done
  wait_for 120 "the HTTPRoute and InferencePool CRDs established" "${kubectl[@]}" wait --for=condition=Established \
    --timeout=10s crd/httproutes.gateway.networking.k8s.io crd/inferencepools.inference.networking.k8s.io
}

cluster_up() {
  local started; started=$(date +%s)
  bash "${repo_root}/scripts/build-tools.sh" kubernetes etcd kwok metrics-server >&2
  if [[ -d "${cluster_dir}" && "$(cat "${pins_file}" 2>/dev/null)" != "$(cluster_pins)" ]]; then
    log "cluster '${cluster_name}' was made with other pins or configuration: recreating it"
    delete_cluster
  fi
  if [[ -d "${cluster_dir}" ]]; then
    if api_ready; then
      log "reusing running cluster '${cluster_name}'"
    else
      log "cluster '${cluster_name}' exists but is not serving: starting it"
      if ! { "${kwokctl}" start cluster --name "${cluster_name}" >&2 9>&- && wait_for_api 120; }; then
        log "could not start it: recreating"
        delete_cluster
      fi
    fi
  fi
  [[ -d "${cluster_dir}" ]] || create_cluster

  wait_for 300 "kube-apiserver /readyz" api_ready
  log "applying nodes from tools/cluster/nodes.yaml and their local volumes"
  "${kubectl[@]}" apply -f "${LLMSCALE_TOOLS_DIR}/cluster/nodes.yaml" >&2
  "${kubectl[@]}" apply -f "${LLMSCALE_TOOLS_DIR}/cluster/local-volumes.yaml" >&2
  install_gateway_api_crds
  wait_for 300 "all nodes Ready" "${kubectl[@]}" wait node --all --for=condition=Ready --timeout=10s
  # Pods cannot be created before the controller-manager makes this account.
  wait_for 300 "default service account" "${kubectl[@]}" get serviceaccount default --namespace default
  restart_exited_components
  # Ask metrics-server itself, through the aggregation layer: the APIService's
  # Available condition lags behind a metrics-server that has exited.
  wait_for 300 "metrics.k8s.io answered by metrics-server" "${kubectl[@]}" get --raw /apis/metrics.k8s.io/v1beta1/nodes
  log "cluster '${cluster_name}' is up ($(( $(date +%s) - started ))s); ${KUBERNETES_VERSION}, nodes: $("${kubectl[@]}" get nodes -o name | tr '\n' ' ')"
  echo "KUBECONFIG=${kubeconfig}"
}

# kwokctl's binary runtime starts every component at once and never restarts
# one. metrics-server reads its request-header CA from the API server once at
# start and exits when that server is not listening yet, which happens on a
# loaded machine. Once the API server is ready, start again every component
# whose recorded process is gone, with the exact command line kwokctl uses
# (its --dry-run prints "cd DIR && NAME ARGS >LOG 2>&1 &", then the pid line).
restart_exited_components() {
  local line name pid_file pid
  while IFS= read -r line; do
    [[ "${line}" == "cd ${cluster_dir} && "* ]] || continue
    line="${line#"cd ${cluster_dir} && "}"
    name="${line%% *}"
    pid_file="${cluster_dir}/pids/${name}.pid"
    pid="$(cat "${pid_file}" 2>/dev/null || true)"
    if [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null; then
      continue
    fi
    log "${name} is not running; its last log lines:"
    tail -n 3 "${cluster_dir}/logs/${name}.log" >&2 2>/dev/null || true
    mv -f "${cluster_dir}/logs/${name}.log" "${cluster_dir}/logs/${name}.previous.log" 2>/dev/null || true
    log "starting ${name} again"
    # Same launch line and binary path as kwokctl's own; 9>&-: the process
    # outlives this script and must not hold its lock. The pid file holds
    # digits only (no newline): kwokctl stop parses it with strconv.Atoi.
    (cd "${cluster_dir}" && eval "${cluster_dir}/bin/${line}" 9>&- && printf %s "$!" >"${pid_file}")
  done < <("${kwokctl}" --dry-run start cluster --name "${cluster_name}" 2>/dev/null)
}

wait_for_api() { local t="$1" deadline=$(( $(date +%s) + $1 )); until api_ready; do (( $(date +%s) < deadline )) || return 1; sleep 2; done; }

cluster_status() {
  if [[ ! -d "${cluster_dir}" ]]; then
    echo "cluster '${cluster_name}': not created"
    return 0
  fi
  if api_ready; then echo "cluster '${cluster_name}': serving, KUBECONFIG=${kubeconfig}"; else echo "cluster '${cluster_name}': not serving"; fi
  # Its processes are the ones whose arguments name its folder.
  ps -eo pid=,rss=,args= | awk -v dir="${cluster_dir}/" 'index($0, dir) && !/awk/ {
      split($3, path, "/"); name = path[length(path)]; total += $2
      printf "  %-26s pid %-7s RSS %6.1f MiB\n", name, $1, $2 / 1024 }
    END { printf "  total RSS %.1f MiB\n", total / 1024 }'
}

cluster_kubeconfig() {
  api_ready || die "cluster '${cluster_name}' is not serving: run '$0 up' first"
  echo "${kubeconfig}"
}

command="${1:-}"
[[ -n "${command}" ]] || { echo "usage: $0 up|down|status|kubeconfig" >&2; exit 2; }
mkdir -p "${KWOK_WORKDIR}"
# One cluster per name on this machine: serialize concurrent up/down calls.
exec 9>"${KWOK_WORKDIR}/.${cluster_name}.cluster-sh.lock"
case "${command}" in
  up) flock 9; cluster_up ;;
  down) flock 9; delete_cluster; log "cluster '${cluster_name}' is down" ;;
  status) cluster_status ;;
  kubeconfig) cluster_kubeconfig ;;
  *) echo "usage: $0 up|down|status|kubeconfig" >&2; exit 2 ;;
esac
