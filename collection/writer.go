package collection

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"simsearch/index"
	"simsearch/internal/atomicfile"
	"simsearch/prune"
)

// Writer changes a collection. It holds the collection's lock (one writer at a time; readers
// never wait), appends each Apply to the change log durably, and makes the changes visible to
// readers all at once with Commit. A writer that dies before Commit changes nothing that readers
// see. The rows it appended stay in the log, offered to every later writer by Reused until one
// adds them to the collection: embedding work is never thrown away, whatever calls follow
// (FORMAT.md, "Writers").
type Writer struct {
	path    string
	lock    *os.File
	st      *logState // the committed state with this writer's changes applied
	log     *os.File  // the log of this base, read-write; nil until there is one
	end     int64     // where this writer appends
	ready   bool      // the log is prepared for this writer's records (see prepare)
	dirty   bool      // records appended since the last commit
	written int64     // bytes this writer appended
	pca     *prune.Section
	spare   map[reuseKey]spareRow
	forgot  map[reuseKey]bool // spare rows ForgetReusable dropped, across a compaction's reopen
	root    string            // a root for the next compaction to record; "" for none
}

type reuseKey struct {
	id          string
	size, mtime int64
}

// spareRow is a row embedded by a call that did not commit it, and the log it is in.
type spareRow struct {
	rowRef
	f *os.File
}

// ErrLocked reports that another process is changing the collection.
var ErrLocked = errors.New("another simsearch process is changing this collection")

// OpenWriter locks the collection at path and reads its change log: the committed state, and
// the rows of uncommitted records, kept for Reused. It writes nothing until the first Apply. If
// the base does not exist and create is not nil, an empty base of create.Dim floats per row
// with create.Meta is written first.
func OpenWriter(path string, create *NewBase) (*Writer, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (an update, add, remove or compact is running; try again when it ends)", path, ErrLocked)
		}
		return nil, fmt.Errorf("%s: locking: %w", path, err)
	}
	// Holding the lock, any temporary file of a writer that died (a compaction killed before its
	// rename) is garbage.
	atomicfile.RemoveStale(filepath.Dir(path))
	w := &Writer{path: path, lock: lock, forgot: map[reuseKey]bool{}}
	if err := w.open(create); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// NewBase describes the empty base OpenWriter creates for a new collection.
type NewBase struct {
	Dim  int
	Meta index.Meta
}

func (w *Writer) open(create *NewBase) error {
	if _, err := os.Stat(w.path); errors.Is(err, fs.ErrNotExist) && create != nil {
		create.Meta.SortedIDs = true
		iw, err := index.Create(w.path, create.Dim, false)
		if err != nil {
			return err
		}
		iw.SetMeta(create.Meta)
		iw.AddSection(index.SectionFiles, filesVersion, []byte{})
		if err := iw.Commit(); err != nil {
			return err
		}
	}
	ix, err := index.Open(w.path)
	if err != nil {
		return err
	}
	f, err := openLog(w.path, os.O_RDWR)
	if err != nil {
		ix.Close()
		return err
	}
	st, err := readLogState(ix, f, true)
	if err != nil {
		closeFile(f)
		ix.Close()
		return err
	}
	w.st, w.ready, w.pca = st, false, st.pca
	if st.logExists {
		w.log, w.end = f, st.intact
	}
	w.spare = map[reuseKey]spareRow{}
	for _, r := range st.spare {
		k := reuseKey{r.ID, r.State.Size, r.State.MtimeNS}
		if w.forgot[k] {
			continue
		}
		if s, ok := st.stateOf(r.ID); ok && s == r.State {
			delete(w.spare, k) // in the collection already: reused, or committed by its own call
			continue
		}
		w.spare[k] = spareRow{r, f}
	}
	return nil
}

