package embed

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"simsearch/pil"
)

// A session from the cached optimised graph, one from the model itself, and one rebuilt after
// the cache file was damaged all give the same embedding, bit for bit.
func TestOptimizedCache(t *testing.T) {
	testModelLoaded(t)
	img, err := pil.Open(filepath.Join(testImages, "chelsea.png"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := ReadModel(Default(testModel))
	if err != nil {
		t.Fatal(err)
	}
	embedWith := func(dir string) []float32 {
		m, err := src.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		v, err := m.Embed(img)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	plain := embedWith("")
	dir := t.TempDir()
	built := embedWith(dir)
	cached := embedWith(dir)
	path := cachePath(dir, src)
	if v := ort.GetVersion(); v == "" || !strings.Contains(filepath.Base(path), "-ort"+v+"-") {
		t.Errorf("cache file %s is not keyed by the loaded runtime's version %q", path, v)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("no cached graph at %s: %v", path, err)
	}
	// The cached graph must load as ORT format, in place (not be silently rebuilt each time).
	if sess, m, err := openORT(path, src.cfg); err != nil {
		t.Fatalf("the cached graph does not load: %v", err)
	} else {
		sess.Destroy()
		m.Unmap()
	}
	os.WriteFile(path, []byte("damaged"), 0o644)
	rebuilt := embedWith(dir)
	if st, _ := os.Stat(path); st == nil || st.Size() < 1000 {
		t.Error("the damaged cache file was not rebuilt")
	}
	for name, v := range map[string][]float32{"built": built, "cached": cached, "rebuilt": rebuilt} {
		if !slices.Equal(v, plain) {
			t.Errorf("%s: embedding differs from the uncached session's", name)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("cache dir holds %d files, want 1 (no temporaries left)", len(ents))
	}
}

// BenchmarkOpenCached measures a session's creation from the cached optimised graph: the model
// part of a cold one-shot query.
func BenchmarkOpenCached(b *testing.B) {
	testModelLoaded(b)
	src, err := ReadModel(Default(testModel))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	m, err := src.Open(dir) // builds the cache
	if err != nil {
		b.Fatal(err)
	}
	m.Close()
	for b.Loop() {
		m, err := src.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}
