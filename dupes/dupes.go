// Package dupes finds near-duplicates in a collection of vectors: every pair of rows within a
// Euclidean distance D of each other, exactly, grouped by connectivity.
//
// It is an all-pairs computation done in blocks, never as a matrix, and pruned by three bounds
// that are exact (each is at most the true distance):
//
//   - the norms: |‖x‖ − ‖y‖| ≤ ‖x − y‖. Rows are put in norm order and cut into blocks; once a
//     later block's smallest norm exceeds a query block's largest by more than D, no later
//     block can hold a pair, and the worker moves on to the next query block;
//   - a prefix: the distance over some of the dimensions is at most the whole distance. The
//     128 dimensions of largest variance are copied out (n × 128 floats) and compared all-pairs,
//     block against block with kernel.L2SquaredMulti (the upper triangle only): a tenth of
//     the work of whole rows at 1,280 dimensions;
//   - the rest: the other dimensions add at least (‖x_rest‖ − ‖y_rest‖)².
//
// Only the pairs that pass all three have their whole distance computed, on the original rows
// with the same kernel a query uses, and that distance decides.
package dupes

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"simsearch/internal/fault"
	"simsearch/internal/parallel"
	"simsearch/kernel"
)

// DefaultMaxDistance is the distance under which two photos are reported as near-duplicates by
// default. It was chosen by measurement on the bundled photos with the bundled MobileNet v2
// feature model (README, "Finding duplicates"): copies that were re-encoded, recoloured, converted
// to a palette, rotated by EXIF or cropped are 0.45 to 2.80 from their original; the closest
// distinct photos are 4.95 apart. 4 lies between, with room on both sides. A copy downscaled to
// 480 pixels is 4.86 away: as far as distinct photos, so no threshold separates it.
const DefaultMaxDistance = 4.0

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
	Candidates   int64 // pairs whose whole distance was computed (the rest were beyond D on the prefix)
	PairsWithinD int   // pairs within the distance
}

// ErrTooManyPairs is returned when more than Options.MaxPairs pairs are within the distance.
var ErrTooManyPairs = errors.New("too many pairs within the distance")

const (
	// blockRows is the rows per block: two blocks of 256 prefixes of 128 floats (256 KiB) stay
	// in a core's L2 while the kernel goes through them.
	blockRows = 256
	// prefixDims is how many dimensions the first, blocked pass compares: enough that distinct
	// rows are already far apart on them, few enough to cut the work of that pass by dim/128.
	prefixDims = 128
)

// beforePairs, when set (by tests alone), is called between Find's passes over every row and its
// pair search: a test truncates the mapping there, to reach the pair workers' fault handling.
var beforePairs func()

