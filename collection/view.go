// Package collection is a living collection of vectors: an immutable base index file (package
// index) plus an append-only change log beside it that adds, deletes and re-describes rows
// without rewriting the base. Readers see the base with the log's committed changes applied;
// one writer at a time appends to the log and commits atomically; compaction folds the log
// into a new base. FORMAT.md in the index package specifies the log ("The change log").
package collection

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"simsearch/index"
	"simsearch/prune"
)

// LogPath is the change log of the index at path.
func LogPath(path string) string { return path + ".log" }

// View is a consistent snapshot of a collection: the mapped base with a deletion bitset, and the
// rows added by the log as one contiguous block sorted by id. It is immutable; methods are safe
// for concurrent use until Release drops the last reference.
type View struct {
	path  string
	base  *index.Index
	ident Identity
	meta  index.Meta
	files []byte // the base's Files section (state per row), nil if it has none

	del       []uint64 // bit r: base row r is deleted or replaced; nil when none is
	deleted   int
	baseTouch map[string]FileState // states of base rows given by touch records

	addIDs    []string // sorted
	addStates []FileState
	added     []float32 // row-major, in addIDs order

	pca    *prune.Section // the base's PCA section, for the pruned search; nil: none
	pcaErr error          // a damaged PCA section: only a full scan may answer

	logEnd int64  // bytes of the log through its last commit; 0 without a log
	seq    uint64 // the last commit's number
	refs   atomic.Int64

	idsOnce sync.Once // builds idRows for Vector on an unsorted base
	idRows  map[string]int
	idsErr  error
}

// Open opens the collection at path: the base index and its change log's committed records.
// A log written against another base (left over from before a compaction) is ignored. A base
// renamed over path while it is being opened (a compaction finishing) is retried.
func Open(path string) (*View, error) {
	for attempt := 0; ; attempt++ {
		before, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		ix, err := index.Open(path)
		if err != nil {
			return nil, err
		}
		st, err := readLogState(ix)
		after, serr := os.Stat(path)
		if serr == nil && !os.SameFile(before, after) && attempt < 10 {
			ix.Close()
			continue
		}
		if err != nil {
			ix.Close()
			return nil, err
		}
		v, err := st.view()
		if err != nil {
			ix.Close()
			return nil, err
		}
		return v, nil
	}
}

// logState is a base and its log, read: the committed state and the uncommitted tail.
type logState struct {
	*replay
	ident     Identity
	logExists bool // a log for this base exists (else none, or a stale one)
	stale     bool // a log for another base is there
	logEnd    int64
	intact    int64 // where the intact records end (≥ logEnd)
	seq       uint64
	tail      []op // records after the last commit
}

