package collection

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"

	"simsearch/index"
	"simsearch/prune"
)

// compactChunk is the number of rows handed to the index writer at a time.
const compactChunk = 4096

// Compact folds the committed log into a new base holding every live row sorted by id, with
// their file states in a Files section, and renames it over the old base. The rows stream from
// the old base's mapping and the log file, a chunk at a time. Readers with the old base mapped
// keep it until they release it. Rows of uncommitted records (embedding work of calls that did
// not finish) are carried over into a new log for the new base; without any, the log is removed.
// A crash at any point leaves either the old base with its log or the new base (with a stale
// log that readers ignore and the next writer takes the uncommitted rows from). The writer stays
// usable.
//
// The pruned search's PCA section is fitted anew to the live rows with the rank of the old
// base's section (package prune: deterministic, so the same rows give the same bytes as convert
// would write for them). A base without one keeps none when it was written so (version 2, with
// rows: convert --pca-rank 0); an empty base, a version-1 file and a section this build cannot
// use (damaged, or of an unknown version) get prune.DefaultRank. No live row: no section.
func (w *Writer) Compact() error {
	if w.dirty {
		return errors.New("collection: compacting with uncommitted changes")
	}
	st := w.st
	dim := w.Dim()
	n := st.base.Len() - st.deleted + len(st.adds)
	meta, err := st.base.Meta()
	if err != nil {
		return err
	}
	meta.SortedIDs, meta.Created = true, ""
	if w.root != "" {
		meta.Root = w.root
	}
	rank := compactRank(st)
	iw, err := index.Create(w.path, dim, false)
	if err != nil {
		return err
	}
	defer iw.Abort()
	iw.SetMeta(meta)
	files := make([]byte, 0, n*stateSize)
	var state [stateSize]byte
	var sampler *prune.Sampler
	if n > 0 && rank > 0 {
		sampler = prune.NewSampler(n, dim)
	}
	err = st.each(func(ids []string, states []FileState, rows []float32) error {
		if sampler != nil {
			sampler.Add(rows)
		}
		for _, s := range states {
			putState(state[:], s)
			files = append(files, state[:]...)
		}
		return iw.Append(ids, rows)
	})
	if err != nil {
		return err
	}
	iw.AddSection(index.SectionFiles, filesVersion, files)
	if sampler != nil {
		b, err := sampler.Fit(rank)
		if err != nil {
			return err
		}
		sec := prune.NewSection(b, n)
		r := 0
		err = st.each(func(ids []string, _ []FileState, rows []float32) error {
			sec.Project(r, rows)
			r += len(ids)
			return nil
		})
		if err != nil {
			return err
		}
		iw.AddSection(index.SectionPCA, prune.Version, sec.Encode())
	}
	if err := iw.Commit(); err != nil {
		return err
	}
	// The old log is stale now: its committed records are in the new base. Reopening reads its
	// uncommitted rows; prepare carries them into a new log.
	closeFile(st.file)
	if w.log != st.file {
		closeFile(w.log)
	}
	st.base.Close()
	w.st, w.log, w.root = nil, nil, ""
	if err := w.open(nil); err != nil {
		return err
	}
	if !w.st.stale {
		return nil
	}
	if len(w.spare) > 0 {
		return w.makeReady() // a new log holding them
	}
	closeFile(w.st.file)
	w.st.file = nil
	if err := os.Remove(LogPath(w.path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// compactRank is the rank of the PCA section a compaction of st's base writes; 0 for none. It
// takes the base's section as the writer read it (a version-1 section is packed into memory when
// read: once is enough).
func compactRank(st *logState) int {
	switch {
	case st.pca != nil:
		return st.pca.Basis.Rank
	case st.pcaErr != nil:
		return prune.DefaultRank // damaged
	}
	base := st.base
	if _, _, ok := base.Section(index.SectionPCA); ok {
		return prune.DefaultRank // of a version this build does not read
	}
	if base.FormatVersion() >= 2 && base.Len() > 0 {
		return 0
	}
	return prune.DefaultRank
}

// each calls fn with the live rows in increasing id order, compactChunk at a time: ids, file
// states and the rows, row-major (valid during the call). Added rows are read from the log.
func (st *logState) each(fn func(ids []string, states []FileState, rows []float32) error) error {
	base := st.base
	dim := base.Dim()
	order := make([]int, 0, base.Len()-st.deleted)
	ids := make([]string, base.Len())
	for r := range ids {
		id, err := base.ID(r)
		if err != nil {
			return err
		}
		ids[r] = id
		if !st.isDeleted(r) {
			order = append(order, r)
		}
	}
	if !st.sorted {
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(ids[a], ids[b]) })
	}
	added := make([]string, 0, len(st.adds))
	for id := range st.adds {
		added = append(added, id)
	}
	slices.Sort(added)

	chunkIDs := make([]string, 0, compactChunk)
	states := make([]FileState, 0, compactChunk)
	rows := make([]float32, 0, compactChunk*dim)
	var refs []rowRef // added rows of the chunk
	var at []int      // their places in it
	var tmp []float32
	flush := func() error {
		if len(refs) > 0 {
			tmp = slices.Grow(tmp[:0], len(refs)*dim)[:len(refs)*dim]
			if err := readVectors(st.file, refs, func(r rowRef) int64 { return r.vec }, dim, tmp); err != nil {
				return err
			}
			for k, i := range at {
				copy(rows[i*dim:(i+1)*dim], tmp[k*dim:(k+1)*dim])
			}
		}
		err := fn(chunkIDs, states, rows)
		chunkIDs, states, rows, refs, at = chunkIDs[:0], states[:0], rows[:0], refs[:0], at[:0]
		return err
	}
	a := 0
	next := func() (id string, fromBase bool, r int) {
		switch {
		case len(order) > 0 && (a == len(added) || ids[order[0]] < added[a]):
			r, order = order[0], order[1:]
			return ids[r], true, r
		default:
			a++
			return added[a-1], false, 0
		}
	}
	for len(order) > 0 || a < len(added) {
		id, fromBase, r := next()
		chunkIDs = append(chunkIDs, id)
		if fromBase {
			states = append(states, st.baseState(r, id))
			rows = append(rows, base.Row(r)...)
		} else {
			ref := st.adds[id]
			states = append(states, ref.State)
			at, refs = append(at, len(chunkIDs)-1), append(refs, ref)
			rows = rows[:len(rows)+dim] // filled by flush
		}
		if len(chunkIDs) == compactChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(chunkIDs) > 0 {
		return flush()
	}
	return nil
}
