package prune_test

import (
	"fmt"
	"math"
	"testing"

	"simsearch/internal/fixture"
	"simsearch/kernel"
	"simsearch/kernel/kerneltest"
	"simsearch/knn"
	"simsearch/prune"
)

// TestRealEmbeddings checks the pruned search against the full scan on real embeddings: crops,
// flips and brightness edits of the bundled photos embedded with the bundled model (1280 dims),
// with the default rank, on every kernel. The collection also holds near-ties: exact copies of
// some rows (ties broken by row) and copies moved by one float32 step in a few components
// (distances equal up to rounding, where the bound's rounding margin decides).
func TestRealEmbeddings(t *testing.T) {
	if testing.Short() {
		t.Skip("embeds crops with the real model the first time (kept in bin/fixtures)")
	}
	const rows, queries = 560, 40
	_, vecs, dim := fixture.Crops(t, "..", rows+queries)
	data, qs := vecs[:rows*dim:rows*dim], vecs[rows*dim:]
	for r := 0; r < 60; r++ {
		src := data[(r*37%rows)*dim : (r*37%rows+1)*dim]
		cp := append([]float32(nil), src...)
		if r%2 == 1 {
			for c := r % 7; c < dim; c += 97 {
				cp[c] = math.Nextafter32(cp[c], float32(math.Inf(1)))
			}
		}
		data = append(data, cp...)
	}
	// Queries: the held-out crops, stored rows (distance 0 to themselves and their copies) and
	// stored rows moved by one step.
	for r := 0; r < 60; r += 6 {
		q := append([]float32(nil), data[(r*37%rows)*dim:(r*37%rows+1)*dim]...)
		if r%12 == 6 {
			q[5] = math.Nextafter32(q[5], 0)
		}
		qs = append(qs, q...)
	}
	sec, err := prune.Build(data, dim, prune.DefaultRank)
	if err != nil {
		t.Fatal(err)
	}
	if sec.Basis.Rank != prune.DefaultRank || dim != 1280 {
		t.Fatalf("rank %d, dim %d", sec.Basis.Rank, dim)
	}
	nq := len(qs) / dim
	kerneltest.Each(t, func(t *testing.T) {
		name := kernel.Name()
		visited := 0
		for _, k := range []int{1, 10, 50} {
			for _, scan := range []prune.Scan{prune.Pruned, prune.Auto} {
				for j := range nq {
					q := qs[j*dim : (j+1)*dim]
					want, err := knn.Search(data, dim, q, k, knn.Options{})
					if err != nil {
						t.Fatal(err)
					}
					got, st, err := prune.Search(data, dim, sec, q, prune.Request{K: k, MaxDistance: prune.NoLimit, Scan: scan, Workers: 1 + j%2})
					if err != nil {
						t.Fatal(err)
					}
					what := fmt.Sprintf("%s: query %d, k %d, %v", name, j, k, scan)
					if len(got) != len(want) {
						t.Fatalf("%s: %d results, the full scan %d", what, len(got), len(want))
					}
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("%s: position %d: %+v, the full scan %+v", what, i, got[i], want[i])
						}
					}
					if scan == prune.Pruned && k == 10 {
						visited += st.Visited
					}
				}
			}
		}
		// The point of the section: real embeddings prune (here, a few photos' crops).
		if n := len(data) / dim; visited > nq*n/4 {
			t.Errorf("%s: %d rows visited per top-10 query of %d", name, visited/nq, n)
		}
	})
}
