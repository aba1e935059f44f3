package main

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"simsearch/internal/fixture"
)

// copyPhoto copies the bundled image name to dir/rel.
func copyPhoto(t *testing.T, dir, rel, name string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	fixture.CopyFile(t, filepath.Join(images, name), p)
	return p
}

func summaryOf(t *testing.T, out string) ingestSummary {
	t.Helper()
	var s ingestSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	return s
}

// ingestSummary is the JSON summary update, add and remove print.
type ingestSummary struct {
	Added, Changed, Removed, Unchanged, Embedded, Reused int
	Failed                                               []struct{ Path, Error string }
}

// missingModel names a model file that does not exist: a call that needs no model still works.
func missingModel(t *testing.T) string { return filepath.Join(t.TempDir(), "nosuch.onnx") }

// TestCollectionDamagedLog flips a byte of the first of three committed records: verify, query
// and update must report the damage with the file and the offset (not take it for a torn tail
// and silently drop the two commits after it), and leave the log as it is.
func TestCollectionDamagedLog(t *testing.T) {
	dir, idx := t.TempDir(), filepath.Join(t.TempDir(), "c.simidx")
	copyPhoto(t, dir, "a.jpg", "rocket.jpg")
	mustRun(t, "update", "--index", idx, "--model", model, "--no-compact", dir)
	copyPhoto(t, dir, "b.png", "coffee.png")
	mustRun(t, "update", "--index", idx, "--no-compact")
	copyPhoto(t, dir, "c.webp", "wood.webp")
	mustRun(t, "update", "--index", idx, "--no-compact")
	log := idx + ".log"
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	b[64+8+40] ^= 0x04
	if err := os.WriteFile(log, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"verify", idx}, {"query", "--index", idx, "--id", "a.jpg"}, {"update", "--index", idx}, {"remove", "--index", idx, "a.jpg"}} {
		_, errs, code := simsearch(t, args...)
		if code == 0 || !strings.Contains(errs, log) || !strings.Contains(errs, "byte 64") || !strings.Contains(errs, "damage") {
			t.Errorf("%s of a damaged log: exit %d, %s", args[0], code, errs)
		}
	}
	if now, _ := os.ReadFile(log); !slices.Equal(now, b) {
		t.Fatal("the damaged log was changed")
	}
}

// TestVerifyJSONLog checks that verify --json reports the change log as the text output does.
func TestVerifyJSONLog(t *testing.T) {
	dir, idx := t.TempDir(), filepath.Join(t.TempDir(), "c.simidx")
	copyPhoto(t, dir, "a.jpg", "rocket.jpg")
	copyPhoto(t, dir, "b.png", "coffee.png")
	mustRun(t, "update", "--index", idx, "--model", model, "--no-compact", dir)
	mustRun(t, "remove", "--index", idx, "--no-compact", "a.jpg")
	var res struct {
		OK  bool
		Log *struct {
			Exists    bool
			Commits   int
			Rows      int `json:"rows"`
			AddedRows int `json:"added_rows"`
		}
	}
	if err := json.Unmarshal([]byte(mustRun(t, "verify", "--json", idx)), &res); err != nil || !res.OK || res.Log == nil {
		t.Fatalf("verify --json: %+v, %v", res, err)
	}
	if !res.Log.Exists || res.Log.Commits != 2 || res.Log.Rows != 1 || res.Log.AddedRows != 1 {
		t.Fatalf("verify --json log report: %+v", *res.Log)
	}
}

