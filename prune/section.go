package prune

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"simsearch/kernel"
)

// Version is the layout version of the PCA section that Encode writes and Decode reads
// (index/FORMAT.md, "The PCA section"). Version 2 stores the signatures packed in groups of
// kernel.PackRows rows, in two blocks (each signature's prefix, then the rest); FromIndex still
// reads version 1 (one signature after another), packing it in memory when the index is opened.
const Version = 2

// version1 is the previous layout: the same header and basis, the signatures row after row.
const version1 = 1

const headerLen = 64

// group is the number of rows packed together (dimension-major) in the stored signatures.
const group = kernel.PackRows

// prefixWidth is the width of a signature's prefix, the part the search reads for every row:
// the first prefixWidth−1 coordinates and the residual norm. Their distance alone is a lower
// bound too (it leaves out non-negative terms), weaker but a quarter of the bytes at rank 31;
// the rest of a signature is read only for the groups of rows that prefix does not rule out.
const prefixWidth = 8

// Section is what the index stores for the pruned search: a basis, the signature of every row
// and the largest distance of a row from the mean.
type Section struct {
	Basis   *Basis
	MaxNorm float64 // max over rows of |x − mean|; the search's rounding margin scales with it

	count int
	// The signatures, split in two packed blocks (groups of `group` rows, dimension-major within
	// a group, kernel.PackRows), the last group padded with zero rows: prefix holds each row's
	// first a−1 coordinates and its residual norm (value j of row r at
	// (r/group)·group·a + j·group + r%group), rest its other coordinates (Width − a of them).
	a            int
	prefix, rest []float32
}

// groups is the number of packed groups that hold n rows.
func groups(n int) int { return (n + group - 1) / group }

// prefixOf is the width of the prefix block for signatures of width w.
func prefixOf(w int) int { return min(prefixWidth, w) }

// NewSection returns a section for n rows on basis b, every signature zero and MaxNorm 0:
// Project fills them in.
func NewSection(b *Basis, n int) *Section {
	w, a := b.Width(), prefixOf(b.Width())
	return &Section{Basis: b, count: n, a: a, prefix: make([]float32, groups(n)*group*a), rest: make([]float32, groups(n)*group*(w-a))}
}

// split writes signature sig (Width floats: the coordinates, then the residual norm) as its
// prefix block's values and its rest block's.
func (s *Section) split(sig, prefix, rest []float32) {
	a, rank := s.a, s.Basis.Rank
	copy(prefix[:a-1], sig[:a-1])
	prefix[a-1] = sig[rank]
	copy(rest, sig[a-1:rank])
}

// Project computes the signatures of rows (row-major, Basis.Dim floats each), which are the
// section's rows first, first+1, ..., on every core, and raises MaxNorm to cover them.
func (s *Section) Project(first int, rows []float32) {
	b := s.Basis
	w := b.Width()
	n := len(rows) / b.Dim
	if first < 0 || first+n > s.count || len(rows) != n*b.Dim {
		panic(fmt.Sprintf("prune: rows %d to %d of a section of %d", first, first+n, s.count))
	}
	sigs := make([]float32, n*w)
	s.MaxNorm = max(s.MaxNorm, b.ProjectRows(rows, sigs))
	for i := range n {
		s.setSignature(first+i, sigs[i*w:(i+1)*w])
	}
}

// Build fits a basis of the given rank to data (rows of dim floats) and computes every row's
// signature. The same data gives the same section, byte for byte.
func Build(data []float32, dim, rank int) (*Section, error) {
	b, err := Fit(data, dim, rank)
	if err != nil {
		return nil, err
	}
	s := NewSection(b, len(data)/dim)
	s.Project(0, data)
	return s, nil
}

// Count is the number of rows the section describes.
func (s *Section) Count() int { return s.count }

// PrefixBytes is the size of the signatures' prefix block: what a pruned query reads whole, the
// rest block being read only for the groups of rows the prefix does not rule out.
func (s *Section) PrefixBytes() int { return 4 * len(s.prefix) }

