package prune

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"simsearch/internal/fault"
	"simsearch/internal/parallel"
	"simsearch/kernel"
	"simsearch/knn"
)

// Scan chooses between the pruned and the full scan.
type Scan int

const (
	// Auto prunes when the index has a PCA section and gives up for a full scan as soon as
	// pruning visibly cannot help (too many candidates), so that a query costs at most a few
	// percent more than the full scan on data without low-rank structure.
	Auto Scan = iota
	// Full always scans every row.
	Full
	// Pruned always prunes, however many rows it has to visit (tests and benchmarks).
	Pruned
)

// ParseScan reads auto, full or pruned.
func ParseScan(s string) (Scan, error) {
	switch s {
	case "auto", "":
		return Auto, nil
	case "full":
		return Full, nil
	case "pruned":
		return Pruned, nil
	}
	return Auto, fmt.Errorf("scan %q: want auto, full or pruned", s)
}

func (s Scan) String() string { return [...]string{"auto", "full", "pruned"}[s] }

// Request describes a search.
type Request struct {
	K           int     // the number of neighbours; 0 with MaxDistance: every row in range
	MaxDistance float64 // the largest distance returned; +Inf (or NaN-free infinity) for none
	Exclude     []uint64
	Scan        Scan
	Workers     int // goroutines; 0 means GOMAXPROCS
}

// Stats describes how one query was answered.
type Stats struct {
	Path    string        // "pruned" or "full"
	Visited int           // rows whose exact distance was computed (pruned path)
	Time    time.Duration // this query's own search time
}

// Auto's limit. A query visits rows in increasing bound; when the bounds are useless (all rows
// alike, no structure) it gives up for the full scan as soon as more than n/giveUp rows are
// candidates (their bound is below the k-th distance of the k rows of smallest bound) or have
// been visited. A row visited costs about 1.5 rows scanned (it is read at random), and the
// signatures are 2.5% of the rows' bytes at rank 31, so giving up costs at most about
// 2.5% + 1.5/giveUp of a full scan: 10% with 20. Measured on real embeddings mixed with the
// bench's rows (103,840): the median query visits 0.9% of the rows, the worst of 32 3%.
const giveUp = 20

// NoLimit as Request.MaxDistance asks for no distance limit.
var NoLimit = math.Inf(1)

// Search answers one query q over data (rows of dim floats). sec may be nil (no PCA section):
// the full scan answers. The result equals knn.Search's (and knn.Within's for a range), row for
// row and bit for bit.
func Search(data []float32, dim int, sec *Section, q []float32, req Request) ([]knn.Neighbor, Stats, error) {
	res, st, err := SearchBatch(data, dim, sec, q, req)
	if err != nil {
		return nil, Stats{}, err
	}
	return res[0], st[0], nil
}

