// Package index reads and writes simsearch index files: a fixed header, one contiguous block of
// float32 vectors that is used in place through a read-only memory mapping, the ids, and JSON
// metadata. FORMAT.md in this directory specifies the format.
package index

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"unsafe"

	"github.com/edsrzf/mmap-go"
)

// Index is an open, memory-mapped index file. Its methods are safe for concurrent use; the slices
// it returns alias the mapping and are valid until Close.
type Index struct {
	path    string
	m       mmap.MMap
	h       header
	vectors []float32
	offsets []byte // (count+1) little-endian uint64
	idBytes []byte
	f       *os.File    // kept open so that Changed can see the mapped file itself
	st      os.FileInfo // f's state when it was mapped
}

// Open maps the index file at path and validates its header. It reads no more than the header
// and two id offsets, so it costs the same for any number of vectors.
func Open(path string) (*Index, error) {
	if err := checkHost(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	ix, err := mapFile(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return ix, nil
}

func mapFile(path string, f *os.File) (*Index, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", path, ErrFormat)
	}
	size := uint64(st.Size())
	if size < HeaderSize {
		_, err := parseHeader(nil, size)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	ix, err := fromMapping(path, m, size)
	if err != nil {
		m.Unmap()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ix.f, ix.st = f, st
	return ix, nil
}

// ErrChanged is wrapped by the errors Changed returns.
var ErrChanged = errors.New("the index file was modified in place")

// Changed reports whether the mapped file was modified in place (truncated, rewritten, touched)
// since Open, at the cost of one fstat. Such changes show through the mapping, and reading a page
// that a truncation removed raises SIGBUS; an index must be replaced by renaming a new file over
// it, which leaves the open file, and this mapping, as they were.
func (ix *Index) Changed() error {
	st, err := ix.f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", ix.path, err)
	}
	if st.Size() != ix.st.Size() || !st.ModTime().Equal(ix.st.ModTime()) {
		return fmt.Errorf("%s: %w since it was opened (%d bytes then, %d now): replace an index by renaming a new file over it", ix.path, ErrChanged, ix.st.Size(), st.Size())
	}
	return nil
}

func fromMapping(path string, m mmap.MMap, size uint64) (*Index, error) {
	h, err := parseHeader(m, size)
	if err != nil {
		return nil, err
	}
	ix := &Index{path: path, m: m, h: h}
	if h.count > 0 {
		// The vectors start at a page boundary of a page-aligned mapping, so the float32 view is
		// aligned; little-endian storage is the in-memory layout (endian.go).
		ix.vectors = unsafe.Slice((*float32)(unsafe.Pointer(&m[h.vecOff])), h.count*uint64(h.dim))
	}
	tableLen := (h.count + 1) * 8
	ix.offsets = m[h.idsOff : h.idsOff+tableLen]
	ix.idBytes = m[h.idsOff+tableLen : h.idsOff+h.idsLen]
	if first := ix.offset(0); first != 0 {
		return nil, formatErr("first id offset is %d, want 0", first)
	}
	if last := ix.offset(int(h.count)); last != uint64(len(ix.idBytes)) {
		return nil, formatErr("last id offset is %d, want the id area's length %d", last, len(ix.idBytes))
	}
	return ix, nil
}

func (ix *Index) offset(i int) uint64 { return binary.LittleEndian.Uint64(ix.offsets[i*8:]) }

// Path returns the file the index was opened from.
func (ix *Index) Path() string { return ix.path }

// Len returns the number of vectors.
func (ix *Index) Len() int { return int(ix.h.count) }

// Dim returns the number of float32 values per vector.
func (ix *Index) Dim() int { return int(ix.h.dim) }

// Vectors returns all vectors, row-major: row r is Vectors()[r*Dim() : (r+1)*Dim()]. The slice
// is the read-only mapping itself; writing to it faults.
func (ix *Index) Vectors() []float32 { return ix.vectors }

// Row returns vector r.
func (ix *Index) Row(r int) []float32 {
	d := ix.Dim()
	return ix.vectors[r*d : (r+1)*d : (r+1)*d]
}

// ID returns the id of row r. It fails only on a file whose id offsets are damaged, which Verify
// would report.
func (ix *Index) ID(r int) (string, error) {
	if r < 0 || r >= ix.Len() {
		return "", fmt.Errorf("%s: row %d out of range [0, %d)", ix.path, r, ix.Len())
	}
	lo, hi := ix.offset(r), ix.offset(r+1)
	if lo > hi || hi > uint64(len(ix.idBytes)) {
		return "", fmt.Errorf("%s: %w: id offsets of row %d are [%d, %d) in a %d-byte area", ix.path, ErrFormat, r, lo, hi, len(ix.idBytes))
	}
	return string(ix.idBytes[lo:hi]), nil
}

// Meta decodes the metadata document.
func (ix *Index) Meta() (Meta, error) {
	var m Meta
	b := ix.m[ix.h.metaOff:ix.h.metaEnd()]
	if len(b) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w: metadata: %v", ix.path, ErrFormat, err)
	}
	return m, nil
}

// Header returns the file's 4096-byte header, which holds every section's checksum: a digest of
// it identifies the file's contents (package collection ties its change log to it this way).
func (ix *Index) Header() []byte { return ix.m[:HeaderSize:HeaderSize] }

// FormatVersion returns the file's format version (1 or 2).
func (ix *Index) FormatVersion() int { return int(ix.h.version) }

// Section returns the optional section of the given kind: its bytes (the mapping itself,
// starting on a 64-byte boundary; valid until Close) and its version. ok is false when the file
// has no section of that kind. The contents are checked by Verify, not here.
func (ix *Index) Section(kind uint32) (data []byte, version uint32, ok bool) {
	for _, e := range ix.h.sections {
		if e.kind == kind {
			return ix.m[e.off : e.off+e.len : e.off+e.len], e.version, true
		}
	}
	return nil, 0, false
}

// Bytes returns the size of the file.
func (ix *Index) Bytes() int64 { return int64(len(ix.m)) }

// Close unmaps the file. Slices obtained from the index must not be used afterwards.
func (ix *Index) Close() error {
	if ix.m == nil {
		return nil
	}
	err := errors.Join(ix.m.Unmap(), ix.f.Close())
	ix.m, ix.vectors, ix.offsets, ix.idBytes = nil, nil, nil, nil
	return err
}

// Verify reads the whole file and checks what Open does not: the section checksums (optional
// sections included), that the id offsets never decrease, that ids are valid non-empty UTF-8
// without NUL and (unless the metadata allows duplicates) unique, that every value is finite, and
// that the metadata is JSON. The contents of optional sections are checked by the packages that
// own them.
func (ix *Index) Verify() error {
	type checked struct {
		name     string
		off, len uint64
		want     uint32
	}
	sections := []checked{
		{"vectors", ix.h.vecOff, ix.h.vecLen, ix.h.vecCRC},
		{"ids", ix.h.idsOff, ix.h.idsLen, ix.h.idsCRC},
		{"meta", ix.h.metaOff, ix.h.metaLen, ix.h.metaCRC},
	}
	for _, e := range ix.h.sections {
		sections = append(sections, checked{fmt.Sprintf("optional (kind %d)", e.kind), e.off, e.len, e.crc})
	}
	for _, s := range sections {
		if got := crc32.Checksum(ix.m[s.off:s.off+s.len], castagnoli); got != s.want {
			return fmt.Errorf("%s: %w: %s section checksum %08x, header says %08x (damaged file)", ix.path, ErrFormat, s.name, got, s.want)
		}
	}
	for i, v := range ix.vectors {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: %w: row %d column %d is %v", ix.path, ErrFormat, i/ix.Dim(), i%ix.Dim(), v)
		}
	}
	meta, err := ix.Meta()
	if err != nil {
		return err
	}
	var seen map[string]int
	if !meta.DuplicateIDs {
		seen = make(map[string]int, ix.Len())
	}
	for r := 0; r < ix.Len(); r++ {
		id, err := ix.ID(r)
		if err != nil {
			return err
		}
		if err := validID(id); err != nil {
			return fmt.Errorf("%s: %w: row %d: %v", ix.path, ErrFormat, r, err)
		}
		if seen != nil {
			if first, dup := seen[id]; dup {
				return fmt.Errorf("%s: %w: id %q of row %d duplicates row %d", ix.path, ErrFormat, id, r, first)
			}
			seen[id] = r
		}
	}
	return nil
}
