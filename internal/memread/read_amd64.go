//go:build !purego

package memread

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// archReaders returns the vector readers this CPU supports, narrowest first, under the same
// conditions as the kernels of the same names (x/sys/cpu reports AVX2 and AVX-512 only when the
// OS saves the wider registers).
func archReaders() []reader {
	var s []reader
	if cpu.X86.HasAVX2 {
		s = append(s, reader{"avx2", vectorOr(orAVX2, 128)})
	}
	if cpu.X86.HasAVX512F {
		s = append(s, reader{"avx512", vectorOr(orAVX512, 256)})
	}
	return s
}

// vectorOr adapts an assembly reader, which takes a multiple of step bytes, to any length: the
// tail goes through the generic reader.
func vectorOr(f func(p *byte, n int) uint64, step int) func([]byte) byte {
	return func(b []byte) byte {
		n := len(b) &^ (step - 1)
		var x byte
		if n > 0 {
			x = fold(f(unsafe.SliceData(b), n))
		}
		return x | orGeneric(b[n:])
	}
}

// orAVX512 returns the OR of the n bytes at p (n a multiple of 256) as 8-byte lanes ORed
// together, reading 4 × 64 bytes per step with ZMM loads, as the AVX-512 kernel does.
//
//go:noescape
func orAVX512(p *byte, n int) uint64

// orAVX2 is orAVX512 with YMM loads, 4 × 32 bytes per step (n a multiple of 128), as the AVX2
// kernel does.
//
//go:noescape
func orAVX2(p *byte, n int) uint64
