// Package shard reads and writes the feature shards of the Python pipeline this project replaces:
// a directory of pairs NNNN.object_ids.npy (ids) and NNNN.features.npy (float vectors, one row
// per id), numbered from 0000 without gaps.
package shard

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"unsafe"

	"codeberg.org/sbinet/npyio/npy"
	"codeberg.org/sbinet/npyio/npy/float16"
	"github.com/edsrzf/mmap-go"
)

// File name suffixes of the two halves of a shard.
const (
	IDsSuffix      = ".object_ids.npy"
	FeaturesSuffix = ".features.npy"
)

// Pair names the two files of one shard.
type Pair struct {
	Num      int
	IDs      string
	Features string
}

var shardName = regexp.MustCompile(`^([0-9]{4,9})(\.object_ids\.npy|\.features\.npy)$`)

// List finds the shards in dir, in numeric order. It fails if dir holds none, if a shard lacks
// one of its halves, or if the numbering does not run 0, 1, 2, ... without a gap.
func List(dir string) ([]Pair, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	byNum := map[int]*Pair{}
	for _, e := range ents {
		m := shardName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		p := byNum[n]
		if p == nil {
			p = &Pair{Num: n}
			byNum[n] = p
		}
		path := filepath.Join(dir, e.Name())
		if m[2] == IDsSuffix {
			if p.IDs != "" {
				return nil, fmt.Errorf("%s: shard %d has two id files (%s and %s)", dir, n, p.IDs, path)
			}
			p.IDs = path
		} else {
			if p.Features != "" {
				return nil, fmt.Errorf("%s: shard %d has two feature files (%s and %s)", dir, n, p.Features, path)
			}
			p.Features = path
		}
	}
	if len(byNum) == 0 {
		return nil, fmt.Errorf("%s: no shards found (want files named 0000%s and 0000%s)", dir, IDsSuffix, FeaturesSuffix)
	}
	pairs := make([]Pair, 0, len(byNum))
	for _, p := range byNum {
		pairs = append(pairs, *p)
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Num < pairs[j].Num })
	for i, p := range pairs {
		if p.Num != i {
			return nil, fmt.Errorf("%s: shard numbering has a gap: shard %04d is missing before %04d", dir, i, p.Num)
		}
		if p.IDs == "" {
			return nil, fmt.Errorf("%s: missing %04d%s (the pair of %s)", dir, p.Num, IDsSuffix, p.Features)
		}
		if p.Features == "" {
			return nil, fmt.Errorf("%s: missing %04d%s (the pair of %s)", dir, p.Num, FeaturesSuffix, p.IDs)
		}
	}
	return pairs, nil
}

// Stat reads and validates the header of the npy file at path and checks that the file holds
// exactly the data the header announces.
func Stat(path string) (*Header, error) {
	f, h, err := open(path)
	if err != nil {
		return nil, err
	}
	f.Close()
	return h, nil
}

