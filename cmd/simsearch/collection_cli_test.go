package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// copyPhoto copies the bundled image name to dir/rel.
func copyPhoto(t *testing.T, dir, rel, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(images, name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

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
