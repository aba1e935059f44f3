package collection

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"simsearch/index"
	"simsearch/internal/atomicfile"
)

// Writer changes a collection. It holds the collection's lock (one writer at a time; readers
// never wait), appends each Apply to the change log durably, and makes the changes visible to
// readers all at once with Commit. A writer that dies before Commit changes nothing that readers
// see; the rows it appended are offered to the next writer by Reused, so its embedding work is
// not lost.
type Writer struct {
	path    string
	lock    *os.File
	log     *os.File
	st      *logState // the committed state with this writer's changes applied
	reuse   map[reuseKey]Row
	end     int64 // log size
	dirty   bool  // records appended since the last commit
	written int64 // bytes this writer appended
}

type reuseKey struct {
	id          string
	size, mtime int64
}

// ErrLocked reports that another process is changing the collection.
var ErrLocked = errors.New("another simsearch process is changing this collection")

// OpenWriter locks the collection at path and prepares its change log: a log left over from
// another base is replaced by the first Apply, and an uncommitted tail (a writer that crashed) is cut off after its
// rows are kept for Reused. If the base does not exist and create is not nil, an empty base of
// create.Dim floats per row with create.Meta is written first.
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
	w := &Writer{path: path, lock: lock}
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
	st, err := readLogState(ix)
	if err != nil {
		ix.Close()
		return err
	}
	w.st = st
	w.reuse = map[reuseKey]Row{}
	for _, o := range st.tail {
		for _, r := range o.rows {
			w.reuse[reuseKey{r.ID, r.State.Size, r.State.MtimeNS}] = r
		}
	}
	if !st.logExists {
		return nil // made by the first append: a call that changes nothing writes nothing
	}
	w.log, err = os.OpenFile(LogPath(w.path), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := w.log.Truncate(st.logEnd); err != nil {
		return err
	}
	w.end = st.logEnd
	return w.log.Sync()
}

// newLog replaces whatever log is there by an empty one for the current base, atomically.
func (w *Writer) newLog() error {
	f, err := atomicfile.Create(LogPath(w.path))
	if err != nil {
		return err
	}
	if _, err = f.Write(logHeader(w.st.base.Dim(), w.st.ident)); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(f.Name(), LogPath(w.path))
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	syncDir(filepath.Dir(w.path))
	w.log, w.end = f, logHeaderSize
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Reused returns the vector a crashed writer embedded for this id from a file of this size and
// modification time, if its record survived.
func (w *Writer) Reused(id string, size, mtimeNS int64) (Row, bool) {
	r, ok := w.reuse[reuseKey{id, size, mtimeNS}]
	return r, ok
}

// ReusableRows returns how many rows a crashed writer left for Reused.
func (w *Writer) ReusableRows() int { return len(w.reuse) }

// Dim returns the number of floats per vector.
func (w *Writer) Dim() int { return w.st.base.Dim() }

// Meta returns the base's metadata.
func (w *Writer) Meta() (index.Meta, error) { return w.st.base.Meta() }

// Has reports whether id names a live row, this writer's changes included.
func (w *Writer) Has(id string) bool { return w.st.live(id) }

// States returns every live row's id and file state, this writer's changes included.
func (w *Writer) States() (map[string]FileState, error) {
	v, err := w.st.view()
	if err != nil {
		return nil, err
	}
	out := make(map[string]FileState, v.Len())
	err = v.Each(func(id string, st FileState, _ []float32) error {
		out[id] = st
		return nil
	})
	return out, err
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
		if err := validID(r.ID); err != nil {
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
	var buf []byte
	var ops []op
	if len(b.Delete) > 0 {
		buf = append(buf, record(deleteBody(b.Delete))...)
		ops = append(ops, op{kind: recDelete, ids: b.Delete})
	}
	if len(b.Touch) > 0 {
		buf = append(buf, record(touchBody(b.Touch))...)
		ops = append(ops, op{kind: recTouch, touches: b.Touch})
	}
	if len(b.Add) > 0 {
		buf = append(buf, record(addBody(b.Add))...)
		ops = append(ops, op{kind: recAdd, rows: b.Add})
	}
	if len(buf) == 0 {
		return nil
	}
	if err := w.append(buf); err != nil {
		return err
	}
	for _, o := range ops {
		if o.kind == recAdd {
			// The writer keeps ids and states only: the vectors are in the log, and memory stays
			// bounded by a batch however many rows a call adds.
			o.rows = stripVectors(o.rows)
		}
		if err := w.st.apply(o); err != nil {
			return err // checked above; unreachable unless the state is inconsistent
		}
	}
	w.dirty = true
	return nil
}

func (w *Writer) append(buf []byte) error {
	if w.log == nil {
		if err := w.newLog(); err != nil {
			return err
		}
	}
	if _, err := w.log.WriteAt(buf, w.end); err != nil {
		return fmt.Errorf("%s: %w", LogPath(w.path), err)
	}
	if err := w.log.Sync(); err != nil {
		return fmt.Errorf("%s: %w", LogPath(w.path), err)
	}
	w.end += int64(len(buf))
	w.written += int64(len(buf))
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
	w.st.logEnd = w.end
	w.dirty = false
	return nil
}

// Written returns the bytes this writer appended to the log (compaction not included).
func (w *Writer) Written() int64 { return w.written }

// NeedsCompaction reports whether the log has grown enough, next to the base, that folding it
// into a new base is worth its cost: a log over a tenth of the base's bytes, or deleted rows
// over a tenth of the base's rows.
func (w *Writer) NeedsCompaction() bool {
	if w.st.logEnd <= logHeaderSize {
		return false
	}
	return w.st.logEnd > w.st.base.Bytes()/10 || w.st.deleted > w.st.base.Len()/10
}

// Close releases the lock. Changes applied after the last Commit stay in the log as an
// uncommitted tail that readers ignore and the next writer reuses.
func (w *Writer) Close() error {
	if w.log != nil {
		w.log.Close()
	}
	if w.st != nil {
		w.st.base.Close()
	}
	return w.lock.Close() // closing the descriptor releases the flock
}

func stripVectors(rows []Row) []Row {
	out := make([]Row, len(rows))
	for i, r := range rows {
		out[i] = Row{ID: r.ID, State: r.State}
	}
	return out
}
