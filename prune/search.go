package prune

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"simsearch/internal/fault"
	"simsearch/internal/rusage"
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
	K int // the number of neighbours; 0 with MaxDistance: every row in range
	// KEach, when not nil, holds each query's own K (one per query), in place of K: a server's
	// batch gathers requests that ask for different numbers of neighbours.
	KEach       []int
	MaxDistance float64 // the largest distance returned; +Inf (or NaN-free infinity) for none
	Exclude     []uint64
	Scan        Scan
	Workers     int // goroutines; 0 means GOMAXPROCS
}

// k returns query j's number of neighbours.
func (r *Request) k(j int) int {
	if r.KEach != nil {
		return r.KEach[j]
	}
	return r.K
}

// Check refuses a request for n queries that no search can answer: a maximum distance that is
// NaN or negative, a KEach of another length, a negative k, or a query bounded by neither a k nor
// a distance (it would ask for every row within +Inf). Every searcher checks with it, local or
// not, so that they refuse the same requests with the same words.
func (r *Request) Check(n int) error {
	if math.IsNaN(r.MaxDistance) || r.MaxDistance < 0 {
		return fmt.Errorf("maximum distance %v: want a number at least 0", r.MaxDistance)
	}
	if r.KEach != nil && len(r.KEach) != n {
		return fmt.Errorf("%d numbers of neighbours for %d queries", len(r.KEach), n)
	}
	for j := range n {
		if k := r.k(j); k < 0 || (k == 0 && math.IsInf(r.MaxDistance, 1)) {
			return fmt.Errorf("k must be at least 1 (or a maximum distance given), not %d", k)
		}
	}
	return nil
}

// Stats describes how one query was answered.
type Stats struct {
	Path    string // "pruned" or "full"
	Visited int    // rows whose exact distance was computed (pruned path, or its attempt)
	// Time is this query's own search time: its pruned search, or its attempt at one, plus the
	// full scan when that answered this query alone.
	Time time.Duration
	// SharedBy is the number of queries of a batch answered by one full pass over the rows,
	// this one among them (the full scan reads each row once for all of them), and SharedPass
	// that pass's duration; no part of it is any one query's. 0 when the query had no shared pass.
	SharedBy   int
	SharedPass time.Duration
	// Faults are the page faults of this query's own search, when FaultsKnown: the process's
	// while it ran for a lone query (whose passes run on every core), the thread's that ran it
	// for a query of a batch (each runs on one goroutine, held on its thread; Linux only). A
	// shared pass's are SharedFaults, the process's while it ran.
	Faults, SharedFaults rusage.Faults
	FaultsKnown          bool
}

