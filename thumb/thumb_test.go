package thumb

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
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

// A thumbnail and its record get mode 0666 less the umask (os.CreateTemp made them 0600), its
// folder 0777 less the umask; and a temporary file that a killed writer left in a folder is
// removed when a thumbnail is next made there.
func TestWritesHonourUmaskAndCleanUp(t *testing.T) {
	dir := t.TempDir()
	src := "../testdata/images/tiny_red.png"
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	read := func() ([]byte, error) { return os.ReadFile(src) }
	c, err := New(dir, 64)
	if err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o002)
	th, err := c.Get("b", st, read)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	record := strings.TrimSuffix(th.Path, ".jpg") + ".json"
	sub := filepath.Dir(th.Path)
	for p, want := range map[string]os.FileMode{th.Path: 0o664, record: 0o664, sub: 0o775} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v; want %v", p, err, fi.Mode().Perm(), want)
		}
	}

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(sub, fmt.Sprintf(".%s.tmp-%d-1", filepath.Base(th.Path), dead.Process.Pid))
	if err := os.WriteFile(stale, []byte("half a thumbnail"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(th.Path)
	os.Remove(record)
	c2, _ := New(dir, 64) // as a server started later would
	if _, err := c2.Get("b", st, read); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale temporary file is still there: %v", err)
	}
	if ents, _ := os.ReadDir(sub); len(ents) != 2 {
		t.Errorf("%d files in %s, want the thumbnail and its record", len(ents), sub)
	}
}

// A thumbnail is decoded by rows into its resize: of a 16-million-pixel PNG it allocates a few
// megabytes, where decoding it whole took 64.
func TestThumbnailOfABomb(t *testing.T) {
	c, err := New(t.TempDir(), 256)
	if err != nil {
		t.Fatal(err)
	}
	src := "../testdata/hostile/loadable/bomb_4000x4000_1bit.png"
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	th, err := c.Get("bomb", st, func() ([]byte, error) { return data, nil })
	runtime.ReadMemStats(&after)
	if err != nil || th.Width != 4000 || th.Height != 4000 {
		t.Fatalf("%+v, %v", th, err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("making the thumbnail allocated %d MB", got>>20)
	}
}
