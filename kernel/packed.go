package kernel

import (
	"fmt"
	"math"
)

// PackRows is the number of rows in a group of the packed layout that L2SquaredPacked reads:
// groups of PackRows rows, one after the other, each stored dimension-major (dimension d of the
// group's row i at d·PackRows + i). One SIMD vector then holds one dimension of several rows, so
// that the sums need no horizontal additions: the layout of the pruned search's short signatures.
const PackRows = 16

// packedFunc stores to out[PackRows·g + i] the squared distance from q to row i of group g of
// the len(out)/PackRows packed groups of len(q) floats in packed, and returns the smallest.
type packedFunc func(q, packed, out []float32) float32

// L2SquaredPacked stores to out[PackRows·g + i] the squared L2 distance from q to row i of group
// g of packed, which holds len(out)/PackRows groups of PackRows rows of len(q) floats in the
// packed layout (see PackRows), and returns the smallest of them (+Inf for none; a NaN, if the
// rows hold one, may or may not be it). Each sum has the accuracy of L2Squared's: len(q)
// non-negative terms, each a rounded difference squared, added in a fixed order.
func L2SquaredPacked(q, packed, out []float32) float32 {
	if len(q) == 0 || len(out)%PackRows != 0 || len(packed) != len(out)*len(q) {
		panic(fmt.Sprintf("kernel: packed block of %d floats and %d results is not groups of %d rows of %d", len(packed), len(out), PackRows, len(q)))
	}
	return active().packed(q, packed, out)
}

// packedGeneric is the portable packed kernel: the assembly's arithmetic (the dimensions
// round-robin into four partial sums, the w%4 last ones into the first, added as (0+1)+(2+3)),
// with separate multiplies and adds, one row at a time so that the sums stay in registers.
func packedGeneric(q, packed, out []float32) float32 {
	w := len(q)
	least := float32(math.Inf(1))
	for g := range len(out) / PackRows {
		block := packed[g*PackRows*w : (g+1)*PackRows*w]
		for i := range PackRows {
			var s0, s1, s2, s3 float32
			d, at := 0, i // at: dimension d of row i
			for ; d+4 <= w; d, at = d+4, at+4*PackRows {
				x0 := block[at] - q[d]
				x1 := block[at+PackRows] - q[d+1]
				x2 := block[at+2*PackRows] - q[d+2]
				x3 := block[at+3*PackRows] - q[d+3]
				s0 += x0 * x0
				s1 += x1 * x1
				s2 += x2 * x2
				s3 += x3 * x3
			}
			for ; d < w; d, at = d+1, at+PackRows {
				x := block[at] - q[d]
				s0 += x * x
			}
			o := (s0 + s1) + (s2 + s3)
			out[g*PackRows+i] = o
			least = min(least, o)
		}
	}
	return least
}
