package index

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"
	"unsafe"

	"simsearch/internal/atomicfile"
	"simsearch/kernel"
)

// Writer builds an index file. Vectors are streamed to a temporary file in the target directory
// as they are appended; ids are kept in memory (they are small next to the vectors) and written
// after them. Commit makes the file appear at its path atomically; until then, and after Abort or
// any error, nothing exists at the path.
type Writer struct {
	path string
	dim  int
	f    *os.File
	w    *bufio.Writer
	crc  hash.Hash32

	count   uint64
	ids     []string
	idBytes uint64
	seen    map[string]int // nil when duplicates are allowed
	meta    Meta
	extra   []extraSection
	err     error // sticky: once set, the writer only aborts

	zeros, norms []float32 // scratch for checkFinite
}

// Create starts an index of dim-dimensional vectors to be committed at path. Unless
// allowDuplicateIDs, Append rejects an id that was appended before.
func Create(path string, dim int, allowDuplicateIDs bool) (*Writer, error) {
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("%s: dim %d out of range 1..%d", path, dim, MaxDim)
	}
	if err := checkHost(); err != nil {
		return nil, err
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, dim: dim, f: f, crc: crc32.New(castagnoli)}
	if !allowDuplicateIDs {
		w.seen = make(map[string]int)
	}
	w.meta.DuplicateIDs = allowDuplicateIDs
	// The header is written last, once its fields are known.
	if _, err := f.Seek(HeaderSize, io.SeekStart); err != nil {
		w.Abort()
		return nil, err
	}
	w.w = bufio.NewWriterSize(f, 1<<20)
	return w, nil
}

// NonFiniteError reports a NaN or infinite value passed to Append.
type NonFiniteError struct {
	Row, Col int // within the Append call
	Value    float32
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("row %d, column %d: value %v is not finite", e.Row, e.Col, e.Value)
}

// DuplicateIDError reports an id appended twice.
type DuplicateIDError struct {
	ID         string
	Row        int // within the Append call
	FirstIndex int // the index row that already has this id
}

func (e *DuplicateIDError) Error() string {
	return fmt.Sprintf("row %d: id %q duplicates index row %d", e.Row, e.ID, e.FirstIndex)
}

// Append adds len(ids) vectors, stored row-major in rows. A row that holds NaN or ±Inf, an empty
// or invalid id, or a duplicate id makes Append fail without adding any of the rows; the writer
// must then be aborted.
func (w *Writer) Append(ids []string, rows []float32) error {
	if w.err != nil {
		return w.err
	}
	if len(rows) != len(ids)*w.dim {
		return w.fail(fmt.Errorf("%d ids but %d values (want %d × %d)", len(ids), len(rows), len(ids), w.dim))
	}
	for r, id := range ids {
		if err := validID(id); err != nil {
			return w.fail(fmt.Errorf("row %d: %w", r, err))
		}
		if w.seen != nil {
			if first, dup := w.seen[id]; dup {
				return w.fail(&DuplicateIDError{ID: id, Row: r, FirstIndex: first})
			}
			w.seen[id] = int(w.count) + r
		}
	}
	if len(rows) > 0 {
		// The format is little-endian float32, which is the in-memory layout on every platform
		// this package builds for (see endian.go), so the rows are written as they are. The
		// checksum and the finiteness check run on another core while the kernel copies the
		// bytes: a refused row fails the writer, whose temporary file is then discarded.
		b := unsafe.Slice((*byte)(unsafe.Pointer(&rows[0])), len(rows)*4)
		checked := make(chan error, 1)
		go func() {
			w.crc.Write(b)
			checked <- w.checkFinite(rows)
		}()
		_, err := w.w.Write(b)
		if cerr := <-checked; cerr != nil {
			return w.fail(cerr)
		}
		if err != nil {
			return w.fail(err)
		}
		w.startWriteback()
	}
	for _, id := range ids {
		w.idBytes += uint64(len(id))
	}
	w.ids = append(w.ids, ids...)
	w.count += uint64(len(ids))
	return nil
}

// checkFinite finds the first row with a NaN or ±Inf, or whose squared norm reaches
// MaxSquaredNorm. Rows' squared norms are computed by the SIMD kernel at memory speed; only rows
// whose norm is not clearly below the bound (NaN and Inf included) are examined value by value.
func (w *Writer) checkFinite(rows []float32) error {
	if len(w.zeros) != w.dim {
		w.zeros = make([]float32, w.dim)
	}
	const block = 4096
	if len(w.norms) != block {
		w.norms = make([]float32, block)
	}
	for lo := 0; lo*w.dim < len(rows); lo += block {
		n := min(block, len(rows)/w.dim-lo)
		norms := w.norms[:n]
		kernel.L2SquaredBlock(w.zeros, rows[lo*w.dim:(lo+n)*w.dim], norms)
		for r, s := range norms {
			// The kernel's float32 sum is close to the exact norm; rows near the bound, and
			// those with a NaN or an infinity, are checked exactly.
			if s < MaxSquaredNorm*0.99 {
				continue
			}
			if err := checkRow(rows[(lo+r)*w.dim:(lo+r+1)*w.dim], lo+r); err != nil {
				return err
			}
		}
	}
	return nil
}