// Auto's limit. A query visits rows in increasing bound; when the bounds are useless (all rows
// alike, no structure) it gives up for the full scan as soon as more than n/giveUp rows are
// candidates (their bound is below the cut the first visits allow) or have been visited, or the
// prefix bound lets through more than n/giveUp rows that are over half of those looked at. A
// row visited costs about 1.5 rows scanned (it is read at random), and the signatures are 2.5%
// of the rows' bytes at rank 31 (their prefixes 0.6%), so giving up costs at most about
// 2.5% + 1.5/giveUp of a full scan: 10% with 20; where no structure at all shows, the prefix
// pass and a few visits. BenchmarkFallback measures it: 1-4% at 100,000 rows.
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
// parallel, one per core; the top-k queries that need a full scan share one pass over the rows
// (see Stats.SharedBy).
func SearchBatch(data []float32, dim int, sec *Section, queries []float32, req Request) ([][]knn.Neighbor, []Stats, error) {
	switch {
	case dim <= 0 || len(data)%dim != 0:
		return nil, nil, fmt.Errorf("data of %d floats is not made of rows of %d", len(data), dim)
	case len(queries) == 0 || len(queries)%dim != 0:
		return nil, nil, fmt.Errorf("queries of %d floats are not made of vectors of %d", len(queries), dim)
	}
	if err := req.Check(len(queries) / dim); err != nil {
		return nil, nil, err
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
	if nq == 1 {
		before := rusage.Process()
		defer func() { stats[0].Faults, stats[0].FaultsKnown = rusage.Process().Sub(before), true }()
	}
	var full []int // queries left to the full scan
	// prunes says whether query j tries the pruned path: not when k alone is more rows than Auto
	// lets pruning visit.
	prunes := func(j int) bool {
		return sec != nil && req.Scan != Full && n > 0 && !(req.Scan == Auto && req.k(j)*giveUp > n)
	}
	var tries []int // the queries that do, in order
	for j := range nq {
		if prunes(j) {
			tries = append(tries, j)
		} else {
			full = append(full, j)
		}
	}
	if len(tries) > 0 {
		var mu sync.Mutex
		var faults []error
		next := 0
		inner := 1 // a lone query spreads its passes over the cores
		if len(tries) == 1 {
			inner = workers
		}
		// each answers queries until none is left: one goroutine per core, one query each at a time.
		each := func() {
			sc := scratchPool.Get().(*scratch)
			defer scratchPool.Put(sc)
			if nq > 1 { // a query's faults are its thread's
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(tries) {
					return
				}
				j := tries[i]
				rj := req
				rj.K, rj.KEach = req.k(j), nil
				start := time.Now()
				before, counted := rusage.Thread()
				var r []knn.Neighbor
				var visited int
				var ok bool
				// data and the section are usually a file mapping: a file truncated under it
				// must fail the search, not kill the process with SIGBUS.
				if err := fault.Guard(func() { r, visited, ok = sec.pruned(data, queries[j*dim:(j+1)*dim], rj, inner, sc) }); err != nil {
					mu.Lock()
					faults = append(faults, err)
					mu.Unlock()
					return
				}
				stats[j] = Stats{Path: "pruned", Visited: visited, Time: time.Since(start)}
				if after, _ := rusage.Thread(); counted && nq > 1 {
					stats[j].Faults, stats[j].FaultsKnown = after.Sub(before), true
				}
				if ok {
					res[j] = r
					continue
				}
				mu.Lock()
				full = append(full, j)
				mu.Unlock()
			}
		}
		if len(tries) == 1 {
			each()
		} else {
			var wg sync.WaitGroup
			for range min(workers, len(tries)) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					each()
				}()
			}
			wg.Wait()
		}
		if err := errors.Join(faults...); err != nil {
			return nil, nil, err
		}
		slices.Sort(full)
	}
	if len(full) == 0 {
		return res, stats, nil
	}
	opt := knn.Options{Workers: req.Workers, Exclude: req.Exclude}
	var top []int // the top-k queries among them, which share one pass
	kmax := 0
	for _, j := range full {
		// A query that tried the pruned path first has its attempt's faults if it counted them.
		stats[j].FaultsKnown = stats[j].Path != "pruned" || stats[j].FaultsKnown
		stats[j].Path = "full"
		if k := req.k(j); k > 0 {
			top, kmax = append(top, j), max(kmax, k)
			continue
		}
		start, before := time.Now(), rusage.Process() // a range has no shared pass: each query has its own
		r, err := knn.Within(data, dim, queries[j*dim:(j+1)*dim], req.MaxDistance, opt)
		if err != nil {
			return nil, nil, err
		}
		res[j] = r
		stats[j].Time += time.Since(start)
		stats[j].Faults = stats[j].Faults.Add(rusage.Process().Sub(before))
	}
	if len(top) == 0 {
		return res, stats, nil
	}
	start, before := time.Now(), rusage.Process()
	qs := make([]float32, 0, len(top)*dim)
	for _, j := range top {
		qs = append(qs, queries[j*dim:(j+1)*dim]...)
	}
	rs, err := knn.SearchBatch(data, dim, qs, kmax, opt)
	if err != nil {
		return nil, nil, err
	}
	for i, j := range top {
		// The kmax nearest, ties by row, begin with the k nearest: the same rows and order.
		r := rs[i][:min(req.k(j), len(rs[i]))]
		res[j] = knn.InRange(r, req.MaxDistance)
	}
	pass, faults := time.Since(start), rusage.Process().Sub(before)
	for _, j := range top {
		switch {
		case len(top) > 1: // one pass answered them all: no part of it is one query's
			stats[j].SharedPass, stats[j].SharedBy, stats[j].SharedFaults = pass, len(top), faults
		default:
			stats[j].Time += pass
			stats[j].Faults = stats[j].Faults.Add(faults)
		}
	}
	return res, stats, nil
}

