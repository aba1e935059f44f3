package query

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"simsearch/index"
	"simsearch/prune"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	modelPath := filepath.Join(dir, "m.onnx")
	os.WriteFile(modelPath, []byte("x"), 0o644)
	rec := &index.Model{File: modelPath, Input: "in", Output: "out", Size: 160, Layout: "NCHW", Scale: 2, Mean: []float64{1, 2, 3}, Std: []float64{4, 5, 6}}
	idx := filepath.Join(dir, "x.simidx")

	// The record's preprocessing is the default…
	cfg, err := resolve(ModelRequest{}, rec, idx)
	if err != nil || cfg.Model != modelPath || cfg.Input != "in" || cfg.Size != 160 || cfg.Layout != "NCHW" || cfg.Scale != 2 || cfg.Std[2] != 6 {
		t.Fatalf("from the record: %+v, %v", cfg, err)
	}
	// … explicit settings win …
	size, layout := 224, "NHWC"
	cfg, err = resolve(ModelRequest{Path: "other.onnx", Size: &size, Layout: &layout, Mean: []float64{0, 0, 0}}, rec, idx)
	if err != nil || cfg.Model != "other.onnx" || cfg.Size != 224 || cfg.Layout != "NHWC" || cfg.Input != "in" || cfg.Mean[0] != 0 || cfg.Std[0] != 4 {
		t.Fatalf("overridden: %+v, %v", cfg, err)
	}
	// … without a record, the seed's defaults.
	cfg, err = resolve(ModelRequest{Path: "m.onnx"}, nil, idx)
	if err != nil || cfg.Input != "inputs:0" || cfg.Output != "feature_vector" || cfg.Size != 224 || cfg.Layout != "NHWC" || cfg.Scale != 1.0/255 || cfg.Mean != nil {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	for _, tc := range []struct {
		req  ModelRequest
		rec  *index.Model
		want string
	}{
		{ModelRequest{}, nil, "does not record its model: pass --model"},
		{ModelRequest{}, &index.Model{File: filepath.Join(dir, "gone.onnx")}, "not there any more"},
		{ModelRequest{Path: "m.onnx", Layout: new(string)}, nil, "layout"},
	} {
		if _, err := resolve(tc.req, tc.rec, idx); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("resolve(%+v, %+v) = %v, want %q", tc.req, tc.rec, err, tc.want)
		}
	}
}

func TestSearchAndIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.simidx")
	w, err := index.Create(path, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Append([]string{"a", "b", "c"}, []float32{0, 0, 3, 4, 1, 0})
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hits, _, err := s.Search([]float32{0, 0, 3, 4}, Request{K: 2, MaxDistance: prune.NoLimit})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Hit{{{"a", 0}, {"c", 1}}, {{"b", 0}, {"c", 4.47213602066040}}}
	for j := range want {
		for i := range want[j] {
			if hits[j][i].ID != want[j][i].ID || abs(hits[j][i].Distance-want[j][i].Distance) > 1e-6 {
				t.Errorf("query %d rank %d: %+v, want %+v", j, i, hits[j][i], want[j][i])
			}
		}
	}
	if _, _, err := s.Search([]float32{1, 2, 3}, Request{K: 1, MaxDistance: prune.NoLimit}); err == nil {
		t.Error("a 3-float query against dim 2 was accepted")
	}
	if v, err := s.Vector("b"); err != nil || len(v) != 2 || v[0] != 3 || v[1] != 4 {
		t.Errorf("Vector(b) = %v, %v; want [3 4]", v, err)
	}
	if _, err := s.Vector("d"); !errors.Is(err, ErrNoID) || !strings.Contains(err.Error(), `holds no id "d"`) {
		t.Errorf("Vector of an absent id: %v, want ErrNoID naming it", err)
	}
	if _, _, err := s.Images(ModelRequest{}, []string{"x.jpg"}, Request{K: 1, MaxDistance: prune.NoLimit}); err == nil || !strings.Contains(err.Error(), "pass --model") {
		t.Errorf("Images without a model: %v", err)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
