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
