// Pins the Prometheus server module (v0.316.0 is Prometheus 3.16.0) and,
// through go.sum, the hash of its zip. scripts/build-tools.sh downloads it
// with this module and builds cmd/prometheus in the module's own directory,
// with the module's own go.sum.
module llmscale.local/tools/prometheus

go 1.26.0

require github.com/prometheus/prometheus v0.316.0
