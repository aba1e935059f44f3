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

// realFixture returns an index of n vectors and a .npy file of q query vectors, all MobileNet v2
// embeddings of crops of the bundled photos: random windows (35-100% of each side), mirrored half
// of the time, brightened or darkened by up to 30%. The queries are crops that are not in the
// index. One inference per vector is minutes for 20,000 on a free core and far more on a shared
// machine, so only `real` of the index's vectors are embedded; the other n-real are mixes
// t·a + (1-t)·b of two real embeddings a, b of the same photo (what a crop between those two
// crops would roughly give). The files are kept in bin/ and reused while the recipe
// (fixtureVersion) and the counts are unchanged.
func realFixture(t *testing.T, n, real, q int) (indexPath, queriesPath string) {
	t.Helper()
	const fixtureVersion = 1
	real = min(real, n)
	dir, err := filepath.Abs(filepath.Join(testdata, "..", "bin", "fixtures"))
	if err != nil {
		t.Fatal(err)
	}
	indexPath = filepath.Join(dir, fmt.Sprintf("crops-v%d-%d-real%d.simidx", fixtureVersion, n, real))
	qdir := filepath.Join(dir, fmt.Sprintf("crops-v%d-%d-real%d-queries-%d", fixtureVersion, n, real, q))
	queriesPath = filepath.Join(qdir, "0000.features.npy")
	if _, err := os.Stat(queriesPath); err == nil {
		if _, err := os.Stat(indexPath); err == nil {
			return indexPath, queriesPath
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
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
	t.Logf("embedding %d crops of %d photos, mixing %d more (once; kept in %s)", real+q, len(sources), n-real, dir)
	rng := rand.New(rand.NewPCG(14, uint64(fixtureVersion)))
	const batch = 16
	ids := make([]string, 0, n+q)
	vecs := make([]float32, 0, (n+q)*m.Dim())
	input := make([]float32, 0, batch*m.InputLen())
	start := time.Now()
	for i := range real + q {
		s := i % len(sources)
		ids = append(ids, fmt.Sprintf("%s/crop%05d", names[s], i))
		input = input[:len(input)+m.InputLen()]
		m.Prepare(variant(sources[s], rng), input[len(input)-m.InputLen():])
		if len(input) == cap(input) || i == real+q-1 {
			v, err := m.Run(input)
			if err != nil {
				t.Fatal(err)
			}
			vecs = append(vecs, v...)
			input = input[:0]
		}
		if (i+1)%500 == 0 {
			t.Logf("  %d/%d embeddings, %.0f s", i+1, real+q, time.Since(start).Seconds())
		}
	}
	dim := m.Dim()
	// The queries are the last q embedded; the mixes go between the real rows and them.
	qids, qvecs := slices.Clone(ids[real:]), slices.Clone(vecs[real*dim:])
	ids, vecs = ids[:real], vecs[:real*dim]
	for i := real; i < n; i++ {
		a := rng.IntN(real)
		b := a%len(sources) + len(sources)*rng.IntN((real-a%len(sources)+len(sources)-1)/len(sources)) // same photo
		tt := float32(rng.Float64())
		ids = append(ids, fmt.Sprintf("%s/mix%05d", names[a%len(sources)], i))
		for c := range dim {
			vecs = append(vecs, tt*vecs[a*dim+c]+(1-tt)*vecs[b*dim+c])
		}
	}
	rec, err := query.Record(embed.Default(model), m.SHA256())
	if err != nil {
		t.Fatal(err)
	}
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
	os.RemoveAll(qdir)
	if err := os.MkdirAll(qdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := shard.Write(qdir, 0, qids, qvecs, dim); err != nil {
		t.Fatal(err)
	}
	return indexPath, queriesPath
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
