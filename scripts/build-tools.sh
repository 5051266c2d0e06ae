#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok, kwokctl, metrics-server, helm) and the
# autoscaling loop's parts (KEDA operator and metrics API server, Prometheus)
# and the NetworkPolicy analyser cyclonus,
# from the Go module proxy at the versions pinned in tools/versions.env, into
# ~/.cache/llmscale/bin/<component>-<version>/. No registry or download site is
# reachable here, so Go modules are the only source of real upstream binaries.
#
# A component is rebuilt only when its pin or its tools/<component>/ module
# files change (a stamp file records their hash), so a cached run takes seconds.
#
# Usage: scripts/build-tools.sh [component ...]   (default: all, in order)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/paths.sh
source "${repo_root}/tools/paths.sh"

if ! command -v go >/dev/null 2>&1; then
  export PATH="${PATH}:/usr/local/go/bin"
fi
command -v go >/dev/null || { echo "build-tools: Go is not installed (expected /usr/local/go/bin/go)" >&2; exit 1; }

# Static binaries, reproducible paths, and the committed go.sum must be enough.
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=readonly -trimpath -buildvcs=false"
# Modules whose go directive is newer than the installed Go make the go command
# fetch that toolchain from the module proxy (an approved one: go1.27.3).
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
# Prometheus's module ships a go.work naming folders its module zip lacks.
export GOWORK=off

kube_minor="${KUBERNETES_VERSION#v1.}"; kube_minor="${kube_minor%%.*}"
# Helm and kwokctl read the version the binaries report, so stamp the real one.
kubernetes_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=${kube_minor} \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=${kube_minor}"
# Helm's built-in Kubernetes version follows the client-go it was built with.
helm_client_go="$(awk '$1=="k8s.io/client-go"{print $2; exit}' "${repo_root}/tools/helm/go.sum")"
helm_kube_minor="${helm_client_go#v0.}"; helm_kube_minor="${helm_kube_minor%%.*}"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} \
 -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${helm_kube_minor} \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${helm_kube_minor}"
metrics_server_ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=${METRICS_SERVER_VERSION}"
keda_ldflags="-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
prometheus_ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_RELEASE}"

log() { printf '%s build-tools: %s\n' "$(date +%H:%M:%S)" "$*"; }

# require_pin MODULE_DIR MODULE VERSION: go.mod must require what versions.env pins.
require_pin() {
  local gomod="$1/go.mod" module="$2" version="$3"
  if ! grep -Eq "^[[:space:]]*(require[[:space:]]+)?${module//./\\.}[[:space:]]+${version//./\\.}([[:space:]]|$)" "${gomod}"; then
    echo "build-tools: ${gomod} does not require ${module} ${version} (tools/versions.env); update it (tools/pin-kubernetes.sh for Kubernetes, go get + go mod tidy otherwise)" >&2
    exit 1
  fi
}

# build_binary MODULE_DIR OUT_DIR NAME PACKAGE LDFLAGS: go build with a heartbeat,
# because a cold kube-apiserver build runs for minutes without printing anything.
build_binary() {
  local module_dir="$1" out_dir="$2" name="$3" package="$4" ldflags="$5"
  local build_log started pid packages
  build_log="$(mktemp "${TMPDIR:-/tmp}/build-${name}.XXXXXX.log")"
  started=$(date +%s)
  log "building ${name} (${package})"
  ( cd "${module_dir}" && exec go build -v -ldflags "${ldflags}" -o "${out_dir}/${name}.tmp" "${package}" ) >"${build_log}" 2>&1 &
  pid=$!
  while kill -0 "${pid}" 2>/dev/null; do
    sleep 15
    if kill -0 "${pid}" 2>/dev/null; then
      packages=$(grep -cv '^go: downloading' "${build_log}" || true)
      log "  ... ${name}: $(( $(date +%s) - started ))s, ${packages} packages compiled, $(grep -c '^go: downloading' "${build_log}" || true) modules downloaded"
    fi
  done
  if ! wait "${pid}"; then
    tail -n 40 "${build_log}" >&2
    echo "build-tools: building ${name} failed; full log: ${build_log}" >&2
    exit 1
  fi
  mv -f "${out_dir}/${name}.tmp" "${out_dir}/${name}"
  rm -f "${build_log}"
  log "built ${name} in $(( $(date +%s) - started ))s"
}

