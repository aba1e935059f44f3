// Package dupes finds near-duplicates in a collection of vectors: every pair of rows within a
// Euclidean distance D of each other, exactly, grouped by connectivity.
//
// It is an all-pairs computation done in blocks, never as a matrix: rows are ordered by their
// norm and cut into blocks of a few dozen; a worker takes one block as queries and computes its
// distances to itself and to each later block with kernel.L2SquaredMulti (the upper triangle
// only), keeping just the pairs within D. Because |‖x‖ − ‖y‖| ≤ ‖x − y‖, once a later block's
// smallest norm exceeds the query block's largest norm by more than D, no later block can hold a
// pair, and the worker moves on: on collections whose norms spread out, most block pairs are
// never computed; on ones whose norms do not, it costs one comparison per block pair.
package dupes

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"simsearch/kernel"
)

// DefaultMaxDistance is the distance under which two photos are reported as near-duplicates by
// default. It was chosen by measurement on the bundled photos with the bundled MobileNet v2
// feature model (README, "Finding duplicates"): copies that were re-encoded, recoloured, converted
// to a palette, rotated by EXIF or cropped are 0.45 to 2.80 from their original; the closest
// distinct photos are 4.95 apart. 4 lies between, with room on both sides. A copy downscaled to
// 480 pixels is 4.86 away: as far as distinct photos, so no threshold separates it.
const DefaultMaxDistance = 4

// DefaultMaxPairs bounds the pairs Find collects, so that a distance far too large for the
// collection fails with advice instead of exhausting memory.
const DefaultMaxPairs = 20_000_000

// Pair is two rows within the distance, A < B.
type Pair struct {
	A, B     int
	Distance float32 // Euclidean: the square root of the kernel's squared distance
}

// Group is a connected set of near-duplicates: Rows in increasing order, and every pair of them
// within the distance, ordered by (distance, A, B).
type Group struct {
	Rows  []int
	Pairs []Pair
}

// Options tune Find; the zero value means the defaults.
type Options struct {
	MaxDistance float32 // pairs at a distance ≤ MaxDistance are near-duplicates; must be ≥ 0
	Workers     int     // 0 means GOMAXPROCS
	MaxPairs    int     // 0 means DefaultMaxPairs
	NoNormBound bool    // compute every block pair (for measuring what the norm bound saves)
}

// Stats describe the work Find did.
type Stats struct {
	BlockPairs   int64 // block pairs in the upper triangle
	Computed     int64 // block pairs whose distances were computed (the rest were skipped by the norm bound)
	PairsWithinD int   // pairs within the distance
}

// ErrTooManyPairs is returned when more than Options.MaxPairs pairs are within the distance.
var ErrTooManyPairs = errors.New("too many pairs within the distance")

// blockRows is the rows per block: queries × rows of 64 × 64 × 1280 floats keep both blocks
// (640 KiB) in a core's L2 while the kernel tiles the rows further.
const blockRows = 64

