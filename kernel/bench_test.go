package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkBlock measures one query against a block of 1280-dim rows per kernel: 8 rows (40 KB,
// L1/L2-resident), 64 rows (320 KB, L2) and 16384 rows (80 MB, out of cache).
func BenchmarkBlock(b *testing.B) {
	const dim = 1280
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{8, 64, 16384} {
		rows := randVec(rng, n*dim, 1)
		q := randVec(rng, dim, 1)
		out := make([]float32, n)
		forEachAvailable(b, func(name string) {
			b.Run(fmt.Sprintf("%s/rows=%d", name, n), func(b *testing.B) {
				b.SetBytes(int64(4 * len(rows)))
				for b.Loop() {
					L2SquaredBlock(q, rows, out)
				}
			})
		})
	}
}

// BenchmarkMulti measures 8 queries over one out-of-cache block: bytes are those of the rows,
// read once for all queries.
func BenchmarkMulti(b *testing.B) {
	const dim, n, nq = 1280, 16384, 8
	rng := rand.New(rand.NewPCG(2, 2))
	rows, queries := randVec(rng, n*dim, 1), randVec(rng, nq*dim, 1)
	out := make([]float32, nq*n)
	forEachAvailable(b, func(name string) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(rows)))
			for b.Loop() {
				L2SquaredMulti(queries, rows, dim, out)
			}
		})
	})
}

// BenchmarkPacked measures the pruned search's signature pass: 32-float rows, row-major
// (L2SquaredBlock) and packed (L2SquaredPacked), 4,096 rows (512 KB, cache-resident) and 102,400
// (12.8 MB, a 100k-row index's signatures).
func BenchmarkPacked(b *testing.B) {
	const w = 32
	rng := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{4096, 102400} {
		rows := randVec(rng, n*w, 1)
		packed := pack(rows, w)
		q := randVec(rng, w, 1)
		out := make([]float32, n)
		forEachAvailable(b, func(name string) {
			b.Run(fmt.Sprintf("%s/block/rows=%d", name, n), func(b *testing.B) {
				b.SetBytes(int64(4 * len(rows)))
				for b.Loop() {
					L2SquaredBlock(q, rows, out)
				}
			})
			b.Run(fmt.Sprintf("%s/packed/rows=%d", name, n), func(b *testing.B) {
				b.SetBytes(int64(4 * len(rows)))
				for b.Loop() {
					L2SquaredPacked(q, packed, out)
				}
			})
		})
	}
}