// prepare readies the log for this writer's first records and returns the records to write
// before them (the writer is ready once they are appended). The log is only ever appended to:
// a version-1 log is first copied whole under a version-2 header (the records keep their
// offsets), torn bytes after the intact records are cut, and a tail of uncommitted records is
// closed by an abort record, so that this writer's commit does not commit them while their rows
// stay in the log for reuse. A stale log (of an older base) is replaced by a new log that holds
// its uncommitted rows, aborted.
func (w *Writer) prepare() ([]byte, error) {
	st := w.st
	switch {
	case st.logExists && st.version == LogVersion:
		if st.size > st.intact {
			if err := w.log.Truncate(st.intact); err != nil {
				return nil, fmt.Errorf("%s: %w", LogPath(w.path), err)
			}
		}
	case st.logExists: // version 1
		old := w.log
		f, end, err := w.newLog(func(f *os.File) (int64, error) {
			n, err := io.Copy(f, io.NewSectionReader(old, logHeaderSize, st.intact-logHeaderSize))
			return logHeaderSize + n, err
		})
		if err != nil {
			return nil, err
		}
		w.repoint(old, f, nil)
		old.Close()
		w.log, w.end, st.file, st.version, st.size, st.intact = f, end, f, LogVersion, end, end
	default: // none, or stale
		old := st.file
		moved := map[reuseKey]rowRef{}
		f, end, err := w.newLog(func(f *os.File) (int64, error) { return w.writeSpare(f, moved) })
		if err != nil {
			return nil, err
		}
		w.repoint(old, f, moved)
		closeFile(old)
		w.log, w.end, st.file, st.version, st.size = f, end, f, LogVersion, end
		st.logExists, st.stale, st.logEnd, st.spanEnd, st.intact = true, false, logHeaderSize, end, end
	}
	if st.spanEnd < st.intact {
		return record(abortBody()), nil
	}
	return nil, nil
}

// makeReady makes the log ready for this writer's records, if it is not yet: see prepare.
func (w *Writer) makeReady() error {
	if w.ready {
		return nil
	}
	prefix, err := w.prepare()
	if err == nil && prefix != nil {
		err = w.append(prefix)
	}
	if err != nil {
		return err
	}
	w.ready, w.st.spanEnd = true, w.end
	return nil
}

// newLog writes a new log for the current base under a temporary name, its header then what
// content writes, syncs it and renames it into place. It returns the file and its size.
func (w *Writer) newLog(content func(f *os.File) (int64, error)) (*os.File, int64, error) {
	f, err := atomicfile.Create(LogPath(w.path))
	if err != nil {
		return nil, 0, err
	}
	end := int64(logHeaderSize)
	if _, err = f.Write(logHeader(w.st.base.Dim(), w.st.ident)); err == nil {
		end, err = content(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(f.Name(), LogPath(w.path))
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, fmt.Errorf("%s: %w", LogPath(w.path), err)
	}
	atomicfile.SyncDir(filepath.Dir(w.path))
	return f, end, nil
}

// writeSpare writes the spare rows to a new log f (after its header) as add records followed by
// an abort, and records in moved where each row now is. It returns the log's size.
func (w *Writer) writeSpare(f *os.File, moved map[reuseKey]rowRef) (int64, error) {
	end := int64(logHeaderSize)
	if len(w.spare) == 0 {
		return end, nil
	}
	// In the order of the old log (so that the same log gives the same bytes), each record's rows
	// read together: readVectors reads neighbouring rows in one call.
	keys := make([]reuseKey, 0, len(w.spare))
	for k := range w.spare {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b reuseKey) int { return cmp.Compare(w.spare[a].vec, w.spare[b].vec) })
	dim := w.Dim()
	per := w.rowsPerRecord()
	for lo := 0; lo < len(keys); lo += per {
		part := keys[lo:min(lo+per, len(keys))]
		rows := make([]Row, len(part))
		vecs := make([]float32, len(part)*dim)
		for i := 0; i < len(part); {
			f := w.spare[part[i]].f
			j := i
			var refs []rowRef
			for ; j < len(part) && w.spare[part[j]].f == f; j++ {
				refs = append(refs, w.spare[part[j]].rowRef)
			}
			if err := readVectors(f, refs, func(r rowRef) int64 { return r.vec }, dim, vecs[i*dim:j*dim]); err != nil {
				return end, err
			}
			i = j
		}
		for i, k := range part {
			s := w.spare[k]
			rows[i] = Row{ID: s.ID, State: s.State, Vector: vecs[i*dim : (i+1)*dim : (i+1)*dim]}
		}
		buf, refs := w.encodeAdd(rows, end)
		if _, err := f.Write(buf); err != nil {
			return end, err
		}
		for i, k := range part {
			moved[k] = refs[i]
		}
		end += int64(len(buf))
	}
	abort := record(abortBody())
	if _, err := f.Write(abort); err != nil {
		return end, err
	}
	return end + int64(len(abort)), nil
}

// repoint moves the spare rows read from old to the new log f: at the same offsets (a copy), or
// where moved says.
func (w *Writer) repoint(old, f *os.File, moved map[reuseKey]rowRef) {
	for k, s := range w.spare {
		if s.f != old {
			continue
		}
		if moved != nil {
			s.rowRef = moved[k]
		}
		s.f = f
		w.spare[k] = s
	}
}