// SearchBatch answers several queries (row-major, dim floats each). Pruned queries run in
// parallel, one per core; the queries that need a full scan share one pass over the rows.
func SearchBatch(data []float32, dim int, sec *Section, queries []float32, req Request) ([][]knn.Neighbor, []Stats, error) {
	switch {
	case dim <= 0 || len(data)%dim != 0:
		return nil, nil, fmt.Errorf("data of %d floats is not made of rows of %d", len(data), dim)
	case len(queries) == 0 || len(queries)%dim != 0:
		return nil, nil, fmt.Errorf("queries of %d floats are not made of vectors of %d", len(queries), dim)
	case req.K < 0 || (req.K == 0 && math.IsInf(req.MaxDistance, 1)):
		return nil, nil, fmt.Errorf("k must be at least 1 (or a maximum distance given), not %d", req.K)
	case math.IsNaN(req.MaxDistance) || req.MaxDistance < 0:
		return nil, nil, fmt.Errorf("maximum distance %v: want a number at least 0", req.MaxDistance)
	}
	for i, v := range queries {
		if !finite(v) {
			return nil, nil, fmt.Errorf("query %d, component %d is %v: queries must be finite", i/dim, i%dim, v)
		}
	}
	n, nq := len(data)/dim, len(queries)/dim
	if sec != nil && (sec.Basis.Dim != dim || sec.Count() != n) {
		return nil, nil, fmt.Errorf("PCA section of %d rows of %d floats does not describe %d rows of %d", sec.Count(), sec.Basis.Dim, n, dim)
	}
	workers := req.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	res := make([][]knn.Neighbor, nq)
	stats := make([]Stats, nq)
	var full []int // queries left to the full scan
	usePruned := sec != nil && req.Scan != Full && n > 0
	if req.Scan == Auto && req.K*giveUp > n {
		usePruned = false // k alone is more rows than pruning may visit
	}
	if usePruned {
		var mu sync.Mutex
		var faults []error
		next := 0
		var wg sync.WaitGroup
		inner := 1 // a lone query spreads its signature scan over the cores
		if nq == 1 {
			inner = workers
		}
		for range min(workers, nq) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := scratchPool.Get().(*scratch)
				defer scratchPool.Put(sc)
				for {
					mu.Lock()
					j := next
					next++
					mu.Unlock()
					if j >= nq {
						return
					}
					start := time.Now()
					var r []knn.Neighbor
					var visited int
					var ok bool
					// data and the section are usually a file mapping: a file truncated under
					// it must fail the search, not kill the process with SIGBUS.
					if err := fault.Guard(func() { r, visited, ok = sec.pruned(data, queries[j*dim:(j+1)*dim], req, inner, sc) }); err != nil {
						mu.Lock()
						faults = append(faults, err)
						mu.Unlock()
						return
					}
					stats[j] = Stats{Path: "pruned", Visited: visited, Time: time.Since(start)}
					if ok {
						res[j] = r
						continue
					}
					mu.Lock()
					full = append(full, j)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(faults...); err != nil {
			return nil, nil, err
		}
		slices.Sort(full)
	} else {
		full = make([]int, nq)
		for j := range full {
			full[j] = j
		}
	}
	if len(full) == 0 {
		return res, stats, nil
	}
	start := time.Now()
	opt := knn.Options{Workers: req.Workers, Exclude: req.Exclude}
	if req.K == 0 {
		for _, j := range full {
			r, err := knn.Within(data, dim, queries[j*dim:(j+1)*dim], req.MaxDistance, opt)
			if err != nil {
				return nil, nil, err
			}
			res[j] = r
		}
	} else {
		qs := make([]float32, 0, len(full)*dim)
		for _, j := range full {
			qs = append(qs, queries[j*dim:(j+1)*dim]...)
		}
		rs, err := knn.SearchBatch(data, dim, qs, req.K, opt)
		if err != nil {
			return nil, nil, err
		}
		for i, j := range full {
			res[j] = knn.InRange(rs[i], req.MaxDistance)
		}
	}
	shared := time.Since(start) // one pass answered them all: each waited for all of it
	for _, j := range full {
		stats[j].Path = "full"
		stats[j].Time += shared
	}
	return res, stats, nil
}

// scratchPool keeps working memory between calls: a one-query call would otherwise allocate
// a bound per row each time.
var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// scratch is one goroutine's working memory, reused across its queries.
type scratch struct {
	sig  []float32
	v, p []float64
	lb   []float32
	keys []uint64
}

// key orders candidates by (bound, row) as one integer: non-negative float32 bounds order as
// their bit patterns do.
func key(lb float32, row int) uint64 { return uint64(math.Float32bits(lb))<<32 | uint64(row) }

func keyRow(k uint64) int { return int(uint32(k)) }

func keyBound(k uint64) float32 { return math.Float32frombits(uint32(k >> 32)) }

// pruned answers one query by visiting rows in increasing lower bound. With req.Scan == Auto it
// gives up (ok false) as soon as pruning is visibly not paying; workers > 1 spreads the
// signature scan.
func (s *Section) pruned(data []float32, q []float32, req Request, workers int, sc *scratch) (res []knn.Neighbor, visited int, ok bool) {
	b := s.Basis
	dim, w, n := b.Dim, b.Width(), s.Count()
	if len(sc.sig) != w || len(sc.v) != dim { // pooled scratch may come from another index
		sc.sig, sc.v, sc.p = make([]float32, w), make([]float64, dim), make([]float64, b.Rank)
	}
	if cap(sc.lb) < n {
		sc.lb = make([]float32, n)
	}
	lb := sc.lb[:n]
	qn := b.project(q, sc.sig, sc.v, sc.p)
	e := s.margin(qn)
	signatures(sc.sig, s.Rows, lb, workers)

	limit := req.Scan == Auto
	radius := math.Inf(1)
	if !math.IsInf(req.MaxDistance, 1) {
		radius = knn.SquaredBound(req.MaxDistance)
	}
	top := knn.NewTop(req.K)
	tau := func() float64 { // the squared distance a row must not exceed to matter
		if req.K > 0 && top.Full() {
			return min(radius, float64(top.Worst()))
		}
		return radius
	}
	cut := bound(tau(), e, dim, w)
	// visit computes exact distances of the candidates (sorted keys) until a bound exceeds cut.
	visit := func(keys []uint64) (stopped, gaveUp bool) {
		for _, k := range keys {
			if keyBound(k) > cut {
				return true, false
			}
			r := keyRow(k)
			d := kernel.L2Squared(q, data[r*dim:(r+1)*dim])
			visited++
			if float64(d) <= radius {
				old := tau()
				top.Push(d, r)
				if t := tau(); t != old {
					cut = bound(t, e, dim, w)
				}
			}
			if limit && visited*giveUp > n {
				return false, true
			}
		}
		return false, false
	}

	keys := sc.keys[:0]
	last := uint64(0) // keys at or below it are visited already
	first := true
	if req.K > 0 {
		// The k smallest bounds first: their exact distances give a k-th distance to prune with.
		keys = smallest(lb, req.K, req.Exclude, keys)
		stopped, gaveUp := visit(keys)
		if gaveUp {
			return nil, visited, false
		}
		if stopped {
			return s.finish(top, req), visited, true
		}
		if len(keys) > 0 {
			last, first = keys[len(keys)-1], false
		}
	}
	keys = keys[:0]
	for r, l := range lb {
		if l <= cut {
			if k := key(l, r); (first || k > last) && !knn.Excluded(req.Exclude, r) {
				keys = append(keys, k)
			}
		}
	}
	sc.keys = keys
	if limit && len(keys)*giveUp > n {
		return nil, visited, false
	}
	slices.Sort(keys)
	if _, gaveUp := visit(keys); gaveUp {
		return nil, visited, false
	}
	return s.finish(top, req), visited, true
}

func (s *Section) finish(top *knn.Top, req Request) []knn.Neighbor {
	return knn.InRange(top.Sorted(), req.MaxDistance)
}

// smallest appends to dst the keys of the k rows with the smallest bounds (ties by row), not
// excluded, sorted.
func smallest(lb []float32, k int, exclude []uint64, dst []uint64) []uint64 {
	h := dst[:0] // max-heap of keys
	for r, l := range lb {
		if len(h) == k && key(l, r) >= h[0] {
			continue
		}
		if knn.Excluded(exclude, r) {
			continue
		}
		kk := key(l, r)
		if len(h) < k {
			h = append(h, kk)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if h[p] >= h[i] {
					break
				}
				h[p], h[i] = h[i], h[p]
				i = p
			}
			continue
		}
		h[0] = kk
		for i := 0; ; {
			l, r, m := 2*i+1, 2*i+2, i
			if l < len(h) && h[l] > h[m] {
				m = l
			}
			if r < len(h) && h[r] > h[m] {
				m = r
			}
			if m == i {
				break
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	slices.Sort(h)
	return h
}

// signatures computes the bound of every row: the kernel's squared distance between the query's
// signature and the row's, split across workers for a large section.
func signatures(sig, rows, lb []float32, workers int) {
	n := len(lb)
	w := len(sig)
	if workers <= 1 || n*w < 1<<20 {
		kernel.L2SquaredBlock(sig, rows, lb)
		return
	}
	panics := make([]any, workers)
	parallel.Ranges(n, workers, func(k, lo, hi int) {
		// A fault here (a file truncated under its mapping) belongs to the caller, whose
		// fault.Guard turns it into an error: catch it and raise it again there.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { panics[k] = recover() }()
		kernel.L2SquaredBlock(sig, rows[lo*w:hi*w], lb[lo:hi])
	})
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
}

// The rounding analysis. Let u = 2⁻²⁴ (float32's unit roundoff). For a row x and the query q:
//
//   - The kernel sums dim non-negative terms, each a rounded difference squared (with or without
//     FMA) in any order, so its result K ≥ |x−q|²·(1 − γ(dim)) − dim·2⁻¹⁴⁹ (the last term covers
//     subnormal underflow), with γ(n) = (n+4)u / (1 − (n+4)u).
//   - A signature is computed in float64 from the float32 basis and rounded to float32. Against
//     the exact orthogonal projection onto the span of the stored directions, its error is at
//     most u·(3√rank + 2)·|x − mean| from the basis being orthonormal only to rounding (η
//     measures it exactly), the float32 rounding of the results, and the float64 arithmetic
//     (|v|² and pᵀG⁻¹p to dim·2⁻⁵³ relative, which the residual's square root turns into
//     √(4·dim·2⁻⁵³)·|v|). margin sums these, times 2 or more, for the row (at most MaxNorm) and
//     the query: E = κ·(MaxNorm + |q − mean|).
//   - The exact signatures' distance is at most |x − q|; the stored ones' is at most E more; the
//     kernel computes its square L within a factor 1 + γ(width) (plus width·2⁻¹⁴⁹).
//
// So L > (1+γ(width))·(√((τ + dim·2⁻¹⁴⁹)/(1−γ(dim))) + E)² + width·2⁻¹⁴⁹ implies K > τ: such a row
// cannot enter a result whose k-th squared distance is τ (ties included). bound returns the
// largest float32 at or below that threshold, so that comparing the float32 bounds with it loses
// nothing.
func (s *Section) margin(qn float64) float64 {
	b := s.Basis
	const u = 0x1p-24
	kappa := 4*b.eta + 16*u*(math.Sqrt(float64(b.Rank))+1) + 4*math.Sqrt(float64(b.Dim)*0x1p-53)
	return kappa * (s.MaxNorm + qn)
}

func gamma(n int) float64 {
	const u = 0x1p-24
	x := float64(n+4) * u
	return x / (1 - x)
}

func bound(tau, e float64, dim, width int) float32 {
	if math.IsInf(tau, 1) {
		return float32(math.Inf(1))
	}
	const tiny = 0x1p-149
	t := math.Sqrt((tau+float64(dim)*tiny)/(1-gamma(dim))) + e
	thr := ((1+gamma(width))*t*t + float64(width)*tiny) * (1 + 0x1p-40) // the float64 arithmetic here
	f := float32(thr)
	if float64(f) > thr {
		f = math.Nextafter32(f, 0)
	}
	return f
}
