package thumb

import (
	"bytes"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGetMakesOnceAndFollowsChanges(t *testing.T) {
	c, err := New(t.TempDir(), 320)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "elephants.jpg")
	orig, err := os.ReadFile("../testdata/images/elephants.jpg") // 1024 × 576
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(src, orig, 0o644)
	reads := 0
	get := func() Thumb {
		t.Helper()
		st, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		th, err := c.Get("elephants.jpg", st, func() ([]byte, error) { reads++; return os.ReadFile(src) })
		if err != nil {
			t.Fatal(err)
		}
		return th
	}
	first := get()
	if first.Width != 1024 || first.Height != 576 {
		t.Errorf("original %d×%d, want 1024×576", first.Width, first.Height)
	}
	data, err := os.ReadFile(first.Path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil || cfg.Width != 320 || cfg.Height != 180 {
		t.Errorf("thumbnail %d×%d (%v), want 320×180", cfg.Width, cfg.Height, err)
	}
	if len(data) > len(orig)/4 {
		t.Errorf("thumbnail of %d bytes for an original of %d", len(data), len(orig))
	}
	if again := get(); again != first || reads != 1 {
		t.Errorf("second Get: %+v after %d reads, want %+v from the cache", again, reads, first)
	}
	// The photo changes: a new thumbnail, under a new ETag.
	later := time.Now().Add(time.Hour)
	os.Chtimes(src, later, later)
	if changed := get(); changed.ETag == first.ETag || reads != 2 {
		t.Errorf("after a change: ETag %s (was %s), %d reads", changed.ETag, first.ETag, reads)
	}
}

func TestGetRefusesNonImages(t *testing.T) {
	c, err := New(t.TempDir(), 64)
	if err != nil {
		t.Fatal(err)
	}
	src := "../testdata/images/broken_text.jpg"
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("broken_text.jpg", st, func() ([]byte, error) { return os.ReadFile(src) }); err == nil {
		t.Error("a text file made a thumbnail")
	}
	if _, err := New(t.TempDir(), 5); err == nil {
		t.Error("size 5 accepted")
	}
}
