package index

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeSmall(t *testing.T, path string, ids ...string) {
	t.Helper()
	w, err := Create(path, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]float32, 4*len(ids))
	for i := range rows {
		rows[i] = float32(i)
	}
	if err := w.Append(ids, rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// Changed notices a file modified in place under the mapping, and not a new file renamed over
// the path (the way to update an index), which leaves the mapped file as it was.
func TestChanged(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, path string)
		changed bool
	}{
		{"untouched", func(*testing.T, string) {}, false},
		{"renamed over", func(t *testing.T, path string) { writeSmall(t, path, "x", "y", "z") }, false},
		{"truncated", func(t *testing.T, path string) { os.Truncate(path, HeaderSize) }, true},
		{"rewritten in place", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			os.WriteFile(path, b, 0o644) // O_TRUNC then write: same size, new mtime
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.simidx")
			writeSmall(t, path, "a", "b")
			// An index written an hour ago: file times have a coarse clock, and a rewrite in the
			// same tick as the original write would keep its mtime.
			hourAgo := time.Now().Add(-time.Hour)
			if err := os.Chtimes(path, hourAgo, hourAgo); err != nil {
				t.Fatal(err)
			}
			ix, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			tc.change(t, path)
			err = ix.Changed()
			if got := errors.Is(err, ErrChanged); got != tc.changed {
				t.Fatalf("Changed() = %v, want changed=%v", err, tc.changed)
			}
			if !tc.changed && ix.Len() == 2 {
				if id, err := ix.ID(1); err != nil || id != "b" {
					t.Errorf("the mapping after the rename reads %q, %v; want the old file's id b", id, err)
				}
			}
		})
	}
}

// Prefault over a file truncated under the mapping returns instead of killing the process.
func TestPrefaultTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.simidx")
	w, err := Create(path, 1024, false)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 256)
	for i := range ids {
		ids[i] = string(rune('a'+i%26)) + string(rune('0'+i/26))
	}
	if err := w.Append(ids, make([]float32, 256*1024)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	os.Truncate(path, HeaderSize)
	ix.Prefault(4) // MADV_POPULATE_READ fails on the missing pages, and the fallback reads fault
	if !errors.Is(ix.Changed(), ErrChanged) {
		t.Error("the truncation went unnoticed")
	}
}

// BenchmarkChanged is the cost every search pays to notice a file changed in place.
func BenchmarkChanged(b *testing.B) {
	path := filepath.Join(b.TempDir(), "a.simidx")
	w, err := Create(path, 4, false)
	if err != nil {
		b.Fatal(err)
	}
	w.Append([]string{"a"}, []float32{1, 2, 3, 4})
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	ix, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	for b.Loop() {
		if err := ix.Changed(); err != nil {
			b.Fatal(err)
		}
	}
}
