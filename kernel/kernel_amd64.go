//go:build !purego

package kernel

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// archImpls returns the assembly kernels this CPU supports, slowest first. x/sys/cpu reports
// AVX2 and AVX-512 only when the OS also saves the wider registers.
func archImpls() []impl {
	var s []impl
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		s = append(s, impl{"avx2", asmBlock(l2BlockAVX2)})
	}
	if cpu.X86.HasAVX512F {
		s = append(s, impl{"avx512", asmBlock(l2BlockAVX512)})
	}
	return s
}

// asmBlock adapts an assembly kernel to blockFunc; callers have checked the lengths.
func asmBlock(f func(q, rows *float32, dim, n int, out *float32)) blockFunc {
	return func(q, rows, out []float32) {
		if len(out) == 0 {
			return
		}
		f(unsafe.SliceData(q), unsafe.SliceData(rows), len(q), len(out), unsafe.SliceData(out))
	}
}
