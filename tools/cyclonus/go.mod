// Pins the cyclonus module (the NetworkPolicy analyser) and, through go.sum,
// the hash of its zip. scripts/build-tools.sh builds it in the module's own
// directory, so cyclonus's own go.mod and go.sum apply.
module llmscale.local/tools/cyclonus

go 1.26.0

require github.com/mattfenwick/cyclonus v0.5.6
