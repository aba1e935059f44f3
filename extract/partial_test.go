package extract

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"simsearch/index"
	"simsearch/shard"
)

// While shards are being written, the unfinished-set marker is there (an extract killed at that
// point leaves it, and convert refuses the set); once the last shard and the sidecar are written
// it is gone. The files are created with the umask's permissions.
func TestPartialMarker(t *testing.T) {
	m := loadModel(t)
	src, out := photos(t), filepath.Join(t.TempDir(), "shards")
	marker := filepath.Join(out, shard.PartialFile)
	var markedWithShards int
	old := syscall.Umask(0o027)
	_, err := Run(m, src, out, Options{
		ShardSize: 1, BatchSize: 1,
		Record: &index.Model{SHA256: "abc"},
		Progress: func(done, total int) {
			_, merr := os.Stat(marker)
			written, _ := filepath.Glob(filepath.Join(out, "*.features.npy"))
			if merr == nil && len(written) > 0 && done < total {
				markedWithShards++
			}
		},
	})
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	if markedWithShards == 0 {
		t.Error("the marker was never there beside written shards during the run")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the marker is still there after a finished extract")
	}
	files, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(files) != 9 { // four pairs and the sidecar
		t.Fatalf("%d files in the output: %v", len(files), files)
	}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v (%v), want 0640 under umask 027", f, st.Mode().Perm(), err)
		}
	}
}

// An extraction whose context ends stops before the next image: the shards written stay, the
// marker says they are unfinished, no temporary file is left.
func TestInterrupted(t *testing.T) {
	m := loadModel(t)
	src, out := photos(t), filepath.Join(t.TempDir(), "shards")
	ctx, cancel := context.WithCancel(context.Background())
	batches := 0
	_, err := Run(m, src, out, Options{
		ShardSize: 1, BatchSize: 1, Context: ctx,
		Progress: func(done, total int) { batches++; cancel() },
	})
	if !errors.Is(err, context.Canceled) || batches != 1 {
		t.Fatalf("err %v after %d batches, want context.Canceled after 1", err, batches)
	}
	if _, err := os.Stat(filepath.Join(out, shard.PartialFile)); err != nil {
		t.Errorf("no unfinished marker: %v", err)
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 3 { // the marker and the first pair
		t.Errorf("left in the output: %v, want the marker and one shard pair", names)
	}
}
