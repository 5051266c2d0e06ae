#!/usr/bin/env bash
# Chart archives for air-gapped sites (`make charts`), and their digests.
#   scripts/charts.sh list             the pinned charts: name version repository (from the roles' defaults)
#   scripts/charts.sh pull DIR         on a machine with network: helm pull every pinned chart into DIR,
#                                      then write DIR/SHA256SUMS
#   scripts/charts.sh digests DIR      write DIR/SHA256SUMS for the archives already in DIR
#   scripts/charts.sh verify DIR       check DIR/SHA256SUMS (what the roles check before installing)
# Copy DIR to the control node and set llmscale_chart_dir to it: the roles then install
# DIR/<chart>-<version>.tgz and refuse an archive whose sha256 is not the one listed.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
# env.sh changes to the checkout's root: DIR is taken relative to where we were called.
if [ -n "$dir" ]; then mkdir -p "$dir" 2>/dev/null || true; dir=$(cd "$dir" && pwd); fi
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
# shellcheck source=tools/paths.sh
source tools/paths.sh

# Each pinned chart is the <prefix>_name/_version/_repo_url of one role's defaults: one source of truth.
pins() {
  python - <<'EOF'
import yaml
CHARTS = [('gpu_operator', 'gpu_operator_chart'), ('monitoring', 'monitoring_stack_chart'),
          ('autoscaling', 'autoscaling_prometheus_adapter_chart'), ('autoscaling', 'autoscaling_keda_chart')]
for role, prefix in CHARTS:
    with open('roles/%s/defaults/main.yml' % role, encoding='utf-8') as handle:
        defaults = yaml.safe_load(handle)
    print(defaults[prefix + '_name'], defaults[prefix + '_version'], defaults[prefix + '_repo_url'])
EOF
}

helm_bin() {
  if [ -x "${HELM_BIN_DIR}/helm" ]; then echo "${HELM_BIN_DIR}/helm"; else command -v helm; fi
}

write_digests() {
  local dir=$1
  (cd "$dir" && shopt -s nullglob && archives=(*.tgz) && [ ${#archives[@]} -gt 0 ] \
    || { echo "no .tgz archives in $dir" >&2; exit 1; }
   sha256sum "${archives[@]}" > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
  echo "wrote $dir/SHA256SUMS"
}

case "$cmd" in
  list) pins ;;
  pull)
    [ -n "$dir" ] || { echo "usage: $0 pull DIR" >&2; exit 2; }
    helm=$(helm_bin) || { echo "no helm: run 'make tools' or put helm on PATH" >&2; exit 1; }
    while read -r name version repo; do
      echo "==> $name $version from $repo"
      "$helm" pull "$name" --repo "$repo" --version "$version" --destination "$dir"
      [ -f "$dir/$name-$version.tgz" ] || { echo "helm pull did not write $dir/$name-$version.tgz" >&2; exit 1; }
    done < <(pins)
    write_digests "$dir"
    ;;
  digests)
    [ -n "$dir" ] || { echo "usage: $0 digests DIR" >&2; exit 2; }
    write_digests "$dir"
    ;;
  verify)
    [ -n "$dir" ] || { echo "usage: $0 verify DIR" >&2; exit 2; }
    (cd "$dir" && sha256sum --check --strict SHA256SUMS)
    ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