// TestUpdateRefusedNames checks that a file whose name is not UTF-8, and two files with one id,
// are listed as failed with the reason while the rest of the folder is indexed.
func TestUpdateRefusedNames(t *testing.T) {
	dir, idx := t.TempDir(), filepath.Join(t.TempDir(), "c.simidx")
	copyPhoto(t, dir, "good.jpg", "rocket.jpg")
	copyPhoto(t, dir, "caf\xe9.jpg", "coffee_cmyk.jpg")
	data, _ := os.ReadFile(filepath.Join(images, "wood.webp"))
	sha := fmt.Sprintf("%x", sha1.Sum(data))
	copyPhoto(t, dir, sha[:2]+"/"+sha[2:4]+"/"+sha+".webp", "wood.webp")
	copyPhoto(t, dir, sha+".webp", "wood.webp")
	s := summaryOf(t, mustRun(t, "update", "--json", "--index", idx, "--model", model, dir))
	if s.Added != 1 || s.Embedded != 1 || len(s.Failed) != 3 {
		t.Fatalf("%+v", s)
	}
	for _, f := range s.Failed {
		if !strings.Contains(f.Error, "UTF-8") && !strings.Contains(f.Error, "one id") {
			t.Errorf("%s failed with %q", f.Path, f.Error)
		}
	}
	// And again: the rest stays indexed, nothing is embedded.
	if s := summaryOf(t, mustRun(t, "update", "--json", "--index", idx)); s.Unchanged != 1 || s.Embedded != 0 || len(s.Failed) != 3 {
		t.Fatalf("second update: %+v", s)
	}
}

// TestAddFailures checks that add --replace with a file that is not an image keeps the id's row,
// that the others are added and replaced, and that the exit status says some failed.
func TestAddFailures(t *testing.T) {
	dir, idx := t.TempDir(), filepath.Join(t.TempDir(), "c.simidx")
	a := copyPhoto(t, dir, "a.jpg", "rocket.jpg")
	b := copyPhoto(t, dir, "b.png", "coffee.png")
	mustRun(t, "update", "--index", idx, "--model", model, dir)
	before := collectionState(t, idx)["a.jpg"]
	copyPhoto(t, dir, "a.jpg", "broken_truncated.jpg")
	copyPhoto(t, dir, "b.png", "wood.webp")
	c := copyPhoto(t, dir, "c.gif", "astronaut.gif")
	out, errs, code := simsearch(t, "add", "--index", idx, "--replace", "--json", a, b, c)
	s := summaryOf(t, out)
	if code == 0 || !strings.Contains(errs, "could not be added") {
		t.Fatalf("add with a file that failed: exit %d, %s", code, errs)
	}
	if s.Changed != 1 || s.Added != 1 || s.Removed != 0 || len(s.Failed) != 1 || s.Failed[0].Path != a || !strings.Contains(s.Failed[0].Error, "kept") {
		t.Fatalf("%+v", s)
	}
	if after := collectionState(t, idx)["a.jpg"]; before == nil || !slices.Equal(after, before) {
		t.Fatal("the row of the file that failed is gone or changed")
	}
	// Every file failing: the same, nothing added.
	if _, errs, code := simsearch(t, "add", "--index", idx, filepath.Join(images, "broken_text.jpg"), filepath.Join(dir, "nosuch.jpg")); code == 0 || !strings.Contains(errs, "2 of the files") {
		t.Fatalf("add of files that all fail: exit %d, %s", code, errs)
	}
}

// TestUpdateRemembersFailures checks that an unchanged folder with a broken photo does not need
// the model (the failure is remembered, and reported), that --retry-failed tries again, and that
// a fixed photo is embedded.
func TestUpdateRemembersFailures(t *testing.T) {
	dir, idx := t.TempDir(), filepath.Join(t.TempDir(), "c.simidx")
	copyPhoto(t, dir, "a.jpg", "rocket.jpg")
	copyPhoto(t, dir, "b.jpg", "broken_truncated.jpg")
	if s := summaryOf(t, mustRun(t, "update", "--json", "--index", idx, "--model", model, dir)); s.Added != 1 || len(s.Failed) != 1 {
		t.Fatalf("%+v", s)
	}
	s := summaryOf(t, mustRun(t, "update", "--json", "--index", idx, "--model", missingModel(t)))
	if s.Unchanged != 1 || len(s.Failed) != 1 || !strings.Contains(s.Failed[0].Error, "unchanged since") {
		t.Fatalf("unchanged folder: %+v", s)
	}
	if _, errs, code := simsearch(t, "update", "--index", idx, "--model", missingModel(t), "--retry-failed"); code == 0 || !strings.Contains(errs, "nosuch.onnx") {
		t.Fatalf("--retry-failed did not need the model: exit %d, %s", code, errs)
	}
	copyPhoto(t, dir, "b.jpg", "coffee_cmyk.jpg")
	if s := summaryOf(t, mustRun(t, "update", "--json", "--index", idx)); s.Added != 1 || s.Embedded != 1 || len(s.Failed) != 0 {
		t.Fatalf("after the photo was fixed: %+v", s)
	}
}