// Find returns the groups of near-duplicates among the rows of data (row-major, dim floats
// each), largest group first, then by first row. data is usually an index file's mapping: a file
// truncated under it fails Find with fault.ErrFault instead of killing the process with SIGBUS
// (each goroutine that reads it runs under fault.Guard).
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

	norm2, variance, err := moments(data, dim, opt.Workers)
	if err != nil {
		return nil, st, err
	}
	// The prefix: the p dimensions of largest variance, where distances between rows are largest,
	// so that the distance over them alone already exceeds D for most pairs.
	p := min(dim, prefixDims)
	dims := make([]int, dim)
	for i := range dims {
		dims[i] = i
	}
	slices.SortStableFunc(dims, func(a, b int) int { return cmp.Compare(variance[b], variance[a]) })
	dims = dims[:p]

	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(norm2[a], norm2[b]) })
	// Rows in norm order: their norms, the prefix's values (contiguous, so that a block of rows is
	// a slice the kernel reads directly), and the norms of the rest of each row.
	norms := make([]float64, n)
	prefix := make([]float32, n*p)
	rest := make([]float64, n)
	if err := fault.Guard(func() {
		for i, r := range order {
			row := data[int(r)*dim : (int(r)+1)*dim]
			var pre float64
			for j, c := range dims {
				v := row[c]
				prefix[i*p+j] = v
				pre += float64(v) * float64(v)
			}
			norms[i] = math.Sqrt(norm2[r])
			rest[i] = math.Sqrt(max(0, norm2[r]-pre))
		}
	}); err != nil {
		return nil, st, err
	}
	if beforePairs != nil {
		beforePairs()
	}

	nb := (n + blockRows - 1) / blockRows
	st.BlockPairs = int64(nb) * int64(nb+1) / 2
	d := float64(opt.MaxDistance)
	// The bounds are exact in real arithmetic; the kernel's float32 sums are not, so each bound
	// is widened by far more than their rounding, so that no pair the kernel would report within
	// D is ever skipped. The final test is on the kernel's distance over whole rows.
	normSlack := d*(1+1e-3) + 1e-6
	bound2 := d*d*(1+1e-3) + 1e-6

	var (
		next       atomic.Int64
		computed   atomic.Int64
		candidates atomic.Int64
		total      atomic.Int64
		mu         sync.Mutex
		pairs      []Pair
		tooMany    atomic.Bool
		faults     = make([]error, min(opt.Workers, nb))
		failed     atomic.Bool // a worker faulted: the others stop too
	)
	// pairWorker compares query blocks, taken in turn, with the blocks after them.
	pairWorker := func() {
		out := make([]float32, blockRows*blockRows)
		var local []Pair
		var checked int64
		flush := func() {
			if total.Add(int64(len(local))) > int64(opt.MaxPairs) {
				tooMany.Store(true)
			}
			mu.Lock()
			pairs = append(pairs, local...)
			mu.Unlock()
			local = local[:0]
		}
		for !tooMany.Load() && !failed.Load() {
			bi := int(next.Add(1) - 1)
			if bi >= nb {
				break
			}
			qlo, qhi := bi*blockRows, min(n, (bi+1)*blockRows)
			nq := qhi - qlo
			queries := prefix[qlo*p : qhi*p]
			for bj := bi; bj < nb; bj++ {
				rlo, rhi := bj*blockRows, min(n, (bj+1)*blockRows)
				if !opt.NoNormBound && norms[rlo]-norms[qhi-1] > normSlack {
					break // in norm order: every later block is further still
				}
				computed.Add(1)
				nr := rhi - rlo
				o := out[:nq*nr]
				kernel.L2SquaredMulti(queries, prefix[rlo*p:rhi*p], p, o)
				for q := 0; q < nq; q++ {
					start := 0
					if bj == bi {
						start = q + 1 // the upper triangle: each pair once, never a row with itself
					}
					i := qlo + q
					for r, pd2 := range o[q*nr+start : (q+1)*nr] {
						if float64(pd2) > bound2 {
							continue
						}
						j := rlo + start + r
						// The rest of the dimensions add at least the square of their norms' difference.
						if dr := rest[i] - rest[j]; float64(pd2)+dr*dr > bound2 {
							continue
						}
						checked++
						a, b := int(order[i]), int(order[j])
						d2 := kernel.L2Squared(data[a*dim:(a+1)*dim], data[b*dim:(b+1)*dim])
						dist := float32(math.Sqrt(float64(d2)))
						if dist > opt.MaxDistance {
							continue
						}
						local = append(local, Pair{A: min(a, b), B: max(a, b), Distance: dist})
					}
				}
				if len(local) >= 4096 {
					flush()
				}
			}
		}
		flush()
		candidates.Add(checked)
	}
	parallel.Ranges(len(faults), len(faults), func(w, _, _ int) {
		if faults[w] = fault.Guard(pairWorker); faults[w] != nil {
			failed.Store(true)
		}
	})
	st.Computed = computed.Load()
	st.Candidates = candidates.Load()
	st.PairsWithinD = len(pairs)
	if err := errors.Join(faults...); err != nil {
		return nil, st, err
	}
	if tooMany.Load() {
		return nil, st, fmt.Errorf("%w: more than %d pairs are within %g; use a smaller distance", ErrTooManyPairs, opt.MaxPairs, opt.MaxDistance)
	}
	return groups(pairs), st, nil
}

// moments returns each row's squared norm and each dimension's variance, in float64, computed
// by workers over parts of the rows, or the fault one of them met reading data.
func moments(data []float32, dim, workers int) (norm2, variance []float64, err error) {
	n := len(data) / dim
	norm2 = make([]float64, n)
	workers = max(1, min(workers, n/1024))
	sums := make([][2][]float64, workers)
	faults := make([]error, workers)
	parallel.Ranges(n, workers, func(w, lo, hi int) {
		s1, s2 := make([]float64, dim), make([]float64, dim)
		sums[w] = [2][]float64{s1, s2}
		faults[w] = fault.Guard(func() {
			for r := lo; r < hi; r++ {
				var sq float64
				for j, v := range data[r*dim : (r+1)*dim] {
					x := float64(v)
					s1[j] += x
					s2[j] += x * x
					sq += x * x
				}
				norm2[r] = sq
			}
		})
	})
	if err := errors.Join(faults...); err != nil {
		return nil, nil, err
	}
	variance = make([]float64, dim)
	for j := range variance {
		var s1, s2 float64
		for _, s := range sums {
			s1 += s[0][j]
			s2 += s[1][j]
		}
		mean := s1 / float64(n)
		variance[j] = s2/float64(n) - mean*mean
	}
	return norm2, variance, nil
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
