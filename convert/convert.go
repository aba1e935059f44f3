// Package convert packs a directory of feature shards (see package shard) into one index file
// (see package index).
package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"simsearch/index"
	"simsearch/internal/atomicfile"
	"simsearch/prune"
	"simsearch/shard"
)

// Options control a conversion.
type Options struct {
	// AllowDuplicateIDs stores ids that occur more than once instead of refusing them.
	AllowDuplicateIDs bool
	// Overwrite replaces an existing file at the output path (atomically, only on success).
	Overwrite bool
	// Model records the embedding model and preprocessing in the index. When nil, the sidecar
	// that simsearch extract leaves beside its shards (shard.ModelFile) is used if present.
	Model *index.Model
	// Root, when set, is recorded as the photo folder the ids are relative to (an absolute path),
	// so that simsearch update can keep the index current (package folder gives the ids).
	Root string
	// Progress, when set, is called after each shard with the rows written so far and in all.
	Progress func(rows, total int)
	// PCARank is the number of principal directions stored for the pruned search (the PCA
	// section): 0 means prune.DefaultRank, a negative number writes no section.
	PCARank int
	// AllowPartial converts the shards of an extract that did not finish (see shard.PartialFile).
	AllowPartial bool
	// Context, when set, interrupts the conversion when it ends (a signal): nothing is left
	// behind, as after any other error.
	Context context.Context
}

// Stats describes a finished conversion.
type Stats struct {
	Shards, Rows, Dim int
	// Stale are the temporary files of killed writers found beside the output and removed.
	Stale []string
}

