package extract

import (
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
