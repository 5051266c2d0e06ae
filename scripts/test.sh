#!/usr/bin/env bash
# Runs the test stages. `all` is what CI runs (via `make test`).
#   unit         pytest tests/unit
#   lint         ansible-lint (production profile) and yamllint
#   sanity       ansible-test sanity, from a copy laid out as ansible_collections/llmscale/gpu_serving
#   integration  local cluster up, pytest tools/tests (the harness) and tests/integration, every Molecule scenario, cluster down
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
export ANSIBLE_NOCOLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0

stage() { printf '\n===== %s =====\n' "$*"; }

run_unit() {
  stage "unit tests"
  python -m pytest -q -p no:cacheprovider -n 2 tests/unit
}

run_lint() {
  stage "yamllint"
  yamllint -s .
  stage "ansible-lint (production profile)"
  ansible-lint --offline -q
}

run_sanity() {
  stage "ansible-test sanity"
  local root
  root=$(mktemp -d "${TMPDIR:-/tmp}/llmscale-sanity.XXXXXX")
  trap 'rm -rf "$root"' RETURN
  local copy="$root/ansible_collections/llmscale/gpu_serving"
  mkdir -p "$copy"
  # Only the files that would be committed: never .venv, .collections or tests/output.
  git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- . "$copy/"
  # Dependency collections next to ours, as ansible-test expects.
  for ns in .collections/ansible_collections/*; do
    [ "$(basename "$ns")" = llmscale ] && continue
    ln -s "$repo/$ns" "$root/ansible_collections/$(basename "$ns")"
  done
  (cd "$copy" && ansible-test sanity --venv --python 3.11 --color no)
}

run_integration() {
  local scenario rc=0
  stage "local cluster up"
  # Set before starting: a cluster that fails half-way up is removed too.
  trap 'stage "local cluster down"; bash scripts/cluster.sh down' EXIT
  bash scripts/cluster.sh up >/dev/null
  KUBECONFIG=$(bash scripts/cluster.sh kubeconfig)
  export KUBECONFIG
  stage "integration tests (pytest tools/tests tests/integration)"
  # Any non-zero exit fails the stage, 5 (nothing collected) included.
  python -m pytest -q -p no:cacheprovider tools/tests tests/integration || rc=$?
  for scenario in molecule/*/; do
    scenario=$(basename "$scenario")
    [ -f "molecule/$scenario/molecule.yml" ] || continue
    stage "molecule test -s $scenario"
    molecule test -s "$scenario" || rc=1
  done
  return "$rc"
}

case "${1:-all}" in
  unit) run_unit ;;
  lint) run_lint ;;
  sanity) run_sanity ;;
  integration|molecule) run_integration ;;
  all)
    run_unit
    run_lint
    run_sanity
    run_integration
    ;;
  *) echo "usage: $0 [all|unit|lint|sanity|integration]" >&2; exit 2 ;;
esac
