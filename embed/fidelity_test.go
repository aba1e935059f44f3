package embed

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"codeberg.org/sbinet/npyio/npy"

	"simsearch/pil"
)

const (
	testModel  = "../testdata/model/mobilenet_v2_feature_vector.onnx"
	testImages = "../testdata/images"
	// FidelityTolerance is the largest L2 distance allowed between simsearch's embedding of an
	// image and the Python pipeline's (PIL + onnxruntime).
	fidelityTolerance = 1e-3
)

var (
	modelOnce sync.Once
	model     *Model
	modelErr  error
)

// testModelLoaded loads the bundled model once per test binary with the real ONNX Runtime.
func testModelLoaded(t testing.TB) *Model {
	t.Helper()
	modelOnce.Do(func() {
		lib, err := LibraryPath("")
		if err != nil {
			modelErr = err
			return
		}
		if err := Init(lib); err != nil {
			modelErr = err
			return
		}
		// The first Open optimises and caches the graph; the model the tests use is the second,
		// made from the cache, so the fidelity test covers the path every cold query takes.
		src, err := ReadModel(Default(testModel))
		if err != nil {
			modelErr = err
			return
		}
		cacheDir, _ := os.MkdirTemp("", "simsearch-optcache")
		first, err := src.Open(cacheDir)
		if err != nil {
			modelErr = err
			return
		}
		first.Close()
		if ents, _ := os.ReadDir(cacheDir); len(ents) != 1 {
			modelErr = fmt.Errorf("the optimised-model cache holds %d files, want 1", len(ents))
			return
		}
		model, modelErr = src.Open(cacheDir)
	})
	if modelErr != nil {
		t.Fatal(modelErr)
	}
	return model
}

func readReference(t *testing.T) ([]string, []float32) {
	f, err := os.Open(filepath.Join(testImages, "reference_ids.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	for s := bufio.NewScanner(f); s.Scan(); {
		if line := strings.TrimSpace(s.Text()); line != "" {
			ids = append(ids, line)
		}
	}
	rf, err := os.Open(filepath.Join(testImages, "reference_features.npy"))
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	var feats []float32
	if err := npy.Read(rf, &feats); err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 || len(feats) != len(ids)*1280 {
		t.Fatalf("%d ids and %d floats in the reference", len(ids), len(feats))
	}
	return ids, feats
}

// TestMatchesPythonPipeline embeds every reference image and compares with the embedding the
// Python pipeline (Pillow 9.4 + onnxruntime) produced for it: they are bitwise equal, float for
// float, on every image (distance exactly 0), so that is what is asserted; fidelityTolerance is
// the goal, not what this pipeline achieves. testdata/make_reference_features.py regenerates the
// reference.
func TestMatchesPythonPipeline(t *testing.T) {
	m := testModelLoaded(t)
	ids, ref := readReference(t)
	for i, id := range ids {
		img, err := pil.Open(filepath.Join(testImages, id))
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		v, err := m.Embed(img)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		want := ref[i*1280 : (i+1)*1280]
		// The comparison must be able to tell images apart: another image's reference is far.
		other := (i + len(ids)/2) % len(ids)
		if o := distance(v, ref[other*1280:(other+1)*1280]); o < 100*fidelityTolerance {
			t.Errorf("%s is within %g of the reference of %s: the comparison is not discriminating", id, o, ids[other])
		}
		if n, first := bitsDiffer(v, want); n > 0 {
			t.Errorf("%s: %d of %d floats differ from the Python pipeline's embedding (first: [%d] = %v, want %v); L2 distance %.3g (goal %g)",
				id, n, len(want), first, v[first], want[first], distance(v, want), fidelityTolerance)
		}
		// The path extract and query take: decoded by rows straight into the resize.
		in := make([]float32, m.InputLen())
		if err := m.PrepareFile(filepath.Join(testImages, id), in); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		rv, err := m.Run(in)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if n, _ := bitsDiffer(rv, want); n > 0 {
			t.Errorf("%s: decoded by rows: %d of %d floats differ from the Python pipeline's embedding; L2 distance %.3g", id, n, len(want), distance(rv, want))
		}
		t.Logf("%s: distance %g whole, %g by rows", id, distance(v, want), distance(rv, want))
	}
}

// bitsDiffer counts the floats of a and b whose bits differ and returns the index of the first.
func bitsDiffer(a, b []float32) (n, first int) {
	first = -1
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			if n == 0 {
				first = i
			}
			n++
		}
	}
	return n, first
}

func distance(a, b []float32) float64 {
	var d float64
	for i := range a {
		e := float64(a[i]) - float64(b[i])
		d += e * e
	}
	return math.Sqrt(d)
}
