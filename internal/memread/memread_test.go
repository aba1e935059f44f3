package memread

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// allWidths are the readers on any CPU.
var allWidths = []string{"generic", "avx2", "avx512"}

// forEachWidth runs f as a subtest per reader, skipping, by name and with the reason, those this
// CPU or build lacks.
func forEachWidth(t *testing.T, f func(t *testing.T, width string)) {
	for _, width := range allWidths {
		t.Run(width, func(t *testing.T) {
			if !slices.Contains(Widths(), width) {
				t.Skipf("no %s reader: this CPU lacks it or this is a purego build (available: %v)", width, Widths())
			}
			f(t, width)
		})
	}
}

// TestEveryByteIsRead sets one bit of one byte in a zeroed buffer, for positions at and around
// every step boundary, worker boundary and tail, and checks that every reader finds that bit and
// no other, over unaligned starts and several worker counts.
func TestEveryByteIsRead(t *testing.T) {
	buf := make([]float32, 1100)
	bytes := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 4*len(buf))
	forEachWidth(t, func(t *testing.T, width string) {
		for _, start := range []int{0, 1, 3} { // in floats: 0, 4 and 12 bytes off the allocation's alignment
			for _, n := range []int{0, 1, 7, 31, 32, 33, 64, 65, 127, 1000, 1097} {
				data := buf[start : start+n]
				for _, workers := range []int{1, 2, 3} {
					if got, err := Read(data, workers, width); err != nil || got != 0 {
						t.Fatalf("%s: %d zero floats, %d workers: %#x, %v", width, n, workers, got, err)
					}
					for pos := 0; pos < 4*n; pos++ {
						bit := byte(1) << (pos % 8)
						bytes[4*start+pos] = bit
						got, err := Read(data, workers, width)
						bytes[4*start+pos] = 0
						if err != nil || got != bit {
							t.Fatalf("%s: %d floats at +%d, %d workers, bit %#x at byte %d: read %#x, %v", width, n, start, workers, bit, pos, got, err)
						}
					}
				}
			}
		}
	})
}

// TestReadersAgree compares every reader with a plain byte loop on random data.
func TestReadersAgree(t *testing.T) {
	forEachWidth(t, func(t *testing.T, width string) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, n := range []int{5, 300, 4096, 100_003} {
			data := make([]float32, n)
			b := unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*n)
			for i := range b {
				// Sparse bits, so that the OR of all bytes is not simply 0xff.
				if rng.IntN(64) == 0 {
					b[i] = 1 << rng.IntN(7)
				}
			}
			want := orBytes(b)
			if got, err := Read(data, 2, width); err != nil || got != want {
				t.Errorf("%d floats: %#x, %v; want %#x", n, got, err, want)
			}
		}
	})
}

// TestWidths checks that the generic reader is always offered and an unknown one refused.
func TestWidths(t *testing.T) {
	if w := Widths(); w[0] != "generic" {
		t.Errorf("Widths() = %v: generic must always be there, first", w)
	}
	if _, err := Read(make([]float32, 4), 1, "sse9"); err == nil {
		t.Error("Read with an unknown width succeeded")
	}
}

func BenchmarkRead(b *testing.B) {
	data := make([]float32, 16<<20) // 64 MB: beyond any cache
	for i := range data {
		data[i] = 1
	}
	for _, width := range Widths() {
		b.Run(width, func(b *testing.B) {
			b.SetBytes(int64(4 * len(data)))
			for b.Loop() {
				Read(data, 1, width)
			}
		})
	}
}