// Reused returns the vector that a call which did not commit it embedded for this id from a
// file of this size and modification time, if there is one.
func (w *Writer) Reused(id string, size, mtimeNS int64) (Row, bool) {
	s, ok := w.spare[reuseKey{id, size, mtimeNS}]
	if !ok {
		return Row{}, false
	}
	vec := make([]float32, w.Dim())
	if err := readVectors(s.f, []rowRef{s.rowRef}, func(r rowRef) int64 { return r.vec }, len(vec), vec); err != nil {
		return Row{}, false // unreadable: embedding it again is the way out
	}
	return Row{ID: s.ID, State: s.State, Vector: vec}, true
}

// ReusableRows returns how many rows Reused can offer.
func (w *Writer) ReusableRows() int { return len(w.spare) }

// ForgetReusable drops the reusable rows for which keep returns false (an update knows which
// files exist), so that a compaction does not carry them over. Until then the log still holds
// them; a later writer offers them again.
func (w *Writer) ForgetReusable(keep func(id string, size, mtimeNS int64) bool) {
	for k := range w.spare {
		if !keep(k.id, k.size, k.mtime) {
			delete(w.spare, k)
			w.forgot[k] = true
		}
	}
}

// Path returns the base file's path.
func (w *Writer) Path() string { return w.path }

// Dim returns the number of floats per vector.
func (w *Writer) Dim() int { return w.st.base.Dim() }

// Meta returns the base's metadata.
func (w *Writer) Meta() (index.Meta, error) { return w.st.base.Meta() }

// Has reports whether id names a live row, this writer's changes included.
func (w *Writer) Has(id string) bool { return w.st.live(id) }

// States returns every live row's id and file state, this writer's changes included.
func (w *Writer) States() (map[string]FileState, error) {
	base := w.st.base
	out := make(map[string]FileState, base.Len()-w.st.deleted+len(w.st.adds))
	for r := range base.Len() {
		if w.st.isDeleted(r) {
			continue
		}
		id, err := base.ID(r)
		if err != nil {
			return nil, err
		}
		out[id] = w.st.baseState(r, id)
	}
	for id, a := range w.st.adds {
		out[id] = a.State
	}
	return out, nil
}

// Batch is one durable step of a call: ids to delete, file states to update and rows to add,
// applied in that order (a changed file is a delete and an add of its id).
type Batch struct {
	Delete []string
	Touch  []Touch
	Add    []Row
}

// Apply checks b against the collection and appends it to the log, durably (fsync). Nothing is
// visible to readers before Commit. A batch that does not fit the collection (deleting an absent
// id, adding a present one, a vector of the wrong length or not finite) is refused whole.
func (w *Writer) Apply(b Batch) error {
	dim := w.Dim()
	seen := map[string]bool{}
	for _, id := range b.Delete {
		if !w.st.live(id) || seen[id] {
			return fmt.Errorf("%s: no row has id %q", w.path, id)
		}
		seen[id] = true
	}
	for _, t := range b.Touch {
		if !w.st.live(t.ID) || seen[t.ID] {
			return fmt.Errorf("%s: no row has id %q", w.path, t.ID)
		}
	}
	added := map[string]bool{}
	for _, r := range b.Add {
		if err := ValidID(r.ID); err != nil {
			return fmt.Errorf("%s: %v", w.path, err)
		}
		if (w.st.live(r.ID) && !seen[r.ID]) || added[r.ID] {
			return fmt.Errorf("%s: id %q is present already", w.path, r.ID)
		}
		added[r.ID] = true
		if len(r.Vector) != dim {
			return fmt.Errorf("%s: id %q: vector of %d floats, the index holds %d", w.path, r.ID, len(r.Vector), dim)
		}
		for c, x := range r.Vector {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%s: id %q: column %d is %v", w.path, r.ID, c, x)
			}
		}
	}
	if len(b.Delete)+len(b.Touch)+len(b.Add) == 0 {
		return nil
	}
	// The first append also carries prepare's records (an abort), so that it costs one fsync.
	var buf []byte
	if !w.ready {
		var err error
		if buf, err = w.prepare(); err != nil {
			return err
		}
	}
	prefix := int64(len(buf))
	var ops []op
	if len(b.Delete) > 0 {
		buf = append(buf, record(deleteBody(b.Delete))...)
		ops = append(ops, op{kind: recDelete, ids: b.Delete})
	}
	if len(b.Touch) > 0 {
		buf = append(buf, record(touchBody(b.Touch))...)
		ops = append(ops, op{kind: recTouch, touches: b.Touch})
	}
	per := w.rowsPerRecord()
	for lo := 0; lo < len(b.Add); lo += per {
		rec, refs := w.encodeAdd(b.Add[lo:min(lo+per, len(b.Add))], w.end+int64(len(buf)))
		buf = append(buf, rec...)
		ops = append(ops, op{kind: recAddSig, rows: refs})
	}
	start := w.end
	if err := w.append(buf); err != nil {
		return err
	}
	if !w.ready {
		w.ready, w.st.spanEnd = true, start+prefix
	}
	for _, o := range ops {
		if err := w.st.apply(o); err != nil {
			return err // checked above; unreachable unless the state is inconsistent
		}
	}
	w.dirty = true
	return nil
}

