// Package memread reads memory the way the distance kernels do, minus the arithmetic, to measure
// the bandwidth a scan over the same bytes is bounded by.
//
// Each reader loads every byte once with the load width of the kernel of the same name (64-byte
// ZMM loads for avx512, 32-byte YMM loads for avx2, 8-byte loads for generic), four independent
// accumulators per step like the kernels' unrolled loops, and ORs them together: one cheap
// operation per load, so that the loop is bound by the loads alone. A memmove (what this
// package measured before) also writes, and runtime.memmove picks its own instructions.
package memread

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"unsafe"
)

type reader struct {
	name string
	// or returns the OR of every byte of b.
	or func(b []byte) byte
}

// readers lists the readers this CPU can run, narrowest first.
var readers = append([]reader{{"generic", orGeneric}}, archReaders()...)

// Widths returns the readers this CPU supports, named like the kernels whose load width they
// use, narrowest first.
func Widths() []string {
	names := make([]string, len(readers))
	for i, r := range readers {
		names[i] = r.name
	}
	return names
}

// Read reads every byte of data once with the named reader (see Widths), split across workers
// goroutines the way knn splits a scan, and returns the OR of all its bytes (so that the reads
// cannot be elided, and so that a test can tell that every byte was read).
func Read(data []float32, workers int, width string) (byte, error) {
	i := 0
	for i < len(readers) && readers[i].name != width {
		i++
	}
	if i == len(readers) {
		return 0, fmt.Errorf("memread: no %q reader on this CPU (available: %s)", width, strings.Join(Widths(), ", "))
	}
	or := readers[i].or
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data))
	workers = max(1, workers)
	ors := make([]byte, workers)
	var wg sync.WaitGroup
	for w := range workers {
		part := b[4*(len(data)*w/workers) : 4*(len(data)*(w+1)/workers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ors[w] = or(part)
		}()
	}
	wg.Wait()
	var x byte
	for _, o := range ors {
		x |= o
	}
	return x, nil
}

// orGeneric is the portable reader: 8-byte loads into four accumulators, then the tail bytewise.
func orGeneric(b []byte) byte {
	var a0, a1, a2, a3 uint64
	for len(b) >= 32 {
		// The compiler turns each into one 8-byte load.
		a0 |= binary.LittleEndian.Uint64(b[0:])
		a1 |= binary.LittleEndian.Uint64(b[8:])
		a2 |= binary.LittleEndian.Uint64(b[16:])
		a3 |= binary.LittleEndian.Uint64(b[24:])
		b = b[32:]
	}
	return fold(a0|a1|a2|a3) | orBytes(b)
}

// fold ORs the eight bytes of x together.
func fold(x uint64) byte {
	x |= x >> 32
	x |= x >> 16
	x |= x >> 8
	return byte(x)
}

func orBytes(b []byte) byte {
	var x byte
	for _, c := range b {
		x |= c
	}
	return x
}
