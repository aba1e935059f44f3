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
	// The packed kernel reads short rows (32 floats) and is bound by memory at 256 bits: the
	// AVX-512 kernel uses the AVX2 one (every AVX-512 CPU has AVX2 and FMA; the generic one
	// otherwise) rather than a 512-bit version that would read no faster.
	packed := packedFunc(packedGeneric)
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		packed = asmPacked(l2PackedAVX2)
		s = append(s, impl{"avx2", asmBlock(l2BlockAVX2), packed})
	}
	if cpu.X86.HasAVX512F {
		s = append(s, impl{"avx512", asmBlock(l2BlockAVX512), packed})
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

// asmPacked adapts an assembly packed kernel to packedFunc; callers have checked the lengths.
func asmPacked(f func(q, packed *float32, w, groups int, out *float32) float32) packedFunc {
	return func(q, packed, out []float32) float32 {
		return f(unsafe.SliceData(q), unsafe.SliceData(packed), len(q), len(out)/PackRows, unsafe.SliceData(out))
	}
}
