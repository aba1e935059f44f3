// Package memread reads memory as fast as plain copying can, to measure the bandwidth a scan
// over the same bytes is bounded by.
package memread

import (
	"sync"
	"unsafe"
)

// Read reads every byte of data once, split across workers goroutines the way knn splits a scan,
// and returns a value that depends on the bytes (so the reads cannot be elided).
func Read(data []float32, workers int) byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data))
	workers = max(1, workers)
	sums := make([]byte, workers)
	var wg sync.WaitGroup
	for w := range workers {
		part := b[4*(len(data)*w/workers) : 4*(len(data)*(w+1)/workers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			// copy is memmove: vector loads at full speed; the destination stays in L1.
			var buf [32 << 10]byte
			for len(part) > 0 {
				n := copy(buf[:], part)
				part = part[n:]
				sums[w] ^= buf[n-1]
			}
		}()
	}
	wg.Wait()
	var x byte
	for _, s := range sums {
		x ^= s
	}
	return x
}
