package knn

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/edsrzf/mmap-go"

	"simsearch/internal/fault"
)

// A search over a file mapping whose file is truncated under it fails with an error from every
// worker's part, instead of the process dying of SIGBUS in a worker goroutine.
func TestSearchTruncatedMapping(t *testing.T) {
	const dim, rows = 64, 16384 // 4 MiB: several workers, many pages
	path := filepath.Join(t.TempDir(), "vectors")
	raw := make([]byte, dim*rows*4)
	for i := range raw {
		raw[i] = byte(i % 61)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmap()
	data := unsafe.Slice((*float32)(unsafe.Pointer(&m[0])), dim*rows)
	q := make([]float32, dim)
	if _, err := SearchBatch(data, dim, q, 5, Options{Workers: 4}); err != nil {
		t.Fatalf("intact mapping: %v", err)
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	res, err := SearchBatch(data, dim, q, 5, Options{Workers: 4})
	if !errors.Is(err, fault.ErrFault) || res != nil {
		t.Fatalf("truncated mapping: %v, %v; want no results and fault.ErrFault", res, err)
	}
}