func readLogState(ix *index.Index) (*logState, error) {
	rp, err := newReplay(ix)
	if err != nil {
		return nil, err
	}
	st := &logState{replay: rp, ident: identityOf(ix.Header())}
	b, err := os.ReadFile(LogPath(ix.Path()))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	id, dim, err := parseLogHeader(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", LogPath(ix.Path()), err)
	}
	if id != st.ident {
		st.stale = true
		return st, nil
	}
	if dim != ix.Dim() {
		return nil, fmt.Errorf("%s: %w: rows of dim %d, the base holds dim %d", LogPath(ix.Path()), ErrFormat, dim, ix.Dim())
	}
	st.logExists, st.logEnd = true, logHeaderSize
	var pending []op
	st.intact, err = scanLog(b, dim, func(o op, end int64) error {
		if o.kind != recCommit {
			pending = append(pending, o)
			return nil
		}
		for _, p := range pending {
			if err := st.apply(p); err != nil {
				return fmt.Errorf("%w: %v", ErrFormat, err)
			}
		}
		pending = pending[:0]
		st.logEnd, st.seq = end, o.seq
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", LogPath(ix.Path()), err)
	}
	st.tail = pending
	return st, nil
}

// replay applies log records to a base.
type replay struct {
	base    *index.Index
	sorted  bool           // the base's rows are in id order
	baseRow map[string]int // built on first use when not sorted
	del     []uint64
	deleted int
	touch   map[string]FileState
	adds    map[string]Row
}

func newReplay(ix *index.Index) (*replay, error) {
	meta, err := ix.Meta()
	if err != nil {
		return nil, err
	}
	return &replay{base: ix, sorted: meta.SortedIDs, touch: map[string]FileState{}, adds: map[string]Row{}}, nil
}

// row returns the live base row with this id, or -1. A base sorted by id is searched in place
// (a one-shot query applying a small log does not pay for a map of every id); another is mapped
// once.
func (r *replay) row(id string) int {
	if r.sorted {
		n := r.base.Len()
		i := sort.Search(n, func(i int) bool {
			s, err := r.base.ID(i)
			return err != nil || s >= id
		})
		if i == n || r.isDeleted(i) {
			return -1
		}
		if s, err := r.base.ID(i); err != nil || s != id {
			return -1
		}
		return i
	}
	if r.baseRow == nil {
		r.baseRow = make(map[string]int, r.base.Len())
		for i := range r.base.Len() {
			s, err := r.base.ID(i)
			if err == nil {
				r.baseRow[s] = i
			}
		}
	}
	i, ok := r.baseRow[id]
	if !ok || r.isDeleted(i) {
		return -1
	}
	return i
}

func (r *replay) isDeleted(i int) bool { return r.del != nil && r.del[i/64]&(1<<(i%64)) != 0 }

// live reports whether id names a row.
func (r *replay) live(id string) bool {
	_, ok := r.adds[id]
	return ok || r.row(id) >= 0
}

func (r *replay) apply(o op) error {
	switch o.kind {
	case recAdd:
		for _, row := range o.rows {
			if r.live(row.ID) {
				return fmt.Errorf("add of id %q, which is present", row.ID)
			}
			r.adds[row.ID] = row
		}
	case recDelete:
		for _, id := range o.ids {
			if _, ok := r.adds[id]; ok {
				delete(r.adds, id)
				continue
			}
			i := r.row(id)
			if i < 0 {
				return fmt.Errorf("delete of id %q, which is absent", id)
			}
			if r.del == nil {
				r.del = make([]uint64, (r.base.Len()+63)/64)
			}
			r.del[i/64] |= 1 << (i % 64)
			r.deleted++
			delete(r.touch, id)
		}
	case recTouch:
		for _, t := range o.touches {
			if row, ok := r.adds[t.ID]; ok {
				row.State = t.State
				r.adds[t.ID] = row
				continue
			}
			if r.row(t.ID) < 0 {
				return fmt.Errorf("touch of id %q, which is absent", t.ID)
			}
			r.touch[t.ID] = t.State
		}
	}
	return nil
}

// view freezes the committed state into a View.
func (st *logState) view() (*View, error) {
	meta, err := st.base.Meta()
	if err != nil {
		return nil, err
	}
	files, err := filesSection(st.base)
	if err != nil {
		return nil, err
	}
	dim := st.base.Dim()
	v := &View{path: st.base.Path(), base: st.base, ident: st.ident, meta: meta, files: files,
		del: st.del, deleted: st.deleted, baseTouch: st.touch, logEnd: st.logEnd, seq: st.seq}
	v.addIDs = make([]string, 0, len(st.adds))
	for id := range st.adds {
		v.addIDs = append(v.addIDs, id)
	}
	slices.SortFunc(v.addIDs, strings.Compare)
	v.addStates = make([]FileState, len(v.addIDs))
	v.added = make([]float32, len(v.addIDs)*dim)
	for i, id := range v.addIDs {
		row := st.adds[id]
		v.addStates[i] = row.State
		copy(v.added[i*dim:], row.Vector)
	}
	v.pca, v.pcaErr = prune.FromIndex(st.base)
	v.refs.Store(1)
	return v, nil
}

// Path returns the base file's path.
func (v *View) Path() string { return v.path }

// Dim returns the number of floats per vector.
func (v *View) Dim() int { return v.base.Dim() }

// Len returns the number of live rows.
func (v *View) Len() int { return v.base.Len() - v.deleted + len(v.addIDs) }

// Meta returns the base's metadata.
func (v *View) Meta() index.Meta { return v.meta }

// Base returns the base index (its rows include deleted ones: see Deleted).
func (v *View) Base() *index.Index { return v.base }

// Deleted reports whether base row r is deleted or replaced by the log.
func (v *View) Deleted(r int) bool { return v.del != nil && v.del[r/64]&(1<<(r%64)) != 0 }

// LogBytes returns the committed length of the change log (0 without one).
func (v *View) LogBytes() int64 { return v.logEnd }

// Changed reports a base file modified in place since it was opened (index.ErrChanged): a
// collection's base is only ever replaced by rename, so this is another program's doing.
func (v *View) Changed() error { return v.base.Changed() }

// Bytes returns the size of the base file.
func (v *View) Bytes() int64 { return v.base.Bytes() }

// Prefault maps the base's pages ahead of the first scan.
func (v *View) Prefault(workers int) { v.base.Prefault(workers) }

// baseState is the file state of base row r.
func (v *View) baseState(r int, id string) FileState {
	if s, ok := v.baseTouch[id]; ok {
		return s
	}
	if v.files != nil {
		return getState(v.files[r*stateSize:])
	}
	return FileState{}
}

// Each calls fn for every live row in increasing id order, with the state of its file and its
// vector (valid until the view is released).
func (v *View) Each(fn func(id string, st FileState, vec []float32) error) error {
	dim := v.Dim()
	order, ids, err := v.baseOrder()
	if err != nil {
		return err
	}
	a := 0
	for _, r := range order {
		for a < len(v.addIDs) && v.addIDs[a] < ids[r] {
			if err := fn(v.addIDs[a], v.addStates[a], v.added[a*dim:(a+1)*dim]); err != nil {
				return err
			}
			a++
		}
		if err := fn(ids[r], v.baseState(r, ids[r]), v.base.Row(r)); err != nil {
			return err
		}
	}
	for ; a < len(v.addIDs); a++ {
		if err := fn(v.addIDs[a], v.addStates[a], v.added[a*dim:(a+1)*dim]); err != nil {
			return err
		}
	}
	return nil
}

// baseOrder returns the live base rows in id order and every base row's id.
func (v *View) baseOrder() ([]int, []string, error) {
	ids := make([]string, v.base.Len())
	order := make([]int, 0, v.base.Len()-v.deleted)
	for r := range ids {
		id, err := v.base.ID(r)
		if err != nil {
			return nil, nil, err
		}
		ids[r] = id
		if !v.Deleted(r) {
			order = append(order, r)
		}
	}
	if !v.meta.SortedIDs {
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(ids[a], ids[b]) })
	}
	return order, ids, nil
}