// open opens the npy file at path and validates it as Stat does.
func open(path string) (*os.File, *Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	h, err := stat(path, f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, h, nil
}

func stat(path string, f *os.File) (*Header, error) {
	h, err := ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch want := h.DataOffset + h.DataBytes(); {
	case st.Size() < want:
		return nil, fmt.Errorf("%s: truncated: header announces %v %s (%d bytes of data) but the file has %d", path, h.Shape, h.DType, h.DataBytes(), st.Size()-h.DataOffset)
	case st.Size() > want:
		return nil, fmt.Errorf("%s: %d unexpected bytes after the array data", path, st.Size()-want)
	}
	return h, nil
}

// FeaturesHeader validates a features file's header: a 2-D float array.
func FeaturesHeader(path string) (*Header, error) {
	h, err := Stat(path)
	if err != nil {
		return nil, err
	}
	if h.Kind != 'f' {
		return nil, fmt.Errorf("%s: features have dtype %s, want a float dtype (<f4, <f8 or <f2)", path, h.DType)
	}
	if len(h.Shape) != 2 {
		return nil, fmt.Errorf("%s: features have shape %v, want 2 dimensions [rows, dim]", path, h.Shape)
	}
	if h.Shape[1] == 0 {
		return nil, fmt.Errorf("%s: features have shape %v: dimension 0", path, h.Shape)
	}
	return h, nil
}

// IDsHeader validates an ids file's header: a 1-D array of strings or integers.
func IDsHeader(path string) (*Header, error) {
	h, err := Stat(path)
	if err != nil {
		return nil, err
	}
	switch h.Kind {
	case 'U', 'S', 'i', 'u':
	default:
		return nil, fmt.Errorf("%s: ids have dtype %s, want strings (<U…, |S…) or integers", path, h.DType)
	}
	if len(h.Shape) != 1 {
		return nil, fmt.Errorf("%s: ids have shape %v, want 1 dimension", path, h.Shape)
	}
	return h, nil
}

// Features is an open features file: its rows as row-major float32, read-only.
type Features struct {
	Rows   []float32
	Header *Header
	m      mmap.MMap
}

// Close releases the rows; they must not be used afterwards.
func (f *Features) Close() error {
	f.Rows = nil
	if f.m == nil {
		return nil
	}
	return f.m.Unmap()
}

// OpenFeatures opens the 2-D float array at path. Little-endian C-order float32, the common case
// and the one convert's throughput depends on, is memory-mapped and used in place; every other
// dtype and order is decoded with npyio into memory. Values that do not fit float32 become ±Inf,
// which the index writer refuses with the row and column.
func OpenFeatures(path string) (*Features, error) {
	f, h, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if h.Kind != 'f' || len(h.Shape) != 2 {
		return nil, fmt.Errorf("%s: dtype %s shape %v, want a 2-D float array", path, h.DType, h.Shape)
	}
	if h.DType != "<f4" || h.Fortran || !littleEndianHost || h.Elems() == 0 {
		rows, err := decodeFloats(f, h, path)
		if err != nil {
			return nil, err
		}
		return &Features{Rows: rows, Header: h}, nil
	}
	m, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	if h.DataOffset%4 != 0 {
		m.Unmap()
		return nil, fmt.Errorf("%s: array data at offset %d is not 4-byte aligned", path, h.DataOffset)
	}
	rows := unsafe.Slice((*float32)(unsafe.Pointer(&m[h.DataOffset])), h.Elems())
	return &Features{Rows: rows, Header: h, m: m}, nil
}

// ReadVectors reads query vectors: a 1-D float array is one vector, a 2-D one a vector per row.
// It returns the values row-major and the vectors' length.
func ReadVectors(path string) ([]float32, int, error) {
	v, h, err := readFloats(path, 1)
	if err != nil {
		return nil, 0, err
	}
	dim := h.Shape[len(h.Shape)-1]
	if dim == 0 || len(v) == 0 {
		return nil, 0, fmt.Errorf("%s: no vectors (shape %v)", path, h.Shape)
	}
	return v, dim, nil
}

// readFloats reads a float array of rank 2, or of rank 1 or 2 when minRank is 1.
func readFloats(path string, minRank int) ([]float32, *Header, error) {
	f, h, err := open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if h.Kind != 'f' || len(h.Shape) < minRank || len(h.Shape) > 2 {
		want := "a 2-D float array"
		if minRank == 1 {
			want = "a 1-D or 2-D float array"
		}
		return nil, nil, fmt.Errorf("%s: dtype %s shape %v, want %s", path, h.DType, h.Shape, want)
	}
	out, err := decodeFloats(f, h, path)
	return out, h, err
}

// decodeFloats decodes the validated float array in f with npyio, as row-major float32.
func decodeFloats(f *os.File, h *Header, path string) ([]float32, error) {
	vals, err := decode(f, path)
	if err != nil {
		return nil, err
	}
	var out []float32
	switch v := vals.(type) {
	case []float32:
		out = v
	case []float64:
		out = make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
	case []float16.Num:
		out = make([]float32, len(v))
		for i, x := range v {
			out[i] = halfToFloat32(x.Uint16())
		}
	default:
		return nil, fmt.Errorf("%s: dtype %s decoded as %T", path, h.DType, vals)
	}
	if h.Fortran && len(h.Shape) == 2 {
		out = transpose(out, h.Shape[0], h.Shape[1])
	}
	return out, nil
}

// halfToFloat32 widens an IEEE 754 binary16 value exactly. (npyio's float16.Num.Float32 decodes
// subnormals wrongly: 6e-5 came out as 1.1e-38.)
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinities and NaNs keep their payload
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal: mant × 2^-24, which is a normal float32.
	f := float32(mant) * (1.0 / (1 << 24))
	return math.Float32frombits(sign | math.Float32bits(f))
}