# build_component NAME MODULE VERSION OUT_DIR LDFLAGS BINARY=PACKAGE...
# With BUILD_IN_MODULE=1 the packages are built in MODULE's own directory in
# the module cache (downloaded through tools/NAME, whose go.sum pins its hash),
# so MODULE's own go.mod, replace directives and go.sum apply.
build_component() {
  local name="$1" module="$2" version="$3" out_dir="$4" ldflags="$5"; shift 5
  local module_dir="${repo_root}/tools/${name}" build_dir stamp_file want_stamp started spec missing=0
  require_pin "${module_dir}" "${module}" "${version}"
  # The stamp covers everything that changes the output: module files, flags, Go.
  want_stamp="$( { cat "${module_dir}"/go.mod "${module_dir}"/go.sum "${module_dir}"/*.go 2>/dev/null; echo "${ldflags} $*"; go env GOVERSION; } | sha256sum | cut -d' ' -f1)"
  stamp_file="${out_dir}/.build-stamp"
  mkdir -p "${out_dir}"
  # Teammates' scripts may build the same component at the same time: the
  # second waits for the first and then finds it cached.
  exec 8>"${out_dir}/.lock"
  if ! flock -n 8; then
    log "${name} ${version}: another build of it is running; waiting for it"
    flock 8
  fi
  for spec in "$@"; do [[ -x "${out_dir}/${spec%%=*}" ]] || missing=1; done
  if [[ ${missing} -eq 0 && -f "${stamp_file}" && "$(cat "${stamp_file}")" == "${want_stamp}" ]]; then
    log "${name} ${version}: cached in ${out_dir}"
    exec 8>&-
    return
  fi
  started=$(date +%s)
  log "${name} ${version}: building into ${out_dir}"
  rm -f "${stamp_file}"
  build_dir="${module_dir}"
  if [[ "${BUILD_IN_MODULE:-0}" == 1 ]]; then
    build_dir="$(module_source_dir "${name}" "${module}")"
  fi
  for spec in "$@"; do
    build_binary "${build_dir}" "${out_dir}" "${spec%%=*}" "${spec#*=}" "${ldflags}"
  done
  echo "${want_stamp}" >"${stamp_file}"
  exec 8>&-
  log "${name} ${version}: done in $(( $(date +%s) - started ))s"
}