// acquire adds a reference; release drops one and closes the base with the last.
func (v *View) acquire() { v.refs.Add(1) }

// Release drops the caller's reference; the last one unmaps the base.
func (v *View) Release() {
	if v.refs.Add(-1) == 0 {
		v.base.Close()
	}
}

// Vector returns a copy of the live vector stored under id (a copy: the view's mapping goes away
// with its last reference). ok is false when no live row has that id.
func (v *View) Vector(id string) (vec []float32, ok bool, err error) {
	dim := v.Dim()
	if i, found := slices.BinarySearch(v.addIDs, id); found {
		return slices.Clone(v.added[i*dim : (i+1)*dim]), true, nil
	}
	r, err := v.baseRow(id)
	if err != nil || r < 0 {
		return nil, false, err
	}
	return slices.Clone(v.base.Row(r)), true, nil
}

// baseRow returns the live base row holding id, or -1. A base sorted by id is searched in place;
// another gets a map of its ids on first use.
func (v *View) baseRow(id string) (int, error) {
	n := v.base.Len()
	r := -1
	if v.meta.SortedIDs {
		var ferr error
		i := sort.Search(n, func(i int) bool {
			s, err := v.base.ID(i)
			if err != nil {
				ferr = err
				return true
			}
			return s >= id
		})
		if ferr != nil {
			return -1, ferr
		}
		if i < n {
			if s, err := v.base.ID(i); err != nil {
				return -1, err
			} else if s == id {
				r = i
			}
		}
	} else {
		v.idsOnce.Do(func() {
			m := make(map[string]int, n)
			for i := n - 1; i >= 0; i-- { // backwards: the first of duplicates wins
				s, err := v.base.ID(i)
				if err != nil {
					v.idsErr = err
					return
				}
				m[s] = i
			}
			v.idRows = m
		})
		if v.idsErr != nil {
			return -1, v.idsErr
		}
		if i, ok := v.idRows[id]; ok {
			r = i
		}
	}
	if r >= 0 && v.Deleted(r) {
		r = -1
	}
	return r, nil
}

// Rows returns every live row as one row-major matrix and the id of each of its rows: the base's
// own mapping when the change log changed nothing, otherwise a copy in id order (for whole-
// collection passes such as the duplicate finder, which need the live rows contiguous).
func (v *View) Rows() ([]float32, func(row int) (string, error), error) {
	if v.deleted == 0 && len(v.addIDs) == 0 {
		return v.base.Vectors(), v.base.ID, nil
	}
	data := make([]float32, 0, v.Len()*v.Dim())
	ids := make([]string, 0, v.Len())
	err := v.Each(func(id string, _ FileState, vec []float32) error {
		ids, data = append(ids, id), append(data, vec...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return data, func(r int) (string, error) { return ids[r], nil }, nil
}
