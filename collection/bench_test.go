package collection

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"simsearch/prune"
)

// BenchmarkUpdatedVsCompacted scans a collection whose log replaces 1% of the base's rows and adds
// 1% more, and the same rows compacted, taking turns; it reports the median of the paired ratios
// (goal: at most 1.10).
func BenchmarkUpdatedVsCompacted(b *testing.B) {
	const rows, dim = 50_000, 1280
	r := rand.New(rand.NewPCG(3, 4))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = r.Float32()
		}
		return v
	}
	dir := b.TempDir()
	build := func(name string, churn bool) *View {
		path := filepath.Join(dir, name)
		w, err := OpenWriter(path, &NewBase{Dim: dim})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		r = rand.New(rand.NewPCG(3, 4)) // both collections get the same rows
		var batch Batch
		for i := range rows {
			batch.Add = append(batch.Add, Row{ID: fmt.Sprintf("img%07d", i), Vector: vec()})
		}
		if err := w.Apply(batch); err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		if err := w.Compact(); err != nil {
			b.Fatal(err)
		}
		batch = Batch{}
		for i := range rows / 100 {
			id := fmt.Sprintf("img%07d", i*97)
			batch.Delete = append(batch.Delete, id)
			batch.Add = append(batch.Add, Row{ID: id, Vector: vec()}, Row{ID: fmt.Sprintf("new%07d", i), Vector: vec()})
		}
		if err := w.Apply(batch); err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		if !churn {
			if err := w.Compact(); err != nil {
				b.Fatal(err)
			}
		}
		v, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		v.Prefault(2)
		return v
	}
	updated, compacted := build("u.simidx", true), build("c.simidx", false)
	defer updated.Release()
	defer compacted.Release()
	if updated.LogBytes() == 0 || compacted.LogBytes() != 0 {
		b.Fatal("the collections are not updated and compacted")
	}
	q := vec()
	var ratios []float64
	b.ResetTimer()
	top10 := prune.Request{K: 10, MaxDistance: prune.NoLimit}
	for i := range b.N {
		a, c := updated, compacted
		if i%2 == 1 {
			a, c = c, a
		}
		t0 := time.Now()
		ra, _, err := a.Search(q, top10)
		t1 := time.Now()
		rc, _, err2 := c.Search(q, top10)
		t2 := time.Now()
		if err != nil || err2 != nil || !slices.Equal(ra[0], rc[0]) {
			b.Fatalf("answers differ: %v %v (%v, %v)", ra, rc, err, err2)
		}
		du, dc := t1.Sub(t0), t2.Sub(t1)
		if i%2 == 1 {
			du, dc = dc, du
		}
		ratios = append(ratios, float64(du)/float64(dc))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "updated/compacted")
}
