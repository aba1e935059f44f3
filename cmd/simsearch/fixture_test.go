package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"simsearch/embed"
	"simsearch/index"
	"simsearch/internal/fixture"
	"simsearch/query"
	"simsearch/shard"
)

// realFixture returns an index of n vectors and a .npy file of q query vectors, all made from
// MobileNet v2 embeddings of crops of the bundled photos (fixture.Crops). The queries are crops
// that are not in the index. One inference per vector is minutes for 20,000 on a free core and
// far more on a shared machine, so only `real` of the index's vectors are embedded crops; the other
// n-real are mixes t·a + (1-t)·b of two different embedded crops a, b of the same photo (what a
// crop between those two would roughly give). The embeddings are kept in bin/fixtures (see
// fixture.Crops); the index is written each time.
func realFixture(t *testing.T, n, real, q int) (indexPath, queriesPath string) {
	t.Helper()
	real = min(real, n)
	ids, vecs, dim := fixture.Crops(t, filepath.Join(testdata, ".."), real+q)
	out := t.TempDir()
	queriesDir := filepath.Join(out, "queries")
	if err := os.Mkdir(queriesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := shard.Write(queriesDir, 0, ids[real:], vecs[real*dim:], dim); err != nil {
		t.Fatal(err)
	}
	ids, vecs = ids[:real:real], vecs[:real*dim:real*dim]

	// Rows of the same photo, for the mixes.
	byPhoto := map[string][]int{}
	for r, id := range ids {
		photo, _, _ := strings.Cut(id, "/")
		byPhoto[photo] = append(byPhoto[photo], r)
	}
	rng := rand.New(rand.NewPCG(14, 2))
	for i := real; i < n; i++ {
		a := rng.IntN(real)
		photo, _, _ := strings.Cut(ids[a], "/")
		same := byPhoto[photo]
		if len(same) < 2 {
			i-- // a photo with one crop cannot be mixed: draw again
			continue
		}
		b := same[rng.IntN(len(same))]
		for b == a {
			b = same[rng.IntN(len(same))]
		}
		tt := float32(rng.Float64())
		ids = append(ids, fmt.Sprintf("%s/mix%05d", photo, i))
		for c := range dim {
			vecs = append(vecs, tt*vecs[a*dim+c]+(1-tt)*vecs[b*dim+c])
		}
	}
	sha, err := embed.FileSHA256(model)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := query.Record(embed.Default(model), sha)
	if err != nil {
		t.Fatal(err)
	}
	indexPath = filepath.Join(out, "crops.simidx")
	w, err := index.Create(indexPath, dim, false)
	if err != nil {
		t.Fatal(err)
	}
	w.SetMeta(index.Meta{Tool: "simsearch test fixture", Model: rec})
	if err := w.Append(ids, vecs); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return indexPath, filepath.Join(queriesDir, "0000"+shard.FeaturesSuffix)
}
