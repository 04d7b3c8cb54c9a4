// The real Lumen Go SDK against a Lumen node (tests/interop/test_go_sdk.py). go.sum is not
// committed because the Go module proxy reachable from our machines refuses this module
// (403 "This module version is not available"); the test resolves it with `go mod tidy` in a
// temporary copy and skips, quoting the proxy, when it cannot.
module lumennode/interop/sdk

go 1.24

require github.com/edwinzhancn/lumen-sdk v1.4.0
