package folder

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sha is a SHA-1 in hex, as the seed's object store names its files.
const sha = "5577b0aa2c6f3e0f9d7c1b2a4e5f60718293a4b5"

func TestID(t *testing.T) {
	for _, c := range []struct{ rel, want string }{
		{"55/77/" + sha + ".jpg", sha + ".jpg"},
		{"55/77/" + sha + ".JPEG", sha + ".JPEG"},
		{"55/78/" + sha + ".jpg", "55/78/" + sha + ".jpg"},           // folders that do not match the name
		{"x/55/77/" + sha + ".jpg", "x/55/77/" + sha + ".jpg"},       // deeper
		{"55/77/" + sha[:39] + ".jpg", "55/77/" + sha[:39] + ".jpg"}, // 39 digits
		{"55/77/" + sha + "0.jpg", "55/77/" + sha + "0.jpg"},         // 41 digits
		{"55/77/" + strings.ToUpper(sha) + ".jpg", "55/77/" + strings.ToUpper(sha) + ".jpg"},
		{"55/77/5577" + strings.Repeat("g", 36) + ".jpg", "55/77/5577" + strings.Repeat("g", 36) + ".jpg"}, // not hex
		{"55/77/" + sha, "55/77/" + sha},                                                                   // no extension
		{"24/01/240115_beach.jpg", "24/01/240115_beach.jpg"},                                               // a date layout, not a store
		{"55/77/5577b0aa.jpg", "55/77/5577b0aa.jpg"},                                                       // a short name
		{"holiday/beach 1.jpg", "holiday/beach 1.jpg"},
		{"été.png", "été.png"},
	} {
		if got := ID(c.rel); got != c.want {
			t.Errorf("ID(%q) = %q, want %q", c.rel, got, c.want)
		}
	}
}

func TestUnder(t *testing.T) {
	for _, c := range []struct {
		id, dir string
		want    bool
	}{
		{"2024/a.jpg", "2024", true},
		{"2024/a.jpg", "2024/a.jpg", true},
		{"2024/a.jpg", "202", false},
		{"2024b/a.jpg", "2024", false},
		{sha + ".jpg", "55", true},
		{sha + ".jpg", "55/77", true},
		{sha + ".jpg", "55/78", false},
		{"5577b0aa.jpg", "55", false},
	} {
		if got := Under(c.id, c.dir); got != c.want {
			t.Errorf("Under(%q, %q) = %v, want %v", c.id, c.dir, got, c.want)
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

func rels(ps []Problem) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Rel)
	}
	return s
}

func TestWalk(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a.jpg", "B.JPEG", "notes.txt", ".hidden.jpg", ".cache/c.png", "sub/d.webp",
		"sub/tmp/e.gif", "55/77/"+sha+".bmp", "x y/été.tiff")
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
		{"default", Options{}, sha + ".bmp,B.JPEG,a.jpg,f.jpg,sub/d.webp,sub/link/linked.png,sub/tmp/e.gif,x y/été.tiff"},
		{"hidden", Options{Hidden: true}, ".cache/c.png,.hidden.jpg," + sha + ".bmp,B.JPEG,a.jpg,f.jpg,sub/d.webp,sub/link/linked.png,sub/tmp/e.gif,x y/été.tiff"},
		{"exclude", Options{Exclude: []string{"tmp", "*.webp", "sub/link"}}, sha + ".bmp,B.JPEG,a.jpg,f.jpg,x y/été.tiff"},
	} {
		l, err := Walk(root, c.opt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := ids(l.Files); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
		if got := rels(l.Unreadable); !slices.Equal(got, []string{"g.jpg"}) || !errors.Is(l.Unreadable[0].Err, fs.ErrNotExist) {
			t.Errorf("%s: unreadable %v (%v), want the broken link g.jpg", c.name, got, l.Unreadable)
		}
		if len(l.Refused) != 0 {
			t.Errorf("%s: refused %v", c.name, l.Refused)
		}
	}
	if _, err := Walk(root, Options{Exclude: []string{"["}}); err == nil {
		t.Error("a bad glob was accepted")
	}
}

// TestWalkRefuses checks that an image whose name is not UTF-8, and two images with one id, are
// refused with the reason while the rest is listed.
func TestWalkRefuses(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a.jpg", "caf\xe9.jpg", "55/77/"+sha+".png", sha+".png", "z.png")
	l, err := Walk(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(l.Files); got != "a.jpg,z.png" {
		t.Errorf("listed %s, want a.jpg,z.png", got)
	}
	want := []string{"55/77/" + sha + ".png", sha + ".png", "caf\xe9.jpg"}
	got := rels(l.Refused)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("refused %q, want %q", got, want)
	}
	for _, p := range l.Refused {
		msg := p.Err.Error()
		if strings.HasPrefix(p.Rel, "caf") && !strings.Contains(msg, "UTF-8") ||
			!strings.HasPrefix(p.Rel, "caf") && !strings.Contains(msg, "would have one id, \""+sha+".png\"") {
			t.Errorf("%s refused with %q", p.Rel, msg)
		}
	}
}

// TestWalkUnreadableFolder checks that a folder that cannot be read is listed as unreadable
// (not as a folder without images).
func TestWalkUnreadableFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every folder")
	}
	root := t.TempDir()
	write(t, root, "a.jpg", "locked/b.jpg")
	must(t, os.Chmod(filepath.Join(root, "locked"), 0))
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "locked"), 0o755) })
	l, err := Walk(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ids(l.Files) != "a.jpg" || !slices.Equal(rels(l.Unreadable), []string{"locked"}) || !errors.Is(l.Unreadable[0].Err, fs.ErrPermission) {
		t.Fatalf("files %s, unreadable %v", ids(l.Files), l.Unreadable)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