// scratchPool keeps working memory between calls: a one-query call would otherwise allocate
// a bound per row each time.
var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// scratch is one query's working memory, reused across queries.
type scratch struct {
	sig, sa, sb []float32 // the query's signature, and its prefix and rest
	v, p        []float64
	lb          []float32   // every row's prefix bound, padding rows included
	mins        []float32   // per chunk of lb (chunkGroups groups), its smallest prefix bound
	rest        [][]float32 // per part: the rest's bounds of a run of groups
	heaps       [][]uint64  // per part: the keys of its smallest prefix bounds
	cands       [][]uint64  // per part: its candidates
	keys        []uint64
}

// key orders candidates by (bound, row) as one integer: non-negative float32 bounds order as
// their bit patterns do.
func key(lb float32, row int) uint64 { return uint64(math.Float32bits(lb))<<32 | uint64(row) }

func keyRow(k uint64) int { return int(uint32(k)) }

func keyBound(k uint64) float32 { return math.Float32frombits(uint32(k >> 32)) }

// The passes over the bounds go by chunks of chunkGroups groups (1,024 rows: 4 KB of bounds,
// still in L1 when the heap reads them just after the kernel wrote them), and are split into
// parts of whole chunks, one per worker, when there are at least parallelGroups groups per
// worker (4,096 rows: below that, starting a goroutine costs more than it saves). Variables so
// that tests can split small data.
var (
	chunkGroups    = 64
	parallelGroups = 256
)

// parallelVisits is the fewest candidates worth visiting on several cores.
const parallelVisits = 32

// firstPick is how many rows of smallest prefix bound per neighbour asked for the search
// completes the bounds of, to visit the k of smallest complete bound first.
const firstPick = 2

