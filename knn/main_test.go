package knn

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"simsearch/kernel"
)

// TestMain says which kernels the searches were not tested with, on stderr, after the tests:
// subtests of kernels the CPU lacks are skipped, and a skip is silent without -v (make test
// prints these lines: go test hides a passing package's output).
func TestMain(m *testing.M) {
	code := m.Run()
	for _, name := range kernel.Known() {
		if !slices.Contains(kernel.Available(), name) {
			fmt.Fprintf(os.Stderr, "knn with kernel %s: NOT TESTED on this CPU (it lacks the instructions; see kernel's line)\n", name)
		}
	}
	os.Exit(code)
}
