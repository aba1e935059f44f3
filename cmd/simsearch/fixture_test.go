package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"simsearch/embed"
	"simsearch/index"
	"simsearch/pil"
	"simsearch/query"
	"simsearch/shard"
)

// realFixture returns an index of n vectors and a .npy file of q query vectors, all made from
// MobileNet v2 embeddings of crops of the bundled photos: random windows (35-100% of each side),
// mirrored half of the time, brightened or darkened by up to 30%. The queries are crops that are
// not in the index. One inference per vector is minutes for 20,000 on a free core and far more
// on a shared machine, so only `real` of the index's vectors are embedded crops; the other
// n-real are mixes t·a + (1-t)·b of two different embedded crops a, b of the same photo (what a
// crop between those two would roughly give). The embeddings are kept in bin/fixtures and reused
// while the recipe (fixtureVersion) and the count are unchanged; the index is written each time.
func realFixture(t *testing.T, n, real, q int) (indexPath, queriesPath string) {
	t.Helper()
	real = min(real, n)
	ids, vecs, dim := embeddedCrops(t, real+q)
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

// embeddedCrops returns the ids and embeddings of the first count crops (see realFixture),
// from bin/fixtures or, the first time, made with the model and kept there.
func embeddedCrops(t *testing.T, count int) ([]string, []float32, int) {
	t.Helper()
	const fixtureVersion = 1
	dir, err := filepath.Abs(filepath.Join(testdata, "..", "bin", "fixtures", fmt.Sprintf("crops-v%d-%d", fixtureVersion, count)))
	if err != nil {
		t.Fatal(err)
	}
	idsPath, featPath := filepath.Join(dir, "0000"+shard.IDsSuffix), filepath.Join(dir, "0000"+shard.FeaturesSuffix)
	if ids, _, err := shard.ReadIDs(idsPath); err == nil {
		if vecs, dim, err := shard.ReadVectors(featPath); err == nil && len(ids) == count {
			return ids, vecs, dim
		}
	}

	m, _, err := query.OpenModel(query.ModelRequest{Path: model, CacheDir: embed.DefaultCacheDir()}, nil, "the fixture", 1280)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var sources []*pil.RGB
	var names []string
	files, _ := filepath.Glob(filepath.Join(images, "*"))
	slices.Sort(files)
	for _, f := range files {
		img, err := pil.Open(f)
		if err != nil || strings.Contains(f, "broken") {
			continue // the bundled broken files
		}
		sources = append(sources, img)
		names = append(names, strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)))
	}
	if len(sources) < 10 {
		t.Fatalf("only %d readable photos in %s", len(sources), images)
	}
	t.Logf("embedding %d crops of %d photos (once; kept in %s)", count, len(sources), dir)
	rng := rand.New(rand.NewPCG(14, uint64(fixtureVersion)))
	const batch = 16
	ids := make([]string, 0, count)
	vecs := make([]float32, 0, count*m.Dim())
	input := make([]float32, 0, batch*m.InputLen())
	start := time.Now()
	for i := range count {
		s := i % len(sources)
		ids = append(ids, fmt.Sprintf("%s/crop%05d", names[s], i))
		input = input[:len(input)+m.InputLen()]
		m.Prepare(variant(sources[s], rng), input[len(input)-m.InputLen():])
		if len(input) == cap(input) || i == count-1 {
			v, err := m.Run(input)
			if err != nil {
				t.Fatal(err)
			}
			vecs = append(vecs, v...)
			input = input[:0]
		}
		if (i+1)%500 == 0 {
			t.Logf("  %d/%d embeddings, %.0f s", i+1, count, time.Since(start).Seconds())
		}
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := shard.Write(dir, 0, ids, vecs, m.Dim()); err != nil {
		t.Fatal(err)
	}
	return ids, vecs, m.Dim()
}

// variant is a random crop of img, maybe mirrored, with its brightness scaled.
func variant(img *pil.RGB, rng *rand.Rand) *pil.RGB {
	w := max(8, int(float64(img.W)*(0.35+0.65*rng.Float64())))
	h := max(8, int(float64(img.H)*(0.35+0.65*rng.Float64())))
	w, h = min(w, img.W), min(h, img.H)
	x0, y0 := rng.IntN(img.W-w+1), rng.IntN(img.H-h+1)
	mirror := rng.IntN(2) == 0
	gain := 0.7 + 0.6*rng.Float64()
	out := &pil.RGB{W: w, H: h, Pix: make([]byte, 3*w*h)}
	for y := range h {
		for x := range w {
			sx := x0 + x
			if mirror {
				sx = x0 + w - 1 - x
			}
			for c := range 3 {
				v := float64(img.Pix[3*((y0+y)*img.W+sx)+c]) * gain
				out.Pix[3*(y*w+x)+c] = byte(min(v, 255))
			}
		}
	}
	return out
}
