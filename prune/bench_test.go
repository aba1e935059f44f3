package prune

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"simsearch/shard"
)

// benchRows is the collection size of the benchmarks: SIMSEARCH_BENCH_ROWS, default 20,000
// (make bench measures 100,000 through the command; this is the in-package view).
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("SIMSEARCH_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 20_000
}

const benchDim = 1280

// benchQueries makes 16 queries near rows of data: a row moved by noise of the given scale.
func benchQueries(data []float32, rng *rand.Rand, noise float64) []float32 {
	n := len(data) / benchDim
	var qs []float32
	for j := range 16 {
		r := (j*7919 + 13) % n
		for c := range benchDim {
			qs = append(qs, data[r*benchDim+c]+float32(rng.NormFloat64()*noise))
		}
	}
	return qs
}

// isotropic is the make bench data: non-negative independent components (no low-rank
// structure, no near neighbours).
func isotropic(n int) []float32 {
	rng := rand.New(rand.NewPCG(2026, 11)) // the bench's generator and seed: the same rows
	flat := make([]float32, n*benchDim)
	for i := range flat {
		flat[i] = float32(max(0, rng.NormFloat64()))
	}
	return flat
}

// benchSets makes each benchmark collection the first time it is asked for (at 100,000 rows each
// is 512 MB).
var benchSets = map[string]func() *dataset{
	// bench: the make bench data.
	"bench": sync.OnceValue(func() *dataset {
		data := isotropic(benchRows())
		return &dataset{name: "bench", dim: benchDim, data: data, queries: benchQueries(data, rand.New(rand.NewPCG(1, 1)), 0.05)}
	}),
	// embedding-like: most variance in a few directions with a decaying spectrum, clustered.
	"embedding-like": sync.OnceValue(func() *dataset {
		n := benchRows()
		rng := rand.New(rand.NewPCG(2026, 12))
		const rank, clusters = 64, 500
		dirs := make([]float32, rank*benchDim)
		for i := range dirs {
			dirs[i] = float32(rng.NormFloat64() / 36)
		}
		centres := make([][]float64, clusters)
		for c := range centres {
			centres[c] = make([]float64, rank)
			for i := range rank {
				centres[c][i] = rng.NormFloat64() * 8 / float64(1+i/4)
			}
		}
		emb := make([]float32, n*benchDim)
		coef := make([]float64, rank)
		for r := range n {
			cc := centres[rng.IntN(clusters)]
			for i := range rank {
				coef[i] = cc[i] + rng.NormFloat64()*2/float64(1+i/4)
			}
			row := emb[r*benchDim : (r+1)*benchDim]
			for j := range row {
				row[j] = float32(rng.NormFloat64() * 0.05)
			}
			for i := range rank {
				c := float32(coef[i])
				for j, d := range dirs[i*benchDim : (i+1)*benchDim] {
					row[j] += c * d
				}
			}
		}
		return &dataset{name: "embedding-like", dim: benchDim, data: emb, queries: benchQueries(emb, rng, 0.05)}
	}),
	// mixed: real embeddings (bench/realish's output, when SIMSEARCH_BENCH_REALISH names it)
	// before the bench rows, as make bench mixes them, with the real-ish queries; nil without.
	"mixed": sync.OnceValue(func() *dataset {
		dir := os.Getenv("SIMSEARCH_BENCH_REALISH")
		if dir == "" {
			return nil
		}
		real, _, err := shard.ReadVectors(filepath.Join(dir, "shards", "0000"+shard.FeaturesSuffix))
		if err != nil {
			panic(err)
		}
		qs, _, err := shard.ReadVectors(filepath.Join(dir, "queries.npy"))
		if err != nil {
			panic(err)
		}
		return &dataset{name: "mixed", dim: benchDim, data: append(real, isotropic(benchRows())...), queries: qs}
	}),
	// all-equal: one row, repeated (every bound and distance ties).
	"all-equal": sync.OnceValue(func() *dataset {
		n := benchRows()
		rng := rand.New(rand.NewPCG(2026, 13))
		row := make([]float32, benchDim)
		for i := range row {
			row[i] = float32(rng.NormFloat64())
		}
		data := make([]float32, 0, n*benchDim)
		for range n {
			data = append(data, row...)
		}
		return &dataset{name: "all-equal", dim: benchDim, data: data, queries: benchQueries(data, rng, 0.05)}
	}),
	// one-cluster: every row in one tight isotropic cluster, the queries inside it.
	"one-cluster": sync.OnceValue(func() *dataset {
		n := benchRows()
		rng := rand.New(rand.NewPCG(2026, 14))
		centre := make([]float32, benchDim)
		for i := range centre {
			centre[i] = float32(rng.NormFloat64())
		}
		data := make([]float32, n*benchDim)
		for i := range data {
			data[i] = centre[i%benchDim] + float32(rng.NormFloat64()*1e-3)
		}
		return &dataset{name: "one-cluster", dim: benchDim, data: data, queries: benchQueries(data, rng, 1e-3)}
	}),
}

