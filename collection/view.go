// Package collection is a living collection of vectors: an immutable base index file (package
// index) plus an append-only change log beside it that adds, deletes and re-describes rows
// without rewriting the base. Readers see the base with the log's committed changes applied;
// one writer at a time appends to the log and commits atomically; compaction folds the log
// into a new base. FORMAT.md in the index package specifies the log ("The change log").
package collection

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
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
// rows added by the log as one contiguous block sorted by id, with their signatures on the base's
// PCA basis beside them so that the pruned search covers them too. It is immutable; methods are
// safe for concurrent use until Release drops the last reference.
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
	addPCA *prune.Section // the added rows' signatures on pca's basis; nil when pca is

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
		f, err := openLog(path, os.O_RDONLY)
		var st *logState
		if err == nil {
			st, err = readLogState(ix, f, false)
		}
		after, serr := os.Stat(path)
		if serr == nil && !os.SameFile(before, after) && attempt < 10 {
			closeFile(f)
			ix.Close()
			continue
		}
		var v *View
		if err == nil {
			v, err = st.view()
		}
		closeFile(f) // the view holds what it needs of the log in memory
		if err != nil {
			ix.Close()
			return nil, err
		}
		return v, nil
	}
}

// openLog opens the change log of the base at path, or returns nil if there is none.
func openLog(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(LogPath(path), flag, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// logState is a base and its log, read: the committed state, and what lies after it.
type logState struct {
	*replay
	ident     Identity
	pca       *prune.Section // the base's PCA section; nil: none (or damaged: pcaErr)
	pcaErr    error
	file      *os.File // the log the rows are read from; nil without one
	size      int64    // the log's size when read
	version   int      // the log's format version
	logExists bool     // a log for this base exists (else none, or a stale one)
	stale     bool     // a log for another base is there
	logEnd    int64    // where the last commit ends
	spanEnd   int64    // where the last commit or abort ends: records after it are a tail (pending)
	intact    int64    // where the intact records end (≥ spanEnd); torn bytes follow
	seq       uint64
	// spare lists the rows of add records that are not part of the collection: in spans that an
	// abort voided and in the tail (a stale log's are all of its uncommitted ones). Writers offer
	// them for reuse: embedding work that is never thrown away.
	spare []rowRef
}

// readLogState reads the log f (nil: none) of base ix. With spare, it also gathers the rows of
// the uncommitted records (of a stale log, too), for a writer.
func readLogState(ix *index.Index, f *os.File, spare bool) (*logState, error) {
	rp, err := newReplay(ix)
	if err != nil {
		return nil, err
	}
	st := &logState{replay: rp, ident: identityOf(ix.Header()), file: f}
	st.pca, st.pcaErr = prune.FromIndex(ix)
	if f == nil {
		return st, nil
	}
	name := f.Name()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st.size = fi.Size()
	head := make([]byte, logHeaderSize)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	id, dim, version, err := parseLogHeader(head[:n])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	st.version = version
	if id != st.ident {
		st.stale = true
		if spare && dim == ix.Dim() {
			// Its committed records are in the base (a compaction wrote it); what it did not
			// commit is embedding work to keep. A damaged stale log gives what precedes the damage.
			var pending []op
			scanLog(f, st.size, version, dim, 0, func(o op, _, _ int64) error {
				switch o.kind {
				case recCommit:
					pending = pending[:0]
				case recAbort:
					st.spare = appendRows(st.spare, pending)
					pending = pending[:0]
				default:
					pending = append(pending, o)
				}
				return nil
			})
			st.spare = appendRows(st.spare, pending)
		}
		return st, nil
	}
	if dim != ix.Dim() {
		return nil, fmt.Errorf("%s: %w: rows of dim %d, the base holds dim %d", name, ErrFormat, dim, ix.Dim())
	}
	sigWidth := 0
	if st.pca != nil {
		sigWidth = st.pca.Basis.Width()
	}
	st.logExists, st.logEnd, st.spanEnd = true, logHeaderSize, logHeaderSize
	var pending []op
	st.intact, err = scanLog(f, st.size, version, dim, sigWidth, func(o op, _, end int64) error {
		switch o.kind {
		case recCommit:
			for _, p := range pending {
				if err := st.apply(p); err != nil {
					return fmt.Errorf("%w: %v", ErrFormat, err)
				}
			}
			pending = pending[:0]
			st.logEnd, st.spanEnd, st.seq = end, end, o.seq
		case recAbort:
			if spare {
				st.spare = appendRows(st.spare, pending)
			}
			pending = pending[:0]
			st.spanEnd = end
		default:
			pending = append(pending, o)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if spare {
		st.spare = appendRows(st.spare, pending)
	}
	return st, nil
}

// appendRows appends the rows of the add records among ops.
func appendRows(dst []rowRef, ops []op) []rowRef {
	for _, o := range ops {
		dst = append(dst, o.rows...)
	}
	return dst
}

// replay applies log records to a base.
type replay struct {
	base    *index.Index
	files   []byte         // the base's Files section, nil if none
	sorted  bool           // the base's rows are in id order
	baseRow map[string]int // built on first use when not sorted
	del     []uint64
	deleted int
	touch   map[string]FileState
	adds    map[string]rowRef
}

func newReplay(ix *index.Index) (*replay, error) {
	meta, err := ix.Meta()
	if err != nil {
		return nil, err
	}
	files, err := filesSection(ix)
	if err != nil {
		return nil, err
	}
	return &replay{base: ix, files: files, sorted: meta.SortedIDs, touch: map[string]FileState{}, adds: map[string]rowRef{}}, nil
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
	case recAdd, recAddSig:
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

// stateOf returns the file state of the live row id.
func (r *replay) stateOf(id string) (FileState, bool) {
	if a, ok := r.adds[id]; ok {
		return a.State, true
	}
	i := r.row(id)
	if i < 0 {
		return FileState{}, false
	}
	return r.baseState(i, id), true
}

// baseState is the file state of base row i, whose id is id.
func (r *replay) baseState(i int, id string) FileState {
	if s, ok := r.touch[id]; ok {
		return s
	}
	if r.files != nil {
		return getState(r.files[i*stateSize:])
	}
	return FileState{}
}

// view freezes the committed state into a View: the added rows are read from the log into one
// block, the only copy of them in memory.
func (st *logState) view() (*View, error) {
	meta, err := st.base.Meta()
	if err != nil {
		return nil, err
	}
	dim := st.base.Dim()
	v := &View{path: st.base.Path(), base: st.base, ident: st.ident, meta: meta, files: st.files,
		del: st.del, deleted: st.deleted, baseTouch: st.touch, logEnd: st.logEnd, seq: st.seq,
		pca: st.pca, pcaErr: st.pcaErr}
	v.addIDs = make([]string, 0, len(st.adds))
	for id := range st.adds {
		v.addIDs = append(v.addIDs, id)
	}
	slices.SortFunc(v.addIDs, strings.Compare)
	refs := make([]rowRef, len(v.addIDs))
	v.addStates = make([]FileState, len(v.addIDs))
	for i, id := range v.addIDs {
		refs[i] = st.adds[id]
		v.addStates[i] = refs[i].State
	}
	v.added = make([]float32, len(refs)*dim)
	if err := readVectors(st.file, refs, func(r rowRef) int64 { return r.vec }, dim, v.added); err != nil {
		return nil, err
	}
	if st.pca != nil && len(refs) > 0 {
		if v.addPCA, err = st.signatures(refs, v.added); err != nil {
			return nil, err
		}
	}
	v.refs.Store(1)
	return v, nil
}

// signatures returns the added rows' signatures on the base's basis: read from the log where
// the writer stored them, computed for the rows of records without (a version-1 log's).
func (st *logState) signatures(refs []rowRef, rows []float32) (*prune.Section, error) {
	b := st.pca.Basis
	w, dim := b.Width(), b.Dim
	sec := prune.NewSection(b, len(refs))
	var stored, missing []int
	for i, r := range refs {
		if r.sig != 0 {
			stored = append(stored, i)
			sec.MaxNorm = max(sec.MaxNorm, r.norm)
		} else {
			missing = append(missing, i)
		}
	}
	sub := make([]rowRef, len(stored))
	for k, i := range stored {
		sub[k] = refs[i]
	}
	got := make([]float32, len(stored)*w)
	if err := readVectors(st.file, sub, func(r rowRef) int64 { return r.sig }, w, got); err != nil {
		return nil, err
	}
	for k, i := range stored {
		sec.SetSignature(i, got[k*w:(k+1)*w])
	}
	if len(missing) > 0 {
		in, out := make([]float32, len(missing)*dim), make([]float32, len(missing)*w)
		for k, i := range missing {
			copy(in[k*dim:], rows[i*dim:(i+1)*dim])
		}
		sec.MaxNorm = max(sec.MaxNorm, b.ProjectRows(in, out))
		for k, i := range missing {
			sec.SetSignature(i, out[k*w:(k+1)*w])
		}
	}
	return sec, nil
}

// readVectors reads n float32 values at at(refs[i]) of f into dst[i*n:], in file order, one read
// for each run of rows that lie close together (a batch's rows do).
func readVectors(f io.ReaderAt, refs []rowRef, at func(rowRef) int64, n int, dst []float32) error {
	if len(refs) == 0 {
		return nil
	}
	order := make([]int, len(refs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(at(refs[a]), at(refs[b])) })
	const window = 1 << 20
	row := int64(4 * n)
	var buf []byte
	for lo := 0; lo < len(order); {
		start := at(refs[order[lo]])
		hi := lo + 1
		for hi < len(order) && at(refs[order[hi]])+row-start <= max(window, row) {
			hi++
		}
		need := at(refs[order[hi-1]]) + row - start
		if int64(cap(buf)) < need {
			buf = make([]byte, need)
		}
		buf = buf[:need]
		if _, err := f.ReadAt(buf, start); err != nil {
			return fmt.Errorf("reading the change log: %w", err)
		}
		for _, i := range order[lo:hi] {
			b := buf[at(refs[i])-start:]
			d := dst[i*n : (i+1)*n]
			for c := range d {
				d[c] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*c:]))
			}
		}
		lo = hi
	}
	return nil
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