// Signature stores row r's signature in out (Basis.Width floats: the coordinates, then the
// residual norm).
func (s *Section) Signature(r int, out []float32) {
	a, rank := s.a, s.Basis.Rank
	for j := range a - 1 {
		out[j] = get(s.prefix, a, r, j)
	}
	out[rank] = get(s.prefix, a, r, a-1)
	for j := a - 1; j < rank; j++ {
		out[j] = get(s.rest, rank+1-a, r, j-(a-1))
	}
}

// SetSignature stores sig (Basis.Width floats, as Signature gives them) as row r's signature:
// for signatures computed earlier (Basis.ProjectRows) and kept elsewhere, such as a change log's.
// The caller raises MaxNorm to cover the row.
func (s *Section) SetSignature(r int, sig []float32) {
	if r < 0 || r >= s.count || len(sig) != s.Basis.Width() {
		panic(fmt.Sprintf("prune: a signature of %d floats for row %d of a section of %d rows of width %d", len(sig), r, s.count, s.Basis.Width()))
	}
	s.setSignature(r, sig)
}

func (s *Section) setSignature(r int, sig []float32) {
	a, rank := s.a, s.Basis.Rank
	for j := range a - 1 {
		set(s.prefix, a, r, j, sig[j])
	}
	set(s.prefix, a, r, a-1, sig[rank])
	for j := a - 1; j < rank; j++ {
		set(s.rest, rank+1-a, r, j-(a-1), sig[j])
	}
}

// get and set address value j of row r in a packed block of width w.
func get(block []float32, w, r, j int) float32 { return block[r/group*group*w+j*group+r%group] }

func set(block []float32, w, r, j int, x float32) { block[r/group*group*w+j*group+r%group] = x }

func pad64(n int) int { return (n + 63) &^ 63 }

// layout returns the byte offsets of the mean, the components and the signatures, and the
// length, of a section of the given version.
func layout(version, dim, rank, count int) (mean, comps, rows, end int) {
	mean = headerLen
	comps = mean + pad64(4*dim)
	rows = comps + pad64(4*rank*dim)
	stored := count
	if version != version1 {
		stored = groups(count) * group
	}
	end = rows + 4*stored*(rank+1)
	return
}

// Encode returns the section's bytes, as FORMAT.md specifies them (version Version).
func (s *Section) Encode() []byte {
	b := s.Basis
	mOff, cOff, rOff, end := layout(Version, b.Dim, b.Rank, s.count)
	out := make([]byte, end)
	le := binary.LittleEndian
	le.PutUint32(out[0:], uint32(b.Dim))
	le.PutUint32(out[4:], uint32(b.Rank))
	le.PutUint64(out[8:], uint64(s.count))
	le.PutUint64(out[16:], math.Float64bits(s.MaxNorm))
	putFloats(out[mOff:], b.Mean)
	putFloats(out[cOff:], b.Components)
	putFloats(out[rOff:], s.prefix)
	putFloats(out[rOff+4*len(s.prefix):], s.rest)
	return out
}

func putFloats(dst []byte, v []float32) {
	for i, x := range v {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
	}
}

// Decode reads a section (version Version) for an index of count rows of dim floats. data must
// start on a 4-byte boundary (an index section starts on a 64-byte one) and stay valid while the
// Section is used: the floats are used in place, on a little-endian host as the index package
// requires. Decode checks the layout and the basis (a few hundred KB), not the signatures: Check
// does, as verify runs.
func Decode(data []byte, count, dim int) (*Section, error) {
	return decode(data, Version, count, dim)
}

