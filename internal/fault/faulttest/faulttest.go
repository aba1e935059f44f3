// Package faulttest maps files for the tests of code that reads through a mapping whose file may
// shrink under it (see package fault).
package faulttest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edsrzf/mmap-go"
)

// Map writes b (not empty) to a new file in t's temporary folder and maps the file read-only
// until the test ends. shrink truncates the file to size bytes under the mapping: reads of the
// pages past it then fault.
func Map(t testing.TB, b []byte) (m []byte, shrink func(size int64)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mapped")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mm, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mm.Unmap() })
	return mm, func(size int64) {
		t.Helper()
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
}