// pruned answers one query by visiting rows in increasing lower bound. With req.Scan == Auto it
// gives up (ok false) as soon as pruning is visibly not paying. workers > 1 spreads each pass
// over that many goroutines (the caller's among them):
//
//  1. every row's prefix bound (the distance of the signatures' prefixes, a lower bound too:
//     it leaves out non-negative terms), each part keeping the firstPick·k smallest of its own;
//  2. of the firstPick·k smallest of all, the complete bounds (prefix plus rest), and the k
//     smallest of those visited: their exact distances give a k-th distance, τ;
//  3. the candidates: the groups with a row whose prefix bound is at most the cut τ allows get
//     their complete bounds, and each part collects its rows within the cut;
//  4. the candidates in increasing complete bound, visited by all workers, which share the
//     result and its cut (it only falls) until the next bound exceeds the cut.
//
// A bound at most the cut is necessary for a row to matter whether it is the prefix's or the
// complete one (see bound), so no pass skips a row that could enter the result.
func (s *Section) pruned(data []float32, q []float32, req Request, workers int, sc *scratch) (res []knn.Neighbor, visited int, ok bool) {
	b := s.Basis
	dim, w, n, a := b.Dim, b.Width(), s.count, s.a
	if len(sc.sig) != w || len(sc.v) != dim || len(sc.sa) != a { // pooled scratch may come from another index
		sc.sig, sc.v, sc.p = make([]float32, w), make([]float64, dim), make([]float64, b.Rank)
		sc.sa, sc.sb = make([]float32, a), make([]float32, w-a)
	}
	ng := groups(n)
	if cap(sc.lb) < ng*group {
		sc.lb = make([]float32, ng*group)
	}
	lb := sc.lb[:ng*group]
	nc := (ng + chunkGroups - 1) / chunkGroups
	parts := max(1, min(workers, ng/parallelGroups, nc))
	if cap(sc.mins) < nc {
		sc.mins = make([]float32, nc)
	}
	mins := sc.mins[:nc]
	for len(sc.heaps) < parts {
		sc.heaps, sc.cands, sc.rest = append(sc.heaps, nil), append(sc.cands, nil), append(sc.rest, nil)
	}
	qn := b.project(q, sc.sig, sc.v, sc.p)
	s.split(sc.sig, sc.sa, sc.sb)
	e := s.margin(qn)
	radius := math.Inf(1)
	if !math.IsInf(req.MaxDistance, 1) {
		radius = knn.SquaredBound(req.MaxDistance)
	}
	limit := req.Scan == Auto
	vis := newVisitor(data, q, dim, w, n, req.K, radius, e, limit)

	// 1. The prefix bounds, and each part's smallest.
	pick := min(firstPick*req.K, n)
	spread(nc, parts, func(part, lo, hi int) {
		sc.heaps[part] = s.prefixBounds(sc.sa, lb, mins, lo, hi, pick, req.Exclude, sc.heaps[part][:0])
	})

	// 2. The k smallest complete bounds among the rows of smallest prefix bound, visited first.
	var first []int // the rows visited, sorted
	keys := sc.keys[:0]
	if req.K > 0 {
		for _, h := range sc.heaps[:parts] {
			keys = append(keys, h...)
		}
		slices.Sort(keys)
		keys = keys[:min(pick, len(keys))]
		rest := make([]float32, group)
		for i, k := range keys {
			r := keyRow(k)
			g := r / group
			s.restBounds(sc.sb, g, g+1, rest)
			keys[i] = key(keyBound(k)+rest[r%group], r)
		}
		slices.Sort(keys)
		keys = keys[:min(req.K, len(keys))]
		vis.run(keys)
		if vis.gaveUp.Load() {
			sc.keys = keys
			return nil, int(vis.visited.Load()), false
		}
		for _, k := range keys[:min(int(vis.next.Load()), len(keys))] { // those taken: visited, or above the cut
			first = append(first, keyRow(k))
		}
		slices.Sort(first)
	}

	// 3. The candidates. Auto gives up when there are more than n/giveUp of them, or when the
	// prefix bound lets more than n/giveUp rows through that are over half of those a part has
	// looked at (it sees no structure: the complete bounds would cost every group's rest).
	cut := vis.cutNow()
	tooMany := n / giveUp
	var bail atomic.Bool
	spread(nc, parts, func(part, lo, hi int) {
		c := sc.cands[part][:0]
		if cap(sc.rest[part]) < chunkGroups*group {
			sc.rest[part] = make([]float32, chunkGroups*group)
		}
		rest := sc.rest[part][:chunkGroups*group]
		passed, seen := 0, 0
		defer func() { sc.cands[part] = c }()
		for ci := lo; ci < hi; ci++ {
			g0, g1 := ci*chunkGroups, min(ng, (ci+1)*chunkGroups)
			if mins[ci] > cut { // most chunks of data with structure
				seen += (g1 - g0) * group
				continue
			}
			for g := g0; g < g1; {
				// A run of groups holding a row the prefix lets through: their rest at once.
				e := g
				for e < g1 && anyWithin(lb[e*group:(e+1)*group], cut) {
					e++
				}
				seen += (max(e, g+1) - g) * group
				if e == g {
					g++
					continue
				}
				s.restBounds(sc.sb, g, e, rest[:(e-g)*group])
				for r := g * group; r < min(n, e*group); r++ {
					l := lb[r]
					if l > cut {
						continue
					}
					passed++
					if full := l + rest[r-g*group]; full <= cut && !knn.Excluded(req.Exclude, r) {
						if _, visited := slices.BinarySearch(first, r); !visited {
							c = append(c, key(full, r))
						}
					}
				}
				if limit && (len(c) > tooMany || (passed > tooMany && 2*passed > seen)) {
					bail.Store(true)
					return
				}
				g = e
			}
		}
	})
	keys = keys[:0]
	for _, c := range sc.cands[:parts] {
		keys = append(keys, c...)
	}
	sc.keys = keys
	if limit && (bail.Load() || len(keys)*giveUp > n) {
		return nil, int(vis.visited.Load()), false
	}

	// 4. The visits.
	slices.Sort(keys)
	vis.next.Store(0)
	if parts > 1 && len(keys) >= parallelVisits {
		spread(parts, parts, func(int, int, int) { vis.run(keys) })
	} else {
		vis.run(keys)
	}
	if vis.gaveUp.Load() {
		return nil, int(vis.visited.Load()), false
	}
	return vis.finish(req), int(vis.visited.Load()), true
}

