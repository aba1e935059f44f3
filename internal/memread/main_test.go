package memread

import (
	"fmt"
	"os"
	"slices"
	"testing"
)

// TestMain says which readers the run did not test, on stderr, after the tests: subtests of
// readers the CPU or build lacks are skipped, and a skip is silent without -v (make test prints
// these lines: go test hides a passing package's output).
func TestMain(m *testing.M) {
	code := m.Run()
	for _, width := range allWidths {
		if !slices.Contains(Widths(), width) {
			fmt.Fprintf(os.Stderr, "memread %s: NOT TESTED on this CPU (it lacks the instructions, or this is a purego build)\n", width)
		}
	}
	os.Exit(code)
}
