package collection

import (
	"errors"
	"io/fs"
	"os"

	"simsearch/index"
	"simsearch/prune"
)

// compactChunk is the number of rows handed to the index writer at a time.
const compactChunk = 4096

// Compact folds the committed log into a new base holding every live row sorted by id, with
// their file states in a Files section, and renames it over the old base; the log, now stale,
// is removed. Readers with the old base mapped keep it until they release it. A crash at any
// point leaves either the old base with its log or the new base (with a stale log that readers
// ignore and the next writer replaces). The writer stays usable.
//
// The pruned search's PCA section is fitted anew to the live rows (package prune: deterministic,
// so the same rows give the same bytes as convert would write for them).
func (w *Writer) Compact() error {
	if w.dirty {
		return errors.New("collection: compacting with uncommitted changes")
	}
	st, err := readLogState(w.st.base)
	if err != nil {
		return err
	}
	v, err := st.view()
	if err != nil {
		return err
	}
	meta := v.meta
	meta.SortedIDs, meta.Created = true, ""
	iw, err := index.Create(w.path, v.Dim(), false)
	if err != nil {
		return err
	}
	defer iw.Abort()
	iw.SetMeta(meta)
	dim := v.Dim()
	files := make([]byte, 0, v.Len()*stateSize)
	ids := make([]string, 0, compactChunk)
	rows := make([]float32, 0, compactChunk*dim)
	var state [stateSize]byte
	var sampler *prune.Sampler
	if v.Len() > 0 {
		sampler = prune.NewSampler(v.Len(), dim)
	}
	err = v.Each(func(id string, s FileState, vec []float32) error {
		sampler.Add(vec)
		putState(state[:], s)
		files = append(files, state[:]...)
		ids, rows = append(ids, id), append(rows, vec...)
		if len(ids) < compactChunk {
			return nil
		}
		err := iw.Append(ids, rows)
		ids, rows = ids[:0], rows[:0]
		return err
	})
	if err == nil && len(ids) > 0 {
		err = iw.Append(ids, rows)
	}
	if err != nil {
		return err
	}
	iw.AddSection(index.SectionFiles, filesVersion, files)
	if sampler != nil {
		sec, err := pcaSection(v, sampler)
		if err != nil {
			return err
		}
		iw.AddSection(index.SectionPCA, prune.Version, sec.Encode())
	}
	if err := iw.Commit(); err != nil {
		return err
	}
	if err := os.Remove(LogPath(w.path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if w.log != nil {
		w.log.Close()
	}
	w.st.base.Close()
	w.log, w.st = nil, nil
	return w.open(nil)
}

// pcaSection fits the pruned search's basis to the rows the sampler saw (the view's live rows in
// id order, as the new base stores them) and projects every row on it.
func pcaSection(v *View, sampler *prune.Sampler) (*prune.Section, error) {
	b, err := sampler.Fit(prune.DefaultRank)
	if err != nil {
		return nil, err
	}
	sec := prune.NewSection(b, v.Len())
	r := 0
	err = v.Each(func(_ string, _ FileState, vec []float32) error {
		sec.Project(r, vec)
		r++
		return nil
	})
	return sec, err
}