// Run converts the shards in srcDir into an index at out. It validates every shard's header
// before writing anything, then streams one shard at a time (little-endian float32 shards are
// memory-mapped and copied from the mapping), so memory stays near one shard.
// On any error nothing is left at out (an existing file there is untouched).
func Run(srcDir, out string, opt Options) (Stats, error) {
	var st Stats
	ctx := opt.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if _, err := os.Stat(out); err == nil && !opt.Overwrite {
		return st, fmt.Errorf("%s already exists (use --force to replace it)", out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, err
	}
	pairs, err := shard.List(srcDir)
	if err != nil {
		return st, err
	}
	if err := checkOutput(srcDir, out, pairs); err != nil {
		return st, err
	}
	if err := checkFinished(srcDir, opt.AllowPartial); err != nil {
		return st, err
	}
	if st.Stale, err = atomicfile.RemoveStale(filepath.Dir(out)); err != nil {
		return st, fmt.Errorf("removing stale temporary files: %w", err)
	}
	counts, dim, err := plan(pairs)
	if err != nil {
		return st, err
	}
	rows := 0
	for _, n := range counts {
		rows += n
	}
	if opt.Model == nil {
		if opt.Model, err = sidecar(srcDir); err != nil {
			return st, err
		}
	}
	w, err := index.Create(out, dim, opt.AllowDuplicateIDs)
	if err != nil {
		return st, err
	}
	defer w.Abort() // no-op after a successful Commit

	meta := index.Meta{Tool: "simsearch convert", Model: opt.Model, Root: opt.Root}
	// One shard is read ahead (ids decoded, features mapped) while the current one is written.
	next := make(chan loaded, 1)
	stop := make(chan struct{})
	defer func() {
		close(stop)
		for l := range next { // unmap whatever was read ahead of an error
			if l.feats != nil {
				l.feats.Close()
			}
		}
	}()
	go readAhead(pairs, next, stop)
	rank := opt.PCARank
	if rank == 0 {
		rank = prune.DefaultRank
	}
	var sampler *prune.Sampler
	if rank > 0 && rows > 0 {
		sampler = prune.NewSampler(rows, dim)
	}
	interrupted := func() error { return fmt.Errorf("interrupted, nothing written: %w", context.Cause(ctx)) }
	for _, p := range pairs {
		if ctx.Err() != nil {
			return st, interrupted()
		}
		var l loaded
		select {
		case l = <-next:
		case <-ctx.Done():
			return st, interrupted()
		}
		if l.err != nil {
			return st, l.err
		}
		err := w.Append(l.ids, l.feats.Rows)
		if err == nil && sampler != nil {
			sampler.Add(l.feats.Rows)
		}
		l.feats.Close()
		if err != nil {
			return st, explain(err, pairs, counts, p)
		}
		meta.Sources = append(meta.Sources, index.Source{IDs: filepath.Base(p.IDs), Features: filepath.Base(p.Features), Rows: len(l.ids), DType: l.feats.Header.DType})
		if opt.Progress != nil {
			opt.Progress(w.Count(), rows)
		}
	}
	if sampler != nil && ctx.Err() == nil { // an interruption is reported below
		sec, err := pcaSection(sampler, rank, pairs, rows)
		if err != nil {
			return st, fmt.Errorf("%s: the PCA section: %w", out, err)
		}
		w.AddSection(index.SectionPCA, prune.Version, sec.Encode())
	}
	w.SetMeta(meta)
	if ctx.Err() != nil {
		return st, interrupted()
	}
	if err := w.Commit(); err != nil {
		return st, fmt.Errorf("writing %s: %w", out, err)
	}
	return Stats{Shards: len(pairs), Rows: rows, Dim: dim, Stale: st.Stale}, nil
}

// checkOutput refuses an output path that would overwrite one of the input files, or that lies
// in the input directory under a name a later conversion would read as a shard or sidecar.
func checkOutput(srcDir, out string, pairs []shard.Pair) error {
	ost, err := os.Stat(out)
	if err == nil {
		for _, p := range pairs {
			for _, in := range []string{p.IDs, p.Features} {
				if ist, err := os.Stat(in); err == nil && os.SameFile(ist, ost) {
					return fmt.Errorf("the output %s is the input file %s: write the index elsewhere", out, in)
				}
			}
		}
	}
	dst, err1 := os.Stat(filepath.Dir(out))
	sst, err2 := os.Stat(srcDir)
	name := filepath.Base(out)
	if err1 == nil && err2 == nil && os.SameFile(dst, sst) && (shard.IsName(name) || name == shard.ModelFile || name == shard.PartialFile) {
		return fmt.Errorf("the output %s would be read as part of the input %s: write the index elsewhere", out, srcDir)
	}
	return nil
}

// checkFinished refuses the shards of an extract that did not finish: they look complete but
// lack the images after the last one written.
func checkFinished(srcDir string, allow bool) error {
	marker := filepath.Join(srcDir, shard.PartialFile)
	if _, err := os.Stat(marker); err != nil || allow {
		return nil
	}
	return fmt.Errorf("%s holds the shards of an extract that did not finish (%s is there): run the extract again (with --force), or pass --allow-partial to convert what there is", srcDir, marker)
}

// pcaSection fits the basis to the rows the sampler saw while they were written (and checked),
// then reads the shards a second time to project every row on it.
func pcaSection(sampler *prune.Sampler, rank int, pairs []shard.Pair, rows int) (*prune.Section, error) {
	b, err := sampler.Fit(rank)
	if err != nil {
		return nil, err
	}
	sec := prune.NewSection(b, rows)
	off := 0
	for _, p := range pairs {
		f, err := shard.OpenFeatures(p.Features)
		if err != nil {
			return nil, err
		}
		n := len(f.Rows) / b.Dim
		if off+n > rows {
			f.Close()
			return nil, fmt.Errorf("%s changed while it was converted", p.Features)
		}
		sec.Project(off, f.Rows)
		off += n
		f.Close()
	}
	if off != rows {
		return nil, fmt.Errorf("the shards changed while they were converted (%d rows, then %d)", rows, off)
	}
	return sec, nil
}

// loaded is one shard, read.
type loaded struct {
	ids   []string
	feats *shard.Features
	err   error
}

// readAhead loads the shards in order into next, stopping at the first error or when stop closes;
// it closes next when it returns.
func readAhead(pairs []shard.Pair, next chan<- loaded, stop <-chan struct{}) {
	defer close(next)
	for _, p := range pairs {
		var l loaded
		l.ids, _, l.err = shard.ReadIDs(p.IDs)
		if l.err == nil {
			l.feats, l.err = shard.OpenFeatures(p.Features)
		}
		select {
		case next <- l:
		case <-stop:
			if l.feats != nil {
				l.feats.Close()
			}
			return
		}
		if l.err != nil {
			return
		}
	}
}

// plan checks every pair's headers: counts agree within a pair, dims across pairs. It returns
// each pair's row count.
func plan(pairs []shard.Pair) (counts []int, dim int, err error) {
	for _, p := range pairs {
		ih, err := shard.IDsHeader(p.IDs)
		if err != nil {
			return nil, 0, err
		}
		fh, err := shard.FeaturesHeader(p.Features)
		if err != nil {
			return nil, 0, err
		}
		if ih.Shape[0] != fh.Shape[0] {
			return nil, 0, fmt.Errorf("%s has %d ids but %s has %d rows", p.IDs, ih.Shape[0], p.Features, fh.Shape[0])
		}
		switch {
		case dim == 0:
			dim = fh.Shape[1]
		case fh.Shape[1] != dim:
			return nil, 0, fmt.Errorf("%s has dim %d but the shards before it have dim %d", p.Features, fh.Shape[1], dim)
		}
		if dim > index.MaxDim {
			return nil, 0, fmt.Errorf("%s: dim %d exceeds the index format's maximum %d", p.Features, dim, index.MaxDim)
		}
		counts = append(counts, ih.Shape[0])
	}
	return counts, dim, nil
}

// explain names the shard file and row of an error the index writer reports.
func explain(err error, pairs []shard.Pair, counts []int, p shard.Pair) error {
	var nf *index.NonFiniteError
	var dup *index.DuplicateIDError
	var big *index.NormError
	switch {
	case errors.As(err, &big):
		return fmt.Errorf("%s: row %d: squared norm %.4g is too large: features must have squared norms below %.4g, so that no distance overflows float32", p.Features, big.Row, big.SquaredNorm, index.MaxSquaredNorm)
	case errors.As(err, &nf):
		return fmt.Errorf("%s: row %d, column %d is %v: features must be finite", p.Features, nf.Row, nf.Col, nf.Value)
	case errors.As(err, &dup):
		where := fmt.Sprintf("index row %d", dup.FirstIndex)
		if f, row, ok := locate(pairs, counts, dup.FirstIndex); ok {
			where = fmt.Sprintf("%s row %d", f, row)
		}
		return fmt.Errorf("%s: row %d: id %q already appeared at %s (use --allow-duplicate-ids to keep both)", p.IDs, dup.Row, dup.ID, where)
	}
	return fmt.Errorf("%s: %w", p.IDs, err)
}

// locate maps an index row to the ids file and row it came from, given each pair's row count.
func locate(pairs []shard.Pair, counts []int, row int) (string, int, bool) {
	for i, p := range pairs {
		if row < counts[i] {
			return p.IDs, row, true
		}
		row -= counts[i]
	}
	return "", 0, false
}

func sidecar(dir string) (*index.Model, error) {
	b, err := shard.ReadModelFile(dir)
	if err != nil || b == nil {
		return nil, err
	}
	var m index.Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, shard.ModelFile), err)
	}
	return &m, nil
}