// startWriteback asks the kernel to start writing what has been written so far to disk, without
// waiting, so that the fsync in Commit has little left to do.
func (w *Writer) startWriteback() {
	if err := w.w.Flush(); err != nil {
		return // reported by the next write
	}
	syncRangeAsync(w.f)
}

func validID(id string) error {
	switch {
	case id == "":
		return errors.New("empty id")
	case !utf8.ValidString(id):
		return fmt.Errorf("id %q is not valid UTF-8", id)
	}
	for i := 0; i < len(id); i++ {
		if id[i] == 0 {
			return fmt.Errorf("id %q contains a NUL byte", id)
		}
	}
	return nil
}

// SetMeta records the metadata written with the index. Created is set by Commit when empty.
func (w *Writer) SetMeta(m Meta) {
	m.DuplicateIDs = w.meta.DuplicateIDs
	w.meta = m
}

type extraSection struct {
	kind, version uint32
	data          []byte
}

// AddSection adds an optional section (FORMAT.md, "Optional sections") of the given kind and
// section version, written after the metadata by Commit. A second section of the same kind
// replaces the first.
func (w *Writer) AddSection(kind, version uint32, data []byte) {
	if kind == 0 {
		w.fail(fmt.Errorf("%s: optional section kind 0 is not allowed", w.path))
		return
	}
	for i := range w.extra {
		if w.extra[i].kind == kind {
			w.extra[i] = extraSection{kind, version, data}
			return
		}
	}
	if len(w.extra) == MaxSections {
		w.fail(fmt.Errorf("%s: more than %d optional sections", w.path, MaxSections))
		return
	}
	w.extra = append(w.extra, extraSection{kind, version, data})
}

// Count returns the number of vectors appended so far.
func (w *Writer) Count() int { return int(w.count) }

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// Commit writes the ids, the metadata and the header, syncs the file and renames it to its path.
// On error the temporary file is removed.
func (w *Writer) Commit() error {
	if w.err != nil {
		w.Abort()
		return w.err
	}
	if err := w.commit(); err != nil {
		w.Abort()
		return err
	}
	return nil
}

func (w *Writer) commit() error {
	if w.meta.Created == "" {
		w.meta.Created = now()
	}
	meta, err := json.Marshal(w.meta)
	if err != nil {
		return err
	}
	h := layout(uint32(w.dim), w.count, w.idBytes, uint64(len(meta)))
	h.vecCRC = w.crc.Sum32()

	pos := h.vecOff + h.vecLen
	pad := func(to uint64) error {
		_, err := w.w.Write(make([]byte, to-pos))
		pos = to
		return err
	}
	section := func(off uint64, write func(io.Writer) error) (uint32, error) {
		if err := pad(off); err != nil {
			return 0, err
		}
		w.crc.Reset()
		if err := write(io.MultiWriter(w.w, w.crc)); err != nil {
			return 0, err
		}
		if err := w.w.Flush(); err != nil {
			return 0, err
		}
		return w.crc.Sum32(), nil
	}
	if h.idsCRC, err = section(h.idsOff, w.writeIDs); err != nil {
		return err
	}
	pos = h.idsOff + h.idsLen
	if h.metaCRC, err = section(h.metaOff, func(out io.Writer) error { _, err := out.Write(meta); return err }); err != nil {
		return err
	}
	pos = h.metaEnd()
	for _, x := range w.extra {
		e := h.addSection(x.kind, x.version, uint64(len(x.data)))
		if e.crc, err = section(e.off, func(out io.Writer) error { _, err := out.Write(x.data); return err }); err != nil {
			return err
		}
		pos = e.off + e.len
	}
	if _, err := w.f.WriteAt(h.marshal(), 0); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(w.f.Name(), w.path); err != nil {
		return err
	}
	w.f = nil
	atomicfile.SyncDir(filepath.Dir(w.path))
	return nil
}

func (w *Writer) writeIDs(out io.Writer) error {
	var b [8]byte
	var off uint64
	for i := 0; i <= len(w.ids); i++ {
		binary.LittleEndian.PutUint64(b[:], off)
		if _, err := out.Write(b[:]); err != nil {
			return err
		}
		if i < len(w.ids) {
			off += uint64(len(w.ids[i]))
		}
	}
	for _, id := range w.ids {
		if _, err := io.WriteString(out, id); err != nil {
			return err
		}
	}
	return nil
}

// Abort discards everything written; it is safe to call more than once and after Commit.
func (w *Writer) Abort() {
	if w.f == nil {
		return
	}
	w.f.Close()
	os.Remove(w.f.Name())
	w.f = nil
}
