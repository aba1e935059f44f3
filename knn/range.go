package knn

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"simsearch/internal/fault"
	"simsearch/internal/parallel"
	"simsearch/kernel"
)

// SquaredBound returns a squared distance that every row within maxDistance (as reported: the
// float32 square root of the kernel's squared distance) is at or below. Rows above it are out of
// range; rows at or below it still need InRange's exact test. The factor covers the rounding of
// the square root to float32 (at most one half ulp, well under 2⁻²³ relative).
func SquaredBound(maxDistance float64) float64 {
	r := maxDistance * (1 + 0x1p-22)
	return r * r
}

// InRange returns the prefix of res (nearest first) whose reported distance is at most
// maxDistance.
func InRange(res []Neighbor, maxDistance float64) []Neighbor {
	for i, n := range res {
		if float64(n.Distance) > maxDistance {
			return res[:i]
		}
	}
	return res
}

// Within returns every row of data whose distance to q is at most maxDistance, nearest first
// (ties by row), skipping the rows set in opt.Exclude.
func Within(data []float32, dim int, q []float32, maxDistance float64, opt Options) ([]Neighbor, error) {
	switch {
	case dim <= 0 || len(data)%dim != 0:
		return nil, fmt.Errorf("data of %d floats is not made of rows of %d", len(data), dim)
	case len(q) != dim:
		return nil, fmt.Errorf("query of %d floats, want %d", len(q), dim)
	case math.IsNaN(maxDistance) || maxDistance < 0:
		return nil, fmt.Errorf("maximum distance %v: want a number at least 0", maxDistance)
	}
	n := len(data) / dim
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if len(data) < minParallelRow {
		workers = 1
	}
	workers = max(1, min(workers, n))
	limit := SquaredBound(maxDistance)
	found := make([][]item, workers)
	faults := make([]error, workers)
	parallel.Ranges(n, workers, func(w, lo, hi int) {
		// data is usually a file mapping: see SearchBatch.
		faults[w] = fault.Guard(func() {
			block := max(1, blockBytes/(4*dim))
			dist := make([]float32, block)
			for b := lo; b < hi; b += block {
				e := min(hi, b+block)
				out := dist[:e-b]
				kernel.L2SquaredBlock(q, data[b*dim:e*dim], out)
				for i, d := range out {
					if float64(d) <= limit && !Excluded(opt.Exclude, b+i) {
						found[w] = append(found[w], item{d: d, row: int64(b + i)})
					}
				}
			}
		})
	})
	if err := errors.Join(faults...); err != nil {
		return nil, err
	}
	var all []item
	for _, f := range found {
		all = append(all, f...)
	}
	sortItems(all)
	res := make([]Neighbor, len(all))
	for i, it := range all {
		res[i] = Neighbor{Row: int(it.row), Distance: float32(math.Sqrt(float64(it.d)))}
	}
	return InRange(res, maxDistance), nil
}