// TestUpdateUnreadableFolder replaces a subfolder by a broken link (an unmounted disk): its rows
// stay, and the summary says so.
func TestUpdateUnreadableFolder(t *testing.T) {
	dir, idx := t.TempDir(), filepath.Join(t.TempDir(), "c.simidx")
	copyPhoto(t, dir, "a.jpg", "rocket.jpg")
	copyPhoto(t, dir, "trip/b.jpg", "coffee_cmyk.jpg")
	copyPhoto(t, dir, "trip/c.png", "coffee.png")
	mustRun(t, "update", "--index", idx, "--model", model, dir)
	if err := os.Rename(filepath.Join(dir, "trip"), filepath.Join(t.TempDir(), "trip")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), "unmounted"), filepath.Join(dir, "trip")); err != nil {
		t.Fatal(err)
	}
	s := summaryOf(t, mustRun(t, "update", "--json", "--index", idx))
	if s.Removed != 0 || s.Unchanged != 3 || len(s.Failed) != 1 || !strings.Contains(s.Failed[0].Error, "kept") {
		t.Fatalf("%+v", s)
	}
	var in indexInfo
	if err := json.Unmarshal([]byte(mustRun(t, "info", "--json", idx)), &in); err != nil || in.Count != 3 {
		t.Fatalf("%+v, %v", in, err)
	}
}

// TestUpdateGivesRootlessIndexItsFolder converts shards without --root, then names the folder to
// update: a folder that lacks some of the index's ids is refused; the right one is recorded,
// nothing is embedded again, and later updates need no folder.
func TestUpdateGivesRootlessIndexItsFolder(t *testing.T) {
	store, tmp := t.TempDir(), t.TempDir()
	for _, n := range []string{"rocket.jpg", "coffee.png", "wood.webp"} {
		copyPhoto(t, store, n, n)
	}
	shards, idx := filepath.Join(tmp, "shards"), filepath.Join(tmp, "c.simidx")
	mustRun(t, "extract", store, "-o", shards, "--model", model)
	mustRun(t, "convert", shards, "-o", idx)
	wrong := t.TempDir()
	copyPhoto(t, wrong, "rocket.jpg", "rocket.jpg")
	if _, errs, code := simsearch(t, "update", "--index", idx, wrong); code == 0 || !strings.Contains(errs, "not files of") {
		t.Fatalf("a folder without the index's ids: exit %d, %s", code, errs)
	}
	copyPhoto(t, store, "new.gif", "astronaut.gif")
	s := summaryOf(t, mustRun(t, "update", "--json", "--index", idx, store))
	if s.Unchanged != 3 || s.Added != 1 || s.Embedded != 1 {
		t.Fatalf("%+v", s)
	}
	var in indexInfo
	if err := json.Unmarshal([]byte(mustRun(t, "info", "--json", idx)), &in); err != nil || in.Meta.Root == "" || in.Count != 4 {
		t.Fatalf("info after: %+v, %v", in, err)
	}
	if !sameDir(in.Meta.Root, store) {
		t.Fatalf("recorded root %s, want %s", in.Meta.Root, store)
	}
	if s := summaryOf(t, mustRun(t, "update", "--json", "--index", idx)); s.Unchanged != 4 || s.Embedded != 0 {
		t.Fatalf("update without the folder: %+v", s)
	}
	mustRun(t, "verify", idx)
}
