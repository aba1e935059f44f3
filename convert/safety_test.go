package convert

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"simsearch/shard"
)

// copyShards copies a fixture shard directory (numpy-written, no extract sidecar: as the Python
// pipeline leaves them) to a new directory.
func copyShards(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(fixtures, name, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
	}
	return dir
}

// The output may not be an input file or a name in the input directory that a later run would
// read as input; the input is untouched.
func TestOutputInsideInput(t *testing.T) {
	src := copyShards(t, "ok_f4")
	before, _ := os.ReadFile(filepath.Join(src, "0000.features.npy"))
	elsewhere := filepath.Join(t.TempDir(), "linked.npy")
	if err := os.Link(filepath.Join(src, "0001.object_ids.npy"), elsewhere); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		filepath.Join(src, "0000.features.npy"),
		filepath.Join(src, ".", "0001.object_ids.npy"),
		filepath.Join(src, "0002.features.npy"), // would join the input as a half shard
		filepath.Join(src, shard.ModelFile),
		elsewhere, // the same file under another name
	} {
		_, err := Run(src, out, Options{Overwrite: true})
		if err == nil || !strings.Contains(err.Error(), "write the index elsewhere") {
			t.Errorf("-o %s: %v, want a refusal", out, err)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(src, "0000.features.npy")); !slices.Equal(before, after) {
		t.Fatal("the input changed")
	}
	if _, err := os.Stat(filepath.Join(src, "0002.features.npy")); err == nil {
		t.Fatal("a shard-named output was written into the input")
	}
	// An index beside the shards under its own name is fine.
	if _, err := Run(src, filepath.Join(src, "photos.simidx"), Options{}); err != nil {
		t.Fatal(err)
	}
}

// An extract that did not finish leaves its marker: its shards are refused unless asked for.
func TestPartialExtract(t *testing.T) {
	src := copyShards(t, "ok_f4")
	out := filepath.Join(t.TempDir(), "x.simidx")
	if _, err := Run(src, out, Options{}); err != nil { // no marker, no sidecar: Python's shards
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, shard.PartialFile), []byte("unfinished"), 0o644)
	_, err := Run(src, out, Options{Overwrite: true})
	if err == nil || !strings.Contains(err.Error(), shard.PartialFile) || !strings.Contains(err.Error(), "--allow-partial") {
		t.Fatalf("unfinished set: %v", err)
	}
	if st, err := Run(src, out, Options{Overwrite: true, AllowPartial: true}); err != nil || st.Rows != 5 {
		t.Fatalf("AllowPartial: %+v, %v", st, err)
	}
}

// A conversion whose context ends leaves nothing behind: no output, no temporary file.
func TestInterrupted(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.simidx")
	ctx, cancel := context.WithCancel(context.Background())
	var progress int
	_, err := Run(filepath.Join(fixtures, "ok_f4"), out, Options{Context: ctx, Progress: func(rows, total int) {
		progress++
		cancel() // interrupted after the first of two shards
	}})
	if !errors.Is(err, context.Canceled) || progress != 1 {
		t.Fatalf("err %v after %d shards, want context.Canceled after 1", err, progress)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

// Temporary files of killed writers (their pid no longer runs) are removed by the next run;
// those of live processes are not.
func TestStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, fmt.Sprintf(".x.simidx.tmp-%d-42", dead.Process.Pid))
	live := filepath.Join(dir, fmt.Sprintf(".x.simidx.tmp-%d-43", os.Getppid()))
	os.WriteFile(stale, make([]byte, 1<<20), 0o644)
	os.WriteFile(live, nil, 0o644)
	st, err := Run(filepath.Join(fixtures, "ok_f4"), filepath.Join(dir, "x.simidx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Stale, []string{stale}) {
		t.Errorf("Stale = %v, want [%s]", st.Stale, stale)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale file is still there")
	}
	if _, err := os.Stat(live); err != nil {
		t.Error("a live process's temporary file was removed")
	}
}

// The index is created with the umask's permissions, like any other program's output.
func TestOutputHonoursUmask(t *testing.T) {
	for _, tc := range []struct {
		umask int
		want  os.FileMode
	}{{0o022, 0o644}, {0o027, 0o640}, {0o002, 0o664}} {
		out := filepath.Join(t.TempDir(), "x.simidx")
		old := syscall.Umask(tc.umask)
		_, err := Run(filepath.Join(fixtures, "ok_f4"), out, Options{})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != tc.want {
			t.Errorf("umask %03o: mode %03o, want %03o", tc.umask, st.Mode().Perm(), tc.want)
		}
	}
}