// anyWithin reports whether some bound of v is at most cut.
func anyWithin(v []float32, cut float32) bool {
	for _, l := range v {
		if l <= cut {
			return true
		}
	}
	return false
}

// prefixBounds stores the prefix bounds of the rows of chunks [lo, hi) (of chunkGroups groups
// each) in lb and each chunk's smallest in mins, and returns, in dst's memory, the keys of the k
// smallest of them (not excluded; none when k is 0), unsorted.
func (s *Section) prefixBounds(sa, lb, mins []float32, lo, hi, k int, exclude []uint64, dst []uint64) []uint64 {
	ng := groups(s.count)
	h := dst[:0] // max-heap of keys
	worst := float32(math.Inf(1))
	for c := lo; c < hi; c++ {
		g0, g1 := c*chunkGroups, min(ng, (c+1)*chunkGroups)
		out := lb[g0*group : g1*group]
		m := kernel.L2SquaredPacked(sa, s.prefix[g0*group*s.a:g1*group*s.a], out)
		mins[c] = m
		if k == 0 || m > worst {
			continue
		}
		for i, l := range out {
			if l > worst { // most rows, once the heap is full: one comparison
				continue
			}
			r := g0*group + i
			if r >= s.count || knn.Excluded(exclude, r) {
				continue
			}
			h = pushSmallest(h, key(l, r), k)
			if len(h) == k {
				worst = keyBound(h[0])
			}
		}
	}
	return h
}

// restBounds stores in out the rest's part of the bounds (the distance of the signatures'
// coordinates past the prefix) of the rows of groups [g0, g1); all zero when there is no rest.
func (s *Section) restBounds(sb []float32, g0, g1 int, out []float32) {
	if len(sb) == 0 {
		clear(out)
		return
	}
	wr := len(sb)
	kernel.L2SquaredPacked(sb, s.rest[g0*group*wr:g1*group*wr], out)
}

// pushSmallest adds x to the max-heap h of at most k keys, keeping the k smallest.
func pushSmallest(h []uint64, x uint64, k int) []uint64 {
	if len(h) < k {
		h = append(h, x)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if h[p] >= h[i] {
				break
			}
			h[p], h[i] = h[i], h[p]
			i = p
		}
		return h
	}
	if x >= h[0] {
		return h
	}
	h[0] = x
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
	return h
}

// visitor computes exact distances of candidates, on one goroutine or several at once, into one
// shared result. The goroutines take the candidates (sorted by bound) in turn from next and stop
// at the first whose bound exceeds the cut; the cut only falls as the result fills, so every
// candidate left unvisited has a bound above the final cut, and the result (which breaks ties by
// row, whatever the order rows arrive in) is the full scan's.
type visitor struct {
	data, q      []float32
	dim, w, n, k int
	radius, e    float64
	limit        bool

	mu  sync.Mutex
	top *knn.Top // guarded by mu
	// tau is the squared distance a row must not exceed to enter the result (float64 bits), cut
	// the largest bound a row needing a visit can have (float32 bits): both only fall.
	tau, cut atomic.Uint64
	next     atomic.Int64 // the next candidate to take
	visited  atomic.Int64
	gaveUp   atomic.Bool // Auto's limit was passed
}

func newVisitor(data, q []float32, dim, w, n, k int, radius, e float64, limit bool) *visitor {
	v := &visitor{data: data, q: q, dim: dim, w: w, n: n, k: k, radius: radius, e: e, limit: limit, top: knn.NewTop(k)}
	v.tau.Store(math.Float64bits(radius))
	v.cut.Store(uint64(math.Float32bits(bound(radius, e, dim, w))))
	return v
}

func (v *visitor) cutNow() float32 { return math.Float32frombits(uint32(v.cut.Load())) }

