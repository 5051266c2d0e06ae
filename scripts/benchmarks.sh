#!/usr/bin/env bash
# Runs the benchmarks (ratios against the peer tool, measured side by side in
# one run); results go to benchmarks/results/ (git-ignored). Not part of `make test`.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
# shellcheck source=tools/paths.sh
source tools/paths.sh
# The kubectl and helm built with the local cluster, same release as its API server.
export PATH="$KUBERNETES_BIN_DIR:$HELM_BIN_DIR:$PATH"

echo "==> model_cache: cold pre-warm vs hf download, warm re-run (loopback Hugging Face server)"
python benchmarks/model_cache/bench.py

bash scripts/cluster.sh up >/dev/null
KUBECONFIG=$(bash scripts/cluster.sh kubeconfig)
export KUBECONFIG
echo "==> serving: no-change re-run of serving.yml vs helm upgrade --install (vLLM production-stack) vs kubectl apply --server-side"
python benchmarks/serving/bench_noop_rerun.py --rounds 5
echo "==> autoscaling: spike to scale-up decision and to Running pods, flapping over a steady queue (KEDA, Prometheus, HPA)"
python benchmarks/autoscaling/bench.py --profiles defaults,fast --steady 120