// Find returns the groups of near-duplicates among the rows of data (row-major, dim floats
// each), largest group first, then by first row.
func Find(data []float32, dim int, opt Options) ([]Group, Stats, error) {
	var st Stats
	switch {
	case dim <= 0 || len(data)%dim != 0:
		return nil, st, fmt.Errorf("data of %d floats is not made of rows of %d", len(data), dim)
	case !(opt.MaxDistance >= 0) || math.IsInf(float64(opt.MaxDistance), 0):
		return nil, st, fmt.Errorf("the distance must be a finite number ≥ 0, not %v", opt.MaxDistance)
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.MaxPairs <= 0 {
		opt.MaxPairs = DefaultMaxPairs
	}
	n := len(data) / dim
	if n < 2 {
		return nil, st, nil
	}

	// Norms, with the SIMD kernel: the squared distance to the zero vector.
	norms := make([]float32, n)
	zero := make([]float32, dim)
	for lo := 0; lo < n; lo += 1024 {
		hi := min(n, lo+1024)
		kernel.L2SquaredBlock(zero, data[lo*dim:hi*dim], norms[lo:hi])
	}
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
		norms[i] = float32(math.Sqrt(float64(norms[i])))
	}
	sort.Slice(order, func(a, b int) bool { return norms[order[a]] < norms[order[b]] })
	sorted := make([]float32, n) // norms in sorted order
	for i, r := range order {
		sorted[i] = norms[r]
	}

	nb := (n + blockRows - 1) / blockRows
	st.BlockPairs = int64(nb) * int64(nb+1) / 2
	d := float64(opt.MaxDistance)
	// The norms carry float32 rounding (relative ~1e-4 at worst over thousands of terms); the
	// bound is widened by that much so that it never skips a pair the kernel would report.
	slack := d + 1e-3*float64(sorted[n-1]) + 1e-6
	limit2 := float32(d * d * (1 + 1e-5)) // a cheap prefilter on the squared distance; the exact test follows

	var (
		next     atomic.Int64
		computed atomic.Int64
		total    atomic.Int64
		mu       sync.Mutex
		pairs    []Pair
		tooMany  atomic.Bool
		wg       sync.WaitGroup
	)
	for range min(opt.Workers, nb) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qbuf := make([]float32, blockRows*dim)
			rbuf := make([]float32, blockRows*dim)
			out := make([]float32, blockRows*blockRows)
			var local []Pair
			flush := func() {
				if total.Add(int64(len(local))) > int64(opt.MaxPairs) {
					tooMany.Store(true)
				}
				mu.Lock()
				pairs = append(pairs, local...)
				mu.Unlock()
				local = local[:0]
			}
			for !tooMany.Load() {
				bi := int(next.Add(1) - 1)
				if bi >= nb {
					break
				}
				qlo, qhi := bi*blockRows, min(n, (bi+1)*blockRows)
				nq := qhi - qlo
				gather(qbuf, data, dim, order[qlo:qhi])
				maxNorm := float64(sorted[qhi-1])
				for bj := bi; bj < nb; bj++ {
					rlo, rhi := bj*blockRows, min(n, (bj+1)*blockRows)
					if !opt.NoNormBound && float64(sorted[rlo])-maxNorm > slack {
						break // sorted by norm: every later block is further still
					}
					computed.Add(1)
					nr := rhi - rlo
					rows := qbuf[:nr*dim]
					if bj != bi {
						gather(rbuf, data, dim, order[rlo:rhi])
						rows = rbuf[:nr*dim]
					}
					o := out[:nq*nr]
					kernel.L2SquaredMulti(qbuf[:nq*dim], rows, dim, o)
					for q := 0; q < nq; q++ {
						start := 0
						if bj == bi {
							start = q + 1 // the upper triangle: each pair once, never a row with itself
						}
						for r, d2 := range o[q*nr+start : (q+1)*nr] {
							if d2 > limit2 {
								continue
							}
							dist := float32(math.Sqrt(float64(d2)))
							if dist > opt.MaxDistance {
								continue
							}
							a, b := int(order[qlo+q]), int(order[rlo+start+r])
							if a > b {
								a, b = b, a
							}
							local = append(local, Pair{A: a, B: b, Distance: dist})
						}
					}
					if len(local) >= 4096 {
						flush()
					}
				}
			}
			flush()
		}()
	}
	wg.Wait()
	st.Computed = computed.Load()
	st.PairsWithinD = len(pairs)
	if tooMany.Load() {
		return nil, st, fmt.Errorf("%w: more than %d pairs are within %g; use a smaller distance", ErrTooManyPairs, opt.MaxPairs, opt.MaxDistance)
	}
	return groups(pairs), st, nil
}

// gather copies the rows named by rows into buf, contiguously.
func gather(buf, data []float32, dim int, rows []int32) {
	for i, r := range rows {
		copy(buf[i*dim:(i+1)*dim], data[int(r)*dim:(int(r)+1)*dim])
	}
}

// groups joins the pairs' rows into connected groups with a union-find.
func groups(pairs []Pair) []Group {
	if len(pairs) == 0 {
		return nil
	}
	parent := map[int]int{}
	find := func(x int) int {
		if _, ok := parent[x]; !ok {
			parent[x] = x
		}
		root := x
		for parent[root] != root {
			root = parent[root]
		}
		for x != root { // path compression keeps later finds short
			x, parent[x] = parent[x], root
		}
		return root
	}
	for _, p := range pairs {
		ra, rb := find(p.A), find(p.B)
		if ra != rb {
			parent[max(ra, rb)] = min(ra, rb)
		}
	}
	byRoot := map[int]*Group{}
	for _, p := range pairs {
		root := find(p.A)
		g := byRoot[root]
		if g == nil {
			g = &Group{}
			byRoot[root] = g
		}
		g.Pairs = append(g.Pairs, p)
	}
	for x := range parent {
		g := byRoot[find(x)]
		g.Rows = append(g.Rows, x)
	}
	out := make([]Group, 0, len(byRoot))
	for _, g := range byRoot {
		slices.Sort(g.Rows)
		slices.SortFunc(g.Pairs, comparePairs)
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b Group) int {
		if len(a.Rows) != len(b.Rows) {
			return len(b.Rows) - len(a.Rows)
		}
		return a.Rows[0] - b.Rows[0]
	})
	return out
}

func comparePairs(x, y Pair) int {
	switch {
	case x.Distance < y.Distance:
		return -1
	case x.Distance > y.Distance:
		return 1
	case x.A != y.A:
		return x.A - y.A
	}
	return x.B - y.B
}
