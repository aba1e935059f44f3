package knn

import (
	"errors"
	"testing"
	"unsafe"

	"simsearch/internal/fault"
	"simsearch/internal/fault/faulttest"
)

// A search over a file mapping whose file is truncated under it fails with an error from every
// worker's part, instead of the process dying of SIGBUS in a worker goroutine.
func TestSearchTruncatedMapping(t *testing.T) {
	const dim, rows = 64, 16384 // 4 MiB: several workers, many pages
	raw := make([]byte, dim*rows*4)
	for i := range raw {
		raw[i] = byte(i % 61)
	}
	m, shrink := faulttest.Map(t, raw)
	data := unsafe.Slice((*float32)(unsafe.Pointer(&m[0])), dim*rows)
	q := make([]float32, dim)
	if _, err := SearchBatch(data, dim, q, 5, Options{Workers: 4}); err != nil {
		t.Fatalf("intact mapping: %v", err)
	}
	shrink(4096)
	res, err := SearchBatch(data, dim, q, 5, Options{Workers: 4})
	if !errors.Is(err, fault.ErrFault) || res != nil {
		t.Fatalf("truncated mapping: %v, %v; want no results and fault.ErrFault", res, err)
	}
}
