package embed

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"simsearch/pil"
)

// The one preparation path (decode, resize, tensor) gives the same input from a file and from
// its bytes, and the same as preparing the decoded image, for every bundled photo.
func TestPrepareFileAndBytes(t *testing.T) {
	m := testModelLoaded(t)
	var paths []string
	for _, pat := range []string{"*.jpg", "*.png", "*.gif", "*.webp"} {
		more, _ := filepath.Glob(filepath.Join(testImages, pat))
		for _, p := range more {
			if !strings.HasPrefix(filepath.Base(p), "broken_") {
				paths = append(paths, p)
			}
		}
	}
	if len(paths) < 30 {
		t.Fatalf("%d test images", len(paths))
	}
	fromFile, fromBytes, fromImage := make([]float32, m.InputLen()), make([]float32, m.InputLen()), make([]float32, m.InputLen())
	for _, p := range paths {
		if err := m.PrepareFile(p, fromFile); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.PrepareBytes(data, fromBytes); err != nil {
			t.Fatal(err)
		}
		img, err := pil.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		m.Prepare(img, fromImage)
		if !slices.Equal(fromFile, fromBytes) || !slices.Equal(fromFile, fromImage) {
			t.Errorf("%s: the three preparations differ", p)
		}
	}
	bad := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(bad, []byte("not an image"), 0o644)
	if err := m.PrepareFile(bad, fromFile); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("PrepareFile of a text file: %v, want an error naming it", err)
	}
	if err := m.PrepareBytes([]byte("not an image"), fromFile); err == nil {
		t.Error("PrepareBytes of text: no error")
	}
}

// OpenModel, the sequence every command uses, opens a model that embeds as Load's does.
func TestOpenModel(t *testing.T) {
	ref := testModelLoaded(t)
	m, took, err := OpenModel(Default(testModel), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if took <= 0 || m.SHA256() != ref.SHA256() || m.Dim() != ref.Dim() {
		t.Fatalf("took %v, sha %s dim %d; want >0, %s, %d", took, m.SHA256(), m.Dim(), ref.SHA256(), ref.Dim())
	}
	in := make([]float32, m.InputLen())
	if err := m.PrepareFile(filepath.Join(testImages, "chelsea.png"), in); err != nil {
		t.Fatal(err)
	}
	a, err := m.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ref.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Error("OpenModel's model embeds differently from the reference")
	}
	if _, _, err := OpenModel(Default(filepath.Join(t.TempDir(), "missing.onnx")), "", ""); err == nil {
		t.Error("OpenModel of a missing file: no error")
	}
}