// rowsPerRecord is how many rows an add record holds at most (recordBytes).
func (w *Writer) rowsPerRecord() int {
	row := 4*(w.Dim()+1) + stateSize + 64
	if w.pca != nil {
		row += 4 * w.pca.Basis.Width()
	}
	return max(1, recordBytes/row)
}

// encodeAdd encodes rows as one add record to be written at byte at of the log, with their
// signatures on the base's basis when it has one, and returns it with the rows as the log will
// hold them.
func (w *Writer) encodeAdd(rows []Row, at int64) ([]byte, []rowRef) {
	width, norm := 0, 0.0
	var sigs []float32
	if w.pca != nil {
		b := w.pca.Basis
		width = b.Width()
		flat := make([]float32, 0, len(rows)*b.Dim)
		for _, r := range rows {
			flat = append(flat, r.Vector...)
		}
		sigs = make([]float32, len(rows)*width)
		norm = b.ProjectRows(flat, sigs)
	}
	body, vec, sig := addBody(rows, sigs, width, norm)
	refs := make([]rowRef, len(rows))
	at += recordHead
	for i, r := range rows {
		refs[i] = rowRef{ID: r.ID, State: r.State, vec: at + int64(vec[i])}
		if width > 0 {
			refs[i].sig, refs[i].norm = at+int64(sig[i]), norm
		}
	}
	return record(body), refs
}

// append writes buf at the end of the log and syncs it. On an error, what it may have written is
// cut, so that the next append does not follow it.
func (w *Writer) append(buf []byte) error {
	_, err := w.log.WriteAt(buf, w.end)
	if err == nil {
		err = w.log.Sync()
	}
	if err != nil {
		w.log.Truncate(w.end)
		return fmt.Errorf("%s: %w", LogPath(w.path), err)
	}
	w.end += int64(len(buf))
	w.written += int64(len(buf))
	w.st.size, w.st.intact = w.end, w.end
	return nil
}

// Commit makes everything applied since the last commit visible to readers at once: it appends
// a commit record and syncs it. With nothing applied, it writes nothing.
func (w *Writer) Commit() error {
	if !w.dirty {
		return nil
	}
	w.st.seq++
	if err := w.append(record(commitBody(w.st.seq, time.Now().UnixNano()))); err != nil {
		return err
	}
	w.st.logEnd, w.st.spanEnd = w.end, w.end
	w.dirty = false
	// Rows this call took from the spare ones are in the collection now.
	for k, s := range w.spare {
		if st, ok := w.st.stateOf(k.id); ok && st == s.State {
			delete(w.spare, k)
		}
	}
	return nil
}

// Written returns the bytes this writer appended to the log (compaction not included).
func (w *Writer) Written() int64 { return w.written }

// SetRoot records root as the folder the collection's ids are relative to, in the base's
// metadata: the next Compact writes it (NeedsCompaction reports true until then).
func (w *Writer) SetRoot(root string) { w.root = root }

// NeedsCompaction reports whether the log has grown enough, next to the base, that folding it
// into a new base is worth its cost: a log over a tenth of the base's bytes, or deleted rows
// over a tenth of the base's rows; or whether SetRoot asks for a new base.
func (w *Writer) NeedsCompaction() bool {
	if w.root != "" {
		return true
	}
	if w.st.logEnd <= logHeaderSize {
		return false
	}
	return w.st.intact > w.st.base.Bytes()/10 || w.st.deleted > w.st.base.Len()/10
}

// Close releases the lock. Changes applied after the last Commit stay in the log as an
// uncommitted tail that readers ignore and later writers reuse.
func (w *Writer) Close() error {
	if w.st != nil {
		closeFile(w.st.file)
		if w.log != w.st.file {
			closeFile(w.log)
		}
		w.st.base.Close()
	}
	return w.lock.Close() // closing the descriptor releases the flock
}
