package main

import (
	"strings"
	"testing"
)

// The line that says whose answers agree names the numpy loop only when it was checked (it
// named it even when numpy was missing and the loop skipped).
func TestCheckedNamesOnlyWhatRan(t *testing.T) {
	if got := checked(""); strings.Contains(got, "numpy") || !strings.Contains(got, "query IMAGE") {
		t.Errorf("without python: %q", got)
	}
	if got := checked("/usr/bin/python3"); !strings.Contains(got, "numpy loop") {
		t.Errorf("with python: %q", got)
	}
}
