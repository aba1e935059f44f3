package folder

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestID(t *testing.T) {
	for _, c := range []struct{ rel, want string }{
		{"55/77/5577b0aa.jpg", "5577b0aa.jpg"},
		{"55/78/5577b0aa.jpg", "55/78/5577b0aa.jpg"},
		{"x/55/77/5577b0aa.jpg", "x/55/77/5577b0aa.jpg"},
		{"holiday/beach 1.jpg", "holiday/beach 1.jpg"},
		{"été.png", "été.png"},
	} {
		if got := ID(c.rel); got != c.want {
			t.Errorf("ID(%q) = %q, want %q", c.rel, got, c.want)
		}
	}
}

func write(t *testing.T, root string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(fs []File) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.ID)
	}
	return strings.Join(s, ",")
}

func TestWalk(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a.jpg", "B.JPEG", "notes.txt", ".hidden.jpg", ".cache/c.png", "sub/d.webp",
		"sub/tmp/e.gif", "ab/cd/abcdef.bmp", "x y/été.tiff")
	other := t.TempDir()
	write(t, other, "linked.png")
	must(t, os.Symlink(other, filepath.Join(root, "sub", "link")))
	must(t, os.Symlink(root, filepath.Join(root, "sub", "loop")))                      // a loop
	must(t, os.Symlink(filepath.Join(root, "a.jpg"), filepath.Join(root, "f.jpg")))    // a linked file
	must(t, os.Symlink(filepath.Join(root, "gone.jpg"), filepath.Join(root, "g.jpg"))) // broken
	for _, c := range []struct {
		name string
		opt  Options
		want string
	}{
		{"default", Options{}, "B.JPEG,a.jpg,abcdef.bmp,f.jpg,sub/d.webp,sub/link/linked.png,sub/tmp/e.gif,x y/été.tiff"},
		{"hidden", Options{Hidden: true}, ".cache/c.png,.hidden.jpg,B.JPEG,a.jpg,abcdef.bmp,f.jpg,sub/d.webp,sub/link/linked.png,sub/tmp/e.gif,x y/été.tiff"},
		{"exclude", Options{Exclude: []string{"tmp", "*.webp", "sub/link"}}, "B.JPEG,a.jpg,abcdef.bmp,f.jpg,x y/été.tiff"},
	} {
		var warned []string
		c.opt.Warn = func(p string, err error) { warned = append(warned, filepath.Base(p)) }
		fs, err := Walk(root, c.opt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := ids(fs); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
		if !slices.Equal(warned, []string{"g.jpg"}) {
			t.Errorf("%s: warned about %v, want the broken link g.jpg", c.name, warned)
		}
	}
	if _, err := Walk(root, Options{Exclude: []string{"["}}); err == nil {
		t.Error("a bad glob was accepted")
	}
	write(t, root, "abcdef.bmp") // the same id as ab/cd/abcdef.bmp
	if _, err := Walk(root, Options{}); err == nil || !strings.Contains(err.Error(), "abcdef.bmp") {
		t.Errorf("two files with one id: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
