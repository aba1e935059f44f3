package extract

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"simsearch/embed"
	"simsearch/index"
	"simsearch/shard"
)

var (
	once  sync.Once
	model *embed.Model
	err   error
)

func loadModel(t *testing.T) *embed.Model {
	once.Do(func() {
		model, _, err = embed.OpenModel(embed.Default("../testdata/model/mobilenet_v2_feature_vector.onnx"), "", "")
	})
	if err != nil {
		t.Fatal(err)
	}
	return model
}

// photos copies some bundled images (and a broken one, and a nested folder) into a new folder.
func photos(t *testing.T) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	for _, name := range []string{"coffee.png", "sub/rocket.jpg", "astronaut.gif", "broken_text.jpg", "wood.webp"} {
		b, err := os.ReadFile(filepath.Join("../testdata/images", filepath.Base(name)))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	return dir
}

func TestRun(t *testing.T) {
	m := loadModel(t)
	src, out := photos(t), filepath.Join(t.TempDir(), "shards")
	var warned []string
	var lastDone, lastTotal int
	st, err := Run(m, src, out, Options{
		ShardSize: 3, BatchSize: 2,
		Record:   &index.Model{SHA256: "abc", Input: "inputs:0"},
		Warn:     func(p string, err error) { warned = append(warned, filepath.Base(p)) },
		Progress: func(d, n int) { lastDone, lastTotal = d, n },
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Images != 4 || st.Skipped != 1 || st.Shards != 2 || len(warned) != 1 || warned[0] != "broken_text.jpg" {
		t.Errorf("stats %+v, warned %v", st, warned)
	}
	if lastDone != 5 || lastTotal != 5 {
		t.Errorf("progress ended at %d/%d", lastDone, lastTotal)
	}
	pairs, err := shard.List(out)
	if err != nil || len(pairs) != 2 {
		t.Fatalf("shards: %v, %v", pairs, err)
	}
	var ids []string
	for _, p := range pairs {
		got, _, err := shard.ReadIDs(p.IDs)
		if err != nil {
			t.Fatal(err)
		}
		f, err := shard.OpenFeatures(p.Features)
		if err != nil || f.Header.Shape[0] != len(got) || f.Header.Shape[1] != 1280 || len(f.Rows) != len(got)*1280 {
			t.Fatalf("%s: %v", p.Features, err)
		}
		f.Close()
		ids = append(ids, got...)
	}
	if strings.Join(ids, " ") != "astronaut.gif coffee.png sub/rocket.jpg wood.webp" {
		t.Errorf("ids %v", ids)
	}
	if b, _ := shard.ReadModelFile(out); !strings.Contains(string(b), `"sha256": "abc"`) {
		t.Errorf("model sidecar: %s", b)
	}
	// Existing shards are kept unless told otherwise.
	if _, err := Run(m, src, out, Options{}); err == nil || !strings.Contains(err.Error(), "already holds shards") {
		t.Errorf("second run: %v", err)
	}
	if st, err := Run(m, src, out, Options{Overwrite: true}); err != nil || st.Shards != 1 {
		t.Errorf("forced run: %+v %v", st, err)
	}
	if b, _ := shard.ReadModelFile(out); b != nil {
		t.Errorf("a stale model sidecar survived a forced run without a record: %s", b)
	}
}

func TestNothingToDo(t *testing.T) {
	m := loadModel(t)
	empty := t.TempDir()
	if _, err := Run(m, empty, filepath.Join(t.TempDir(), "o"), Options{}); err == nil || !strings.Contains(err.Error(), "no files found") {
		t.Errorf("empty dir: %v", err)
	}
	junk := t.TempDir()
	os.WriteFile(filepath.Join(junk, "notes.txt"), []byte("hello"), 0o644)
	if _, err := Run(m, junk, filepath.Join(t.TempDir(), "o"), Options{}); err == nil || !strings.Contains(err.Error(), "none of the 1 files is a readable image") {
		t.Errorf("no images: %v", err)
	}
}