// transpose turns column-major rows×cols data into row-major.
func transpose(colMajor []float32, rows, cols int) []float32 {
	t := make([]float32, len(colMajor))
	for c := 0; c < cols; c++ {
		for r := 0; r < rows; r++ {
			t[r*cols+c] = colMajor[c*rows+r]
		}
	}
	return t
}

// ReadIDs reads the 1-D id array at path as strings; integers become their decimal form and
// byte strings are taken as UTF-8.
func ReadIDs(path string) ([]string, *Header, error) {
	f, h, err := open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if len(h.Shape) != 1 {
		return nil, nil, fmt.Errorf("%s: ids have shape %v, want 1 dimension", path, h.Shape)
	}
	vals, err := decode(f, path)
	if err != nil {
		return nil, nil, err
	}
	var ids []string
	switch v := vals.(type) {
	case []string:
		ids = v
	case []int64:
		ids = formatInts(v, func(x int64) string { return strconv.FormatInt(x, 10) })
	case []int32:
		ids = formatInts(v, func(x int32) string { return strconv.FormatInt(int64(x), 10) })
	case []int16:
		ids = formatInts(v, func(x int16) string { return strconv.FormatInt(int64(x), 10) })
	case []int8:
		ids = formatInts(v, func(x int8) string { return strconv.FormatInt(int64(x), 10) })
	case []uint64:
		ids = formatInts(v, func(x uint64) string { return strconv.FormatUint(x, 10) })
	case []uint32:
		ids = formatInts(v, func(x uint32) string { return strconv.FormatUint(uint64(x), 10) })
	case []uint16:
		ids = formatInts(v, func(x uint16) string { return strconv.FormatUint(uint64(x), 10) })
	case []uint8:
		ids = formatInts(v, func(x uint8) string { return strconv.FormatUint(uint64(x), 10) })
	default:
		return nil, nil, fmt.Errorf("%s: ids of dtype %s decoded as %T, want strings or integers", path, h.DType, vals)
	}
	if len(ids) != h.Shape[0] {
		return nil, nil, fmt.Errorf("%s: decoded %d ids, header announces %d", path, len(ids), h.Shape[0])
	}
	return ids, h, nil
}

func formatInts[T any](v []T, f func(T) string) []string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = f(x)
	}
	return s
}

// decode reads a validated npy file with npyio and returns its flat data.
func decode(f *os.File, path string) (any, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	r, err := npy.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var arr npy.Array
	if err := r.Read(&arr); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: decoding %s: %w", path, r.Header.Descr.Type, err)
	}
	return arr.Data(), nil
}

var littleEndianHost = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// ModelFile is the sidecar that simsearch extract writes beside the shards it makes: a JSON
// description of the model and preprocessing (the "model" object of the index format).
const ModelFile = "simsearch-model.json"

// PartialFile is the marker simsearch extract writes into its output directory before its first
// shard and removes after its last: shards beside it are an unfinished set.
const PartialFile = "simsearch-extract.partial"

// IsName reports whether name (a base name) is a shard file's name, as List recognises them.
func IsName(name string) bool { return shardName.MatchString(name) }

// ReadModelFile returns the sidecar's bytes, or nil if dir has none.
func ReadModelFile(dir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, ModelFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// WriteModelFile writes the sidecar atomically.
func WriteModelFile(dir string, b []byte) error {
	return atomicWrite(filepath.Join(dir, ModelFile), func(w io.Writer) error { _, err := w.Write(b); return err })
}