// run visits keys from next on until one's bound exceeds the cut, all are taken, or Auto's
// limit is passed.
func (v *visitor) run(keys []uint64) {
	for {
		i := v.next.Add(1) - 1
		if i >= int64(len(keys)) || v.gaveUp.Load() {
			return
		}
		k := keys[i]
		if keyBound(k) > v.cutNow() {
			return
		}
		r := keyRow(k)
		d := kernel.L2Squared(v.q, v.data[r*v.dim:(r+1)*v.dim])
		if n := v.visited.Add(1); v.limit && int(n)*giveUp > v.n {
			v.gaveUp.Store(true)
			return
		}
		if float64(d) > math.Float64frombits(v.tau.Load()) {
			continue
		}
		v.mu.Lock()
		v.top.Push(d, r)
		if v.k > 0 && v.top.Full() {
			if t := min(v.radius, float64(v.top.Worst())); t < math.Float64frombits(v.tau.Load()) {
				v.tau.Store(math.Float64bits(t))
				v.cut.Store(uint64(math.Float32bits(bound(t, v.e, v.dim, v.w))))
			}
		}
		v.mu.Unlock()
	}
}

func (v *visitor) finish(req Request) []knn.Neighbor {
	return knn.InRange(v.top.Sorted(), req.MaxDistance)
}

// spread runs f(part, lo, hi) for the parts of [0, n) split in `parts` nearly equal ranges, on
// goroutines of their own and the caller's, and returns when all have returned. A fault in one
// (a file truncated under its mapping) belongs to the caller, whose fault.Guard turns it into an
// error: it is caught and raised again here.
func spread(n, parts int, f func(part, lo, hi int)) {
	if parts <= 1 {
		f(0, 0, n)
		return
	}
	panics := make([]any, parts)
	var wg sync.WaitGroup
	for p := 1; p < parts; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			defer func() { panics[p] = recover() }()
			f(p, n*p/parts, n*(p+1)/parts)
		}()
	}
	func() {
		defer func() { panics[0] = recover() }()
		f(0, 0, n/parts)
	}()
	wg.Wait()
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
}

// The rounding analysis. Let u = 2⁻²⁴ (float32's unit roundoff). For a row x and the query q:
//
//   - The kernel (L2Squared, every implementation) sums dim non-negative terms, each a rounded
//     difference squared (with or without FMA) in any order, so its result
//     K ≥ |x−q|²·(1 − γ(dim)) − dim·2⁻¹⁴⁹ (the last term covers subnormal underflow), with
//     γ(n) = (n+4)u / (1 − (n+4)u).
//   - A signature is computed in float64 from the float32 basis and rounded to float32. Against
//     the exact orthogonal projection onto the span of the stored directions, its error is at
//     most u·(3√rank + 2)·|x − mean| from the basis being orthonormal only to rounding (η
//     measures it exactly), the float32 rounding of the results, and the float64 arithmetic
//     (|v|² and pᵀG⁻¹p to dim·2⁻⁵³ relative, which the residual's square root turns into
//     √(4·dim·2⁻⁵³)·|v|). margin sums these, times 2 or more, for the row (at most MaxNorm) and
//     the query: E = κ·(MaxNorm + |q − mean|).
//   - The exact signatures' distance is at most |x − q|; the stored ones' is at most E more; the
//     packed kernel (L2SquaredPacked: width terms of the same kind, in a fixed order) computes
//     its square L within a factor 1 + γ(width) (plus width·2⁻¹⁴⁹).
//
// So L > (1+γ(width))·(√((τ + dim·2⁻¹⁴⁹)/(1−γ(dim))) + E)² + width·2⁻¹⁴⁹ implies K > τ: such a row
// cannot enter a result whose k-th squared distance is τ (ties included). The same holds for the
// prefix bound, a sum of prefixWidth of the width terms: it is at most (1+γ(prefixWidth)) times
// their exact sum, itself at most the whole sum's; and for the complete bound computed as the
// prefix's plus the rest's (one more rounding of two sums of at most width−1 terms each, within
// the 1+γ(width) allowed for a sum of width terms in any order). bound returns the largest
// float32 at or below that threshold, so that comparing the float32 bounds with it loses nothing.
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
