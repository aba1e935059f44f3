package query

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"simsearch/index"
	"simsearch/prune"
)

// writeIndex writes (atomically, as every update should) an index of dim-2 rows (i, 0) with ids
// prefix+i, recording meta.
func writeIndex(t *testing.T, path, prefix string, n, dim int, meta index.Meta) {
	t.Helper()
	w, err := index.Create(path, dim, false)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	rows := make([]float32, n*dim)
	for i := range ids {
		ids[i] = prefix + string(rune('a'+i))
		rows[i*dim] = float32(i)
	}
	if err := w.Append(ids, rows); err != nil {
		t.Fatal(err)
	}
	w.SetMeta(meta)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// Reopen swaps in an index renamed over the old one while searches run: every search succeeds,
// each answers from the old or the new index whole, and after Reopen only the new one answers.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.simidx")
	writeIndex(t, path, "old-", 5, 2, index.Meta{})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Warm()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				hits, _, err := s.Search([]float32{0, 0}, Request{K: 3, MaxDistance: prune.NoLimit})
				if err == nil && (len(hits[0]) != 3 || hits[0][0].ID[:4] != hits[0][2].ID[:4]) {
					err = errors.New("an answer mixes the two indexes")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	writeIndex(t, path, "new-", 7, 2, index.Meta{})
	ix, err := s.Reopen()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("search during Reopen: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != 7 || s.Index().Len() != 7 {
		t.Fatalf("after Reopen: %d and %d rows, want 7", ix.Len(), s.Index().Len())
	}
	hits, _, err := s.Search([]float32{0, 0}, Request{K: 1, MaxDistance: prune.NoLimit})
	if err != nil || hits[0][0].ID != "new-a" {
		t.Fatalf("after Reopen: %v, %v; want new-a", hits, err)
	}

	// An index of another dim is refused, and the searcher keeps the one it has.
	writeIndex(t, path, "wide-", 3, 3, index.Meta{})
	if _, err := s.Reopen(); err == nil || !strings.Contains(err.Error(), "3-dim") {
		t.Fatalf("Reopen of a dim-3 index: %v", err)
	}
	if hits, _, err := s.Search([]float32{0, 0}, Request{K: 1, MaxDistance: prune.NoLimit}); err != nil || hits[0][0].ID != "new-a" {
		t.Fatalf("after a refused Reopen: %v, %v; want new-a", hits, err)
	}
}

// An index modified in place under the searcher (truncated, or rewritten) fails searches and
// reads of stored vectors with index.ErrChanged instead of crashing the process with SIGBUS; Reopen recovers once a whole
// index is back.
func TestSearchIndexChangedInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.simidx")
	writeIndex(t, path, "a-", 5, 2, index.Meta{})
	hourAgo := time.Now().Add(-time.Hour) // file times have a coarse clock: see index.TestChanged
	os.Chtimes(path, hourAgo, hourAgo)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Search([]float32{0, 0}, Request{K: 1, MaxDistance: prune.NoLimit}); !errors.Is(err, index.ErrChanged) {
		t.Fatalf("search of a truncated index: %v, want index.ErrChanged", err)
	}
	if _, err := s.Vector("a-a"); !errors.Is(err, index.ErrChanged) { // query --id, "more like this"
		t.Fatalf("stored vector of a truncated index: %v, want index.ErrChanged", err)
	}
	if err := os.WriteFile(path, whole, 0o644); err != nil { // in place again, whole
		t.Fatal(err)
	}
	if _, _, err := s.Search([]float32{0, 0}, Request{K: 1, MaxDistance: prune.NoLimit}); !errors.Is(err, index.ErrChanged) {
		t.Fatalf("search of an index rewritten in place: %v, want index.ErrChanged", err)
	}
	if _, err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	if hits, _, err := s.Search([]float32{0, 0}, Request{K: 1, MaxDistance: prune.NoLimit}); err != nil || hits[0][0].ID != "a-a" {
		t.Fatalf("after Reopen: %v, %v", hits, err)
	}
}

// Open refuses metadata that image queries could not use, so that query --vector, info and serve
// accept and refuse the same files.
func TestOpenChecksMeta(t *testing.T) {
	good := &index.Model{SHA256: "ab", File: "/m.onnx", Input: "in", Output: "out", Size: 224, Layout: "NHWC", Scale: 1}
	for _, tc := range []struct {
		name string
		edit func(m *index.Model)
		want string
	}{
		{"size 0", func(m *index.Model) { m.Size = 0 }, "input size 0"},
		{"layout", func(m *index.Model) { m.Layout = "CHWN" }, "layout"},
		{"scale 0", func(m *index.Model) { m.Scale = 0 }, "scale"},
		{"two means", func(m *index.Model) { m.Mean, m.Std = []float64{1, 2}, []float64{1, 2} }, "three values"},
		{"std 0", func(m *index.Model) { m.Mean, m.Std = []float64{0, 0, 0}, []float64{1, 0, 1} }, "std"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.simidx")
			rec := *good
			tc.edit(&rec)
			writeIndex(t, path, "a-", 2, 2, index.Meta{Model: &rec})
			s, err := Open(path)
			if err == nil {
				s.Close()
			}
			if err == nil || !errors.Is(err, index.ErrFormat) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open: %v, want a format error naming the file and %q", err, tc.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "x.simidx")
	writeIndex(t, path, "a-", 2, 2, index.Meta{Model: good})
	s, err := Open(path)
	if err != nil {
		t.Fatalf("a valid record: %v", err)
	}
	s.Close()
}
