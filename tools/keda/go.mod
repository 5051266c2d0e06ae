// Pins the KEDA module and, through go.sum, the hash of its zip.
// scripts/build-tools.sh downloads it with this module (so go verifies that
// hash) and builds in the module's own directory: KEDA's go.mod pins its
// Kubernetes libraries with replace directives, which a wrapper module ignores.
module llmscale.local/tools/keda

go 1.26.0

require github.com/kedacore/keda/v2 v2.20.2
