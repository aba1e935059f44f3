// Package knn finds the exact k nearest rows of a row-major float32 matrix to query vectors by
// Euclidean distance: the rows are split across workers, each scans its part block by block with
// the kernel package and keeps its k best in a bounded max-heap, and the heaps are merged.
//
// Results are exact and deterministic: rows are ordered by the kernel's squared distance, and rows
// at equal squared distance by row number, so a result is the first k of a stable sort of all rows
// by squared distance. Reported distances are its square roots (non-decreasing; two rows may print
// the same float32 distance while their squared distances differ).
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

// Neighbor is one result row.
type Neighbor struct {
	Row      int
	Distance float32 // Euclidean: the square root of the kernel's squared distance
}

// Options tune a search; the zero value is the default.
type Options struct {
	// Workers is the number of goroutines scanning; 0 means GOMAXPROCS. Small matrices are
	// scanned by one.
	Workers int
	// Exclude, when not nil, is a bitset over rows: a row r whose bit (word r/64, bit r%64) is set
	// is never returned (a deleted row of a living collection). It is consulted only for rows
	// that would enter the result, never in the distance loop. Words past its end exclude nothing.
	Exclude []uint64
}

// Excluded reports whether row r's bit is set in the bitset ex.
func Excluded(ex []uint64, r int) bool {
	w := r >> 6
	return w < len(ex) && ex[w]>>(uint(r)&63)&1 != 0
}

const (
	blockBytes     = 256 << 10 // rows per kernel call: large enough to amortise the call, small enough for L2
	minParallelRow = 1 << 21   // floats below which one worker scans everything
)

// Search returns the k rows of data (rows of dim floats) nearest to q, nearest first. If k
// exceeds the number of rows that are not excluded, every such row is returned.
func Search(data []float32, dim int, q []float32, k int, opt Options) ([]Neighbor, error) {
	res, err := SearchBatch(data, dim, q, k, opt)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// SearchBatch answers several queries (stored row-major in queries, dim floats each) in one pass
// over data; res[j] holds the answer for query j.
func SearchBatch(data []float32, dim int, queries []float32, k int, opt Options) ([][]Neighbor, error) {
	switch {
	case k <= 0:
		return nil, fmt.Errorf("k must be at least 1, not %d", k)
	case dim <= 0 || len(data)%dim != 0:
		return nil, fmt.Errorf("data of %d floats is not made of rows of %d", len(data), dim)
	case len(queries) == 0 || len(queries)%dim != 0:
		return nil, fmt.Errorf("queries of %d floats are not made of vectors of %d", len(queries), dim)
	}
	for i, v := range queries {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("query %d, component %d is %v: queries must be finite", i/dim, i%dim, v)
		}
	}
	n, nq := len(data)/dim, len(queries)/dim
	k = min(k, n)
	if k == 0 {
		return make([][]Neighbor, nq), nil
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if len(data) < minParallelRow {
		workers = 1
	}
	workers = min(workers, n)

	heaps := make([][]heap, workers) // heaps[w][j]: worker w's best for query j
	faults := make([]error, workers)
	parallel.Ranges(n, workers, func(w, lo, hi int) {
		// data is usually a file mapping: a file truncated under it must fail the search, not
		// kill the process with SIGBUS.
		faults[w] = fault.Guard(func() { heaps[w] = scan(data, dim, queries, lo, hi, k, opt.Exclude) })
	})
	if err := errors.Join(faults...); err != nil {
		return nil, err
	}

	res := make([][]Neighbor, nq)
	for j := range res {
		var all heap
		for w := range heaps {
			all = append(all, heaps[w][j]...)
		}
		sortItems(all)
		out := make([]Neighbor, min(k, len(all)))
		for i := range out {
			out[i] = Neighbor{Row: int(all[i].row), Distance: float32(math.Sqrt(float64(all[i].d)))}
		}
		res[j] = out
	}
	return res, nil
}

// scan keeps, for each query, the k nearest of rows [lo, hi).
func scan(data []float32, dim int, queries []float32, lo, hi, k int, exclude []uint64) []heap {
	nq := len(queries) / dim
	block := max(1, blockBytes/(4*dim))
	dist := make([]float32, nq*block)
	heaps := make([]heap, nq)
	for j := range heaps {
		heaps[j] = make(heap, 0, k)
	}
	for b := lo; b < hi; b += block {
		e := min(hi, b+block)
		m := e - b
		out := dist[:nq*m]
		if nq == 1 {
			kernel.L2SquaredBlock(queries, data[b*dim:e*dim], out)
		} else {
			kernel.L2SquaredMulti(queries, data[b*dim:e*dim], dim, out)
		}
		for j := range heaps {
			h := &heaps[j]
			for i, d := range out[j*m : (j+1)*m] {
				// Rows arrive in increasing order, so a row at the same distance as the worst
				// kept one is worse than it.
				if len(*h) == k && d >= (*h)[0].d {
					continue
				}
				if exclude != nil && Excluded(exclude, b+i) {
					continue
				}
				h.push(item{d: d, row: int64(b + i)}, k)
			}
		}
	}
	return heaps
}
