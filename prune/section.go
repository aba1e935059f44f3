package prune

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// Version is the layout version of the PCA section that Encode writes and Decode reads
// (index/FORMAT.md, "The PCA section").
const Version = 1

const headerLen = 64

// Section is what the index stores for the pruned search: a basis, the signature of every row
// and the largest distance of a row from the mean.
type Section struct {
	Basis   *Basis
	Rows    []float32 // count × Basis.Width() floats
	MaxNorm float64   // max over rows of |x − mean|; the search's rounding margin scales with it
}

// Build fits a basis of the given rank to data (rows of dim floats) and computes every row's
// signature. The same data gives the same section, byte for byte.
func Build(data []float32, dim, rank int) (*Section, error) {
	b, err := Fit(data, dim, rank)
	if err != nil {
		return nil, err
	}
	rows := make([]float32, len(data)/dim*b.Width())
	m := b.ProjectRows(data, rows)
	return &Section{Basis: b, Rows: rows, MaxNorm: m}, nil
}

// Count is the number of rows the section describes.
func (s *Section) Count() int { return len(s.Rows) / s.Basis.Width() }

func pad64(n int) int { return (n + 63) &^ 63 }

// layout returns the byte offsets of the mean, the components and the rows, and the length.
func layout(dim, rank, count int) (mean, comps, rows, end int) {
	mean = headerLen
	comps = mean + pad64(4*dim)
	rows = comps + pad64(4*rank*dim)
	end = rows + 4*count*(rank+1)
	return
}

// Encode returns the section's bytes, as FORMAT.md specifies them.
func (s *Section) Encode() []byte {
	b := s.Basis
	count := s.Count()
	mOff, cOff, rOff, end := layout(b.Dim, b.Rank, count)
	out := make([]byte, end)
	le := binary.LittleEndian
	le.PutUint32(out[0:], uint32(b.Dim))
	le.PutUint32(out[4:], uint32(b.Rank))
	le.PutUint64(out[8:], uint64(count))
	le.PutUint64(out[16:], math.Float64bits(s.MaxNorm))
	putFloats(out[mOff:], b.Mean)
	putFloats(out[cOff:], b.Components)
	putFloats(out[rOff:], s.Rows)
	return out
}

func putFloats(dst []byte, v []float32) {
	for i, x := range v {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
	}
}

// Decode reads a section for an index of count rows of dim floats. data must start on a 4-byte
// boundary (an index section starts on a 64-byte one) and stay valid while the Section is used:
// the floats are used in place, on a little-endian host as the index package requires. Decode
// checks the layout and the basis (a few hundred KB), not the rows: Check does, as verify runs.
func Decode(data []byte, count, dim int) (*Section, error) {
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
	mOff, cOff, rOff, end := layout(dim, int(rank), count)
	if len(data) != end {
		return nil, fmt.Errorf("PCA section: %d bytes, want %d for %d rows of rank %d", len(data), end, count, rank)
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
	return &Section{Basis: b, Rows: floats(data[rOff:end], count*int(rank+1)), MaxNorm: maxNorm}, nil
}

func floats(b []byte, n int) []float32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Check compares every row's stored signature with one recomputed from data, the index's rows:
// a stale or damaged signature could make the search skip a true neighbour. The tolerance is the
// rounding margin the search allows for; MaxNorm must bound every row.
func (s *Section) Check(data []float32) error {
	b := s.Basis
	w := b.Width()
	if len(data) != s.Count()*b.Dim {
		return fmt.Errorf("PCA section: %d rows, the index has %d", s.Count(), len(data)/b.Dim)
	}
	sig := make([]float32, w)
	v, p := make([]float64, b.Dim), make([]float64, b.Rank)
	tol := s.margin(0) / 4 // the search allows for this much error on each side
	for r := range s.Count() {
		norm := b.project(data[r*b.Dim:(r+1)*b.Dim], sig, v, p)
		if norm > s.MaxNorm {
			return fmt.Errorf("PCA section: row %d is %g from the mean, beyond the recorded maximum %g", r, norm, s.MaxNorm)
		}
		d := 0.0
		for i, x := range s.Rows[r*w : (r+1)*w] {
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
	return nil
}