build_kubernetes() {
  build_component kubernetes k8s.io/kubernetes "${KUBERNETES_VERSION}" "${KUBERNETES_BIN_DIR}" "${kubernetes_ldflags}" \
    kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
    kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
    kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
    kubectl=k8s.io/kubernetes/cmd/kubectl
}
build_etcd() {
  build_component etcd go.etcd.io/etcd/server/v3 "${ETCD_VERSION}" "${ETCD_BIN_DIR}" "-s -w" etcd=.
}
# module_source_dir COMPONENT MODULE: the module's files in the module cache.
module_source_dir() {
  (cd "${repo_root}/tools/$1" && go mod download "$2" && go list -m -f '{{.Dir}}' "$2")
}
build_kwok() {
  build_component kwok sigs.k8s.io/kwok "${KWOK_VERSION}" "${KWOK_BIN_DIR}" "-s -w" \
    kwok=sigs.k8s.io/kwok/cmd/kwok kwokctl=sigs.k8s.io/kwok/cmd/kwokctl
  # kwok's resource-usage and kubelet /metrics/resource simulation, as
  # upstream ships it (kustomize/metrics/usage): scripts/cluster.sh feeds it
  # to kwokctl so metrics-server gets pod CPU and memory.
  if [[ ! -s "${KWOK_BIN_DIR}/metrics-usage.yaml" ]]; then
    local source_dir; source_dir="$(module_source_dir kwok sigs.k8s.io/kwok)"
    { cat "${source_dir}/kustomize/metrics/usage/usage-from-annotation.yaml"; echo "---"
      cat "${source_dir}/kustomize/metrics/resource/metrics-resource.yaml"; } >"${KWOK_BIN_DIR}/metrics-usage.yaml"
    log "kwok: wrote ${KWOK_BIN_DIR}/metrics-usage.yaml"
  fi
}
build_metrics-server() {
  build_component metrics-server sigs.k8s.io/metrics-server "${METRICS_SERVER_VERSION}" "${METRICS_SERVER_BIN_DIR}" "${metrics_server_ldflags}" \
    metrics-server=sigs.k8s.io/metrics-server/cmd/metrics-server
  # Upstream's kustomize manifests (APIService, RBAC, Service): kwokctl
  # applies them, pointing the Service at the local process.
  if [[ ! -d "${METRICS_SERVER_BIN_DIR}/manifests" ]]; then
    cp -r "$(module_source_dir metrics-server sigs.k8s.io/metrics-server)/manifests" "${METRICS_SERVER_BIN_DIR}/manifests"
    chmod -R u+w "${METRICS_SERVER_BIN_DIR}/manifests"
    log "metrics-server: copied its manifests to ${METRICS_SERVER_BIN_DIR}/manifests"
  fi
}
build_helm() {
  build_component helm helm.sh/helm/v3 "${HELM_VERSION}" "${HELM_BIN_DIR}" "${helm_ldflags}" helm=helm.sh/helm/v3/cmd/helm
}
# KEDA's operator and its metrics API server (cmd/adapter, which serves
# external.metrics.k8s.io); tests/integration/scaling_harness.py runs both
# against the local cluster. CRDs and RBAC come from the real chart.
build_keda() {
  BUILD_IN_MODULE=1 build_component keda github.com/kedacore/keda/v2 "${KEDA_VERSION}" "${KEDA_BIN_DIR}" "${keda_ldflags}" \
    keda-operator=./cmd/operator keda-adapter=./cmd/adapter
}
# Debian's prometheus server lacks Kubernetes service discovery. Without the
# builtinassets tag the web UI is left out; the HTTP API is all the tests use.
build_prometheus() {
  BUILD_IN_MODULE=1 build_component prometheus github.com/prometheus/prometheus "${PROMETHEUS_VERSION}" "${PROMETHEUS_BIN_DIR}" "${prometheus_ldflags}" \
    prometheus=./cmd/prometheus
}

# cyclonus computes which traffic our rendered NetworkPolicies allow (tests/unit/test_network_policy_matrix.py);
# built in its own module directory, whose go.mod pins its Kubernetes libraries.
build_cyclonus() {
  BUILD_IN_MODULE=1 build_component cyclonus github.com/mattfenwick/cyclonus "${CYCLONUS_VERSION}" "${CYCLONUS_BIN_DIR}" "-s -w" \
    cyclonus=./cmd/cyclonus
}

all_components=(kubernetes etcd kwok metrics-server helm keda prometheus cyclonus)
components=("$@")
[[ ${#components[@]} -gt 0 ]] || components=("${all_components[@]}")

overall_started=$(date +%s)
log "$(go version); binaries under ${LLMSCALE_BIN_ROOT}"
for component in "${components[@]}"; do
  case " ${all_components[*]} " in
    *" ${component} "*) "build_${component}" ;;
    *) echo "build-tools: unknown component '${component}' (known: ${all_components[*]})" >&2; exit 2 ;;
  esac
done
log "all done in $(( $(date +%s) - overall_started ))s"