var benchSections sync.Map

func benchSection(b *testing.B, ds *dataset) *Section {
	if s, ok := benchSections.Load(ds.name); ok {
		return s.(*Section)
	}
	s, err := Build(ds.data, ds.dim, DefaultRank)
	if err != nil {
		b.Fatal(err)
	}
	benchSections.Store(ds.name, s)
	return s
}

// paired answers the set's queries one at a time, in turn, with each of the scans, the order of
// the scans rotating from query to query so that a slow spell of a shared machine hits them
// alike. It reports per scan the median time per query and, against the first scan, the median
// of the per-query ratios (scan's time / the first's), and the median rows visited.
func paired(b *testing.B, name string, scans []Scan) {
	ds := benchSets[name]()
	if ds == nil {
		b.Skip("no real-ish embeddings: set SIMSEARCH_BENCH_REALISH to bench/realish's output")
	}
	sec := benchSection(b, ds)
	nq := len(ds.queries) / ds.dim
	times := make([][]time.Duration, len(scans))
	ratios := make([][]float64, len(scans))
	visited := make([][]float64, len(scans))
	for i := 0; b.Loop(); i++ {
		q := ds.queries[(i%nq)*ds.dim : (i%nq+1)*ds.dim]
		t := make([]time.Duration, len(scans))
		for o := range scans {
			s := (o + i) % len(scans)
			start := time.Now()
			_, st, err := Search(ds.data, ds.dim, sec, q, Request{K: 10, MaxDistance: NoLimit, Scan: scans[s]})
			t[s] = time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			visited[s] = append(visited[s], float64(st.Visited))
		}
		for s := range scans {
			times[s] = append(times[s], t[s])
			ratios[s] = append(ratios[s], float64(t[s])/float64(t[0]))
		}
	}
	for s, scan := range scans {
		b.ReportMetric(float64(median(times[s]).Nanoseconds()), scan.String()+"-ns/query")
		if s > 0 {
			b.ReportMetric(median(ratios[s]), scan.String()+"/"+scans[0].String())
		}
		if scan != Full {
			b.ReportMetric(median(visited[s]), scan.String()+"-visited")
		}
	}
}

func median[T int64 | float64 | time.Duration](v []T) T {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkSearch compares, on the same data in the same run and query by query, the full scan
// with the pruned and automatic paths: exact top-10, one query at a time. ns/op is the three
// together; the metrics are per path (median per query) and the ratios to the full scan.
func BenchmarkSearch(b *testing.B) {
	for _, name := range []string{"bench", "embedding-like", "mixed"} {
		b.Run(name, func(b *testing.B) { paired(b, name, []Scan{Full, Pruned, Auto}) })
	}
}

// BenchmarkFallback measures Auto against the full scan where pruning cannot help (the bench's
// isotropic rows, all-equal rows, one tight cluster), query by query in turn: Auto must cost at
// most 10% more than the full scan there (the auto/full metric at most 1.10).
func BenchmarkFallback(b *testing.B) {
	for _, name := range []string{"bench", "all-equal", "one-cluster"} {
		b.Run(name, func(b *testing.B) { paired(b, name, []Scan{Full, Auto}) })
	}
}

// BenchmarkBuild measures the fit and the projection of every row (convert's extra work).
func BenchmarkBuild(b *testing.B) {
	ds := benchSets["embedding-like"]()
	for b.Loop() {
		if _, err := Build(ds.data, ds.dim, DefaultRank); err != nil {
			b.Fatal(err)
		}
	}
}
