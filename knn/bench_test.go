package knn

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"simsearch/internal/memread"
	"simsearch/kernel"
)

// The seed's collection: 100,000 vectors of 1,280 floats (512 MB).
const benchRows, benchDim = 100_000, 1280

var benchData []float32

func collection() []float32 {
	if benchData == nil {
		benchData = make([]float32, benchRows*benchDim)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range benchData {
			benchData[i] = rng.Float32()
		}
	}
	return benchData
}

// readTime is the median time of a plain parallel read of data with the loads of kernel k,
// measured now.
func readTime(b *testing.B, data []float32, k string) time.Duration {
	var ts []time.Duration
	for range 9 {
		start := time.Now()
		if _, err := memread.Read(data, runtime.GOMAXPROCS(0), k); err != nil {
			b.Fatal(err)
		}
		ts = append(ts, time.Since(start))
	}
	slices.Sort(ts)
	return ts[len(ts)/2]
}

// BenchmarkScan is the full exact top-10 scan of 100k × 1280 per kernel, beside a plain memory
// read of the same bytes with the same loads. Each kernel's "read-ratio" is the read time
// measured in the same run divided by the scan time: 1.0 means the scan runs at the speed of
// reading memory.
func BenchmarkScan(b *testing.B) {
	data := collection()
	q := slices.Clone(data[:benchDim])
	defer kernel.Use(kernel.Name())
	for _, name := range kernel.Available() {
		b.Run("memread-"+name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(data)))
			for b.Loop() {
				if _, err := memread.Read(data, runtime.GOMAXPROCS(0), name); err != nil {
					b.Fatal(err)
				}
			}
		})
		kernel.Use(name)
		b.Run(name, func(b *testing.B) {
			read := readTime(b, data, name)
			b.SetBytes(int64(4 * len(data)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := Search(data, benchDim, q, 10, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			perOp := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(read)/float64(perOp), "read-ratio")
		})
	}
}

// BenchmarkScanBatch answers 8 queries in one pass; bytes are the collection's, once per batch.
func BenchmarkScanBatch(b *testing.B) {
	data := collection()
	queries := slices.Clone(data[:8*benchDim])
	b.SetBytes(int64(4 * len(data)))
	for b.Loop() {
		if _, err := SearchBatch(data, benchDim, queries, 10, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
