package collection

import (
	"errors"
	"io/fs"
	"os"

	"simsearch/index"
)

// compactChunk is the number of rows handed to the index writer at a time.
const compactChunk = 4096

// Compact folds the committed log into a new base holding every live row sorted by id, with
// their file states in a Files section, and renames it over the old base; the log, now stale,
// is removed. Readers with the old base mapped keep it until they release it. A crash at any
// point leaves either the old base with its log or the new base (with a stale log that readers
// ignore and the next writer replaces). The writer stays usable.
//
// Sections computed from the vectors (the pruned search's PCA) are not carried over: they would
// describe the old rows. A writer that can compute them adds them here, before Commit.
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
	err = v.Each(func(id string, s FileState, vec []float32) error {
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
