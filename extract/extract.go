// Package extract embeds a folder of images into feature shards in the seed's layout (package
// shard), so that simsearch works end to end without Python: extract, convert, query.
package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"simsearch/embed"
	"simsearch/index"
	"simsearch/internal/atomicfile"
	"simsearch/shard"
)

// Options control an extraction.
type Options struct {
	ShardSize int // images per shard; 0 means 10,000 as in the seed
	BatchSize int // images per inference; 0 means 16
	Overwrite bool
	// Record describes the model for the sidecar (shard.ModelFile) that convert records in the
	// index; nil writes none.
	Record *index.Model
	// Warn is told about each file skipped because it is not a readable image.
	Warn func(path string, err error)
	// Progress is called after each batch with the files done and in all.
	Progress func(done, total int)
	// Context, when set, interrupts the extraction when it ends (a signal): the shards written
	// so far stay, marked unfinished (shard.PartialFile), and no temporary file is left.
	Context context.Context
}

// Stats describes a finished extraction.
type Stats struct {
	Images, Skipped, Shards int
}

// Run embeds every image under imageDir (recursively, in lexical order) with m and writes shards
// to outDir. Ids are the files' paths relative to imageDir, with forward slashes.
func Run(m *embed.Model, imageDir, outDir string, opt Options) (Stats, error) {
	var st Stats
	if opt.ShardSize <= 0 {
		opt.ShardSize = 10_000
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 16
	}
	files, err := list(imageDir)
	if err != nil {
		return st, err
	}
	if len(files) == 0 {
		return st, fmt.Errorf("%s: no files found", imageDir)
	}
	if err := prepareOut(outDir, opt.Overwrite); err != nil {
		return st, err
	}
	// Until the last shard and the sidecar are written, the marker tells convert that the set
	// is unfinished: an extract that is killed leaves shards that look complete.
	marker := filepath.Join(outDir, shard.PartialFile)

	type prepared struct {
		id    string
		input []float32
		err   error
		path  string
	}
	// Decoding and resizing run one image ahead of inference.
	ch := make(chan prepared, opt.BatchSize)
	stop := make(chan struct{}) // closed when Run returns, early or not
	defer close(stop)
	go func() {
		defer close(ch)
		for _, rel := range files {
			path := filepath.Join(imageDir, rel)
			p := prepared{id: filepath.ToSlash(rel), path: path}
			p.input = make([]float32, m.InputLen())
			if p.err = m.PrepareFile(path, p.input); p.err != nil {
				p.input = nil
			}
			select {
			case ch <- p:
			case <-stop:
				return
			}
		}
	}()
	ctx := opt.Context
	if ctx == nil {
		ctx = context.Background()
	}

	var (
		ids   []string
		rows  []float32
		batch []float32
		bids  []string
		done  int
	)
	flushBatch := func() error {
		if len(bids) == 0 {
			return nil
		}
		out, err := m.Run(batch)
		if err != nil {
			return err
		}
		ids = append(ids, bids...)
		rows = append(rows, out...)
		batch, bids = batch[:0], bids[:0]
		return nil
	}
	flushShard := func() error {
		if len(ids) == 0 {
			return nil
		}
		if err := shard.Write(outDir, st.Shards, ids, rows, m.Dim()); err != nil {
			return err
		}
		st.Shards++
		ids, rows = ids[:0], rows[:0]
		return nil
	}
	for p := range ch {
		if ctx.Err() != nil {
			return st, fmt.Errorf("interrupted: the %d shards in %s are marked unfinished (%s): %w", st.Shards, outDir, shard.PartialFile, context.Cause(ctx))
		}
		done++
		if p.err != nil {
			st.Skipped++
			if opt.Warn != nil {
				opt.Warn(p.path, p.err)
			}
			continue
		}
		st.Images++
		batch = append(batch, p.input...)
		bids = append(bids, p.id)
		if len(bids) == opt.BatchSize || len(ids)+len(bids) == opt.ShardSize {
			if err := flushBatch(); err != nil {
				return st, err
			}
			if opt.Progress != nil {
				opt.Progress(done, len(files))
			}
		}
		if len(ids) == opt.ShardSize {
			if err := flushShard(); err != nil {
				return st, err
			}
		}
	}
	if err := flushBatch(); err != nil {
		return st, err
	}
	if err := flushShard(); err != nil {
		return st, err
	}
	if opt.Progress != nil {
		opt.Progress(done, len(files))
	}
	if st.Images == 0 {
		return st, fmt.Errorf("%s: none of the %d files is a readable image", imageDir, len(files))
	}
	if opt.Record != nil {
		b, err := json.MarshalIndent(opt.Record, "", "  ")
		if err != nil {
			return st, err
		}
		if err := shard.WriteModelFile(outDir, append(b, '\n')); err != nil {
			return st, err
		}
	}
	if err := os.Remove(marker); err != nil {
		return st, err
	}
	atomicfile.SyncDir(outDir)
	return st, nil
}

// list returns the regular files under dir, relative to it, sorted.
func list(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	slices.Sort(files)
	return files, err
}

// prepareOut creates outDir, refusing to mix new shards with old ones unless overwrite, in which
// case the old shards are removed first. It marks outDir as holding an unfinished set
// (shard.PartialFile) before anything else changes there, and removes temporary files that
// killed writers left.
func prepareOut(outDir string, overwrite bool) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(outDir, "[0-9][0-9][0-9][0-9]*.npy"))
	if err != nil {
		return err
	}
	if len(old) > 0 && !overwrite {
		return fmt.Errorf("%s already holds shards (%s, …): use --force to replace them", outDir, filepath.Base(old[0]))
	}
	if err := writeMarker(filepath.Join(outDir, shard.PartialFile)); err != nil {
		return err
	}
	if _, err := atomicfile.RemoveStale(outDir); err != nil {
		return err
	}
	for _, p := range append(old, filepath.Join(outDir, shard.ModelFile)) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeMarker writes the unfinished-extract marker durably: it must be on disk before any shard.
func writeMarker(path string) error {
	err := atomicfile.WriteFile(path, true, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "simsearch extract (pid %d) has not finished writing the shards here.\n", os.Getpid())
		return err
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
