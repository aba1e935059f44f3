package prune

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

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

var benchSets = sync.OnceValue(func() map[string]*dataset {
	n := benchRows()
	rng := rand.New(rand.NewPCG(2026, 11))
	// bench: the make bench data, non-negative independent components (no low-rank structure).
	flat := make([]float32, n*benchDim)
	for i := range flat {
		flat[i] = float32(max(0, rng.NormFloat64()))
	}
	// embedding-like: most variance in a few directions with a decaying spectrum, clustered.
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
	sets := map[string]*dataset{}
	for name, data := range map[string][]float32{"bench": flat, "embedding-like": emb} {
		var qs []float32
		for j := range 16 {
			r := (j*7919 + 13) % n
			for c := range benchDim {
				qs = append(qs, data[r*benchDim+c]+float32(rng.NormFloat64()*0.05))
			}
		}
		sets[name] = &dataset{name: name, dim: benchDim, data: data, queries: qs}
	}
	// mixed: real embeddings (bench/realish's output, when SIMSEARCH_BENCH_REALISH names it) before
	// the bench rows, as make bench mixes them, with the real-ish queries.
	if dir := os.Getenv("SIMSEARCH_BENCH_REALISH"); dir != "" {
		real, _, err := shard.ReadVectors(filepath.Join(dir, "shards", "0000"+shard.FeaturesSuffix))
		if err != nil {
			panic(err)
		}
		qs, _, err := shard.ReadVectors(filepath.Join(dir, "queries.npy"))
		if err != nil {
			panic(err)
		}
		sets["mixed"] = &dataset{name: "mixed", dim: benchDim, data: append(real, flat...), queries: qs}
	}
	return sets
})

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

// BenchmarkSearch compares, on the same data in the same run, the full scan with the pruned and
// automatic paths: exact top-10, one query at a time.
func BenchmarkSearch(b *testing.B) {
	for _, name := range []string{"bench", "embedding-like", "mixed"} {
		ds, ok := benchSets()[name]
		if !ok {
			continue
		}
		sec := benchSection(b, ds)
		nq := len(ds.queries) / ds.dim
		for _, scan := range []Scan{Full, Pruned, Auto} {
			b.Run(name+"/"+scan.String(), func(b *testing.B) {
				visited := 0
				for i := 0; b.Loop(); i++ {
					q := ds.queries[(i%nq)*ds.dim : (i%nq+1)*ds.dim]
					_, st, err := Search(ds.data, ds.dim, sec, q, Request{K: 10, MaxDistance: NoLimit, Scan: scan})
					if err != nil {
						b.Fatal(err)
					}
					visited += st.Visited
				}
				b.ReportMetric(float64(visited)/float64(b.N), "visited/op")
			})
		}
	}
}

// BenchmarkBuild measures the fit and the projection of every row (convert's extra work).
func BenchmarkBuild(b *testing.B) {
	ds := benchSets()["embedding-like"]
	for b.Loop() {
		if _, err := Build(ds.data, ds.dim, DefaultRank); err != nil {
			b.Fatal(err)
		}
	}
}