// decode reads a section of the given version; a version 1 section's signatures are packed into
// memory of their own (they are read once, 4·Width bytes a row).
func decode(data []byte, version, count, dim int) (*Section, error) {
	if len(data) < headerLen {
		return nil, fmt.Errorf("PCA section: %d bytes, shorter than its %d-byte header", len(data), headerLen)
	}
	le := binary.LittleEndian
	sdim, rank, scount := le.Uint32(data[0:]), le.Uint32(data[4:]), le.Uint64(data[8:])
	maxNorm := math.Float64frombits(le.Uint64(data[16:]))
	for i := 24; i < headerLen; i++ {
		if data[i] != 0 {
			return nil, fmt.Errorf("PCA section: header byte %d is %d, want 0", i, data[i])
		}
	}
	switch {
	case int(sdim) != dim:
		return nil, fmt.Errorf("PCA section: dim %d, but the index's rows have %d floats", sdim, dim)
	case scount != uint64(count):
		return nil, fmt.Errorf("PCA section: %d rows, but the index has %d", scount, count)
	case rank == 0 || rank > sdim:
		return nil, fmt.Errorf("PCA section: rank %d, want 1 to %d", rank, sdim)
	case math.IsNaN(maxNorm) || math.IsInf(maxNorm, 0) || maxNorm < 0:
		return nil, fmt.Errorf("PCA section: largest row norm %v, want a finite number at least 0", maxNorm)
	}
	mOff, cOff, rOff, end := layout(version, dim, int(rank), count)
	if len(data) != end {
		return nil, fmt.Errorf("PCA section: %d bytes, want %d for %d rows of rank %d (section version %d)", len(data), end, count, rank, version)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(data)))%4 != 0 {
		return nil, fmt.Errorf("PCA section: not 4-byte aligned in memory")
	}
	for _, gap := range [][2]int{{mOff + 4*dim, cOff}, {cOff + 4*int(rank)*dim, rOff}} {
		for i := gap[0]; i < gap[1]; i++ {
			if data[i] != 0 {
				return nil, fmt.Errorf("PCA section: padding byte %d is %d, want 0", i, data[i])
			}
		}
	}
	b, err := NewBasis(dim, int(rank), floats(data[mOff:cOff], dim), floats(data[cOff:rOff], int(rank)*dim))
	if err != nil {
		return nil, fmt.Errorf("PCA section: %w", err)
	}
	if version != version1 {
		s := &Section{Basis: b, MaxNorm: maxNorm, count: count, a: prefixOf(b.Width())}
		split := rOff + 4*groups(count)*group*s.a
		s.prefix, s.rest = floats(data[rOff:split], (split-rOff)/4), floats(data[split:end], (end-split)/4)
		return s, nil
	}
	s := NewSection(b, count)
	s.MaxNorm = maxNorm
	rows := floats(data[rOff:end], count*b.Width())
	for r := range count {
		s.setSignature(r, rows[r*b.Width():(r+1)*b.Width()])
	}
	return s, nil
}

func floats(b []byte, n int) []float32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Check compares every row's stored signature with one recomputed from data, the index's rows:
// a stale or damaged signature could make the search skip a true neighbour. The tolerance is the
// rounding margin the search allows for; MaxNorm must bound every row, and the rows that pad the
// last group must be zero.
func (s *Section) Check(data []float32) error {
	b := s.Basis
	w := b.Width()
	if len(data) != s.count*b.Dim {
		return fmt.Errorf("PCA section: %d rows, the index has %d", s.count, len(data)/b.Dim)
	}
	sig, stored := make([]float32, w), make([]float32, w)
	v, p := make([]float64, b.Dim), make([]float64, b.Rank)
	tol := s.margin(0) / 4 // the search allows for this much error on each side
	for r := range s.count {
		norm := b.project(data[r*b.Dim:(r+1)*b.Dim], sig, v, p)
		if norm > s.MaxNorm {
			return fmt.Errorf("PCA section: row %d is %g from the mean, beyond the recorded maximum %g", r, norm, s.MaxNorm)
		}
		s.Signature(r, stored)
		d := 0.0
		for i, x := range stored {
			if !finite(x) {
				return fmt.Errorf("PCA section: row %d, signature value %d is %v", r, i, x)
			}
			e := float64(x) - float64(sig[i])
			d += e * e
		}
		if math.Sqrt(d) > tol {
			return fmt.Errorf("PCA section: row %d's signature is %g from its recomputed value (tolerance %g): stale or damaged", r, math.Sqrt(d), tol)
		}
	}
	for r := s.count; r < groups(s.count)*group; r++ {
		s.Signature(r, stored)
		for i, x := range stored {
			if x != 0 {
				return fmt.Errorf("PCA section: padding row %d, value %d is %v, want 0", r, i, x)
			}
		}
	}
	return nil
}
