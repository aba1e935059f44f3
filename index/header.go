package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
)

// The header layout of format version 1; FORMAT.md is the specification.
const (
	Version     = 1
	HeaderSize  = 4096
	MaxDim      = 65536
	elemFloat32 = 1
	metricL2    = 1

	headerCRCAt  = 100 // the header CRC covers bytes [0, headerCRCAt)
	sectionAlign = 8
)

// Magic opens every index file.
var Magic = [8]byte{'S', 'I', 'M', 'S', 'I', 'D', 'X', 0x1A}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the decoded fixed header. Offsets and lengths are in bytes.
type header struct {
	dim                     uint32
	count                   uint64
	vecOff, vecLen          uint64
	idsOff, idsLen          uint64
	metaOff, metaLen        uint64
	vecCRC, idsCRC, metaCRC uint32
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// layout fills in the section offsets and lengths for count vectors of dim floats, idBytes bytes
// of ids and metaLen bytes of metadata.
func layout(dim uint32, count, idBytes, metaLen uint64) header {
	h := header{dim: dim, count: count}
	h.vecOff = HeaderSize
	h.vecLen = count * uint64(dim) * 4
	h.idsOff = alignUp(h.vecOff+h.vecLen, sectionAlign)
	h.idsLen = (count+1)*8 + idBytes
	h.metaOff = alignUp(h.idsOff+h.idsLen, sectionAlign)
	h.metaLen = metaLen
	return h
}

func (h *header) end() uint64 { return h.metaOff + h.metaLen }

func (h *header) marshal() []byte {
	b := make([]byte, HeaderSize)
	le := binary.LittleEndian
	copy(b[0:8], Magic[:])
	le.PutUint32(b[8:], Version)
	le.PutUint32(b[12:], HeaderSize)
	le.PutUint32(b[16:], h.dim)
	le.PutUint32(b[20:], elemFloat32)
	le.PutUint64(b[24:], h.count)
	le.PutUint32(b[32:], metricL2)
	le.PutUint32(b[36:], 0)
	le.PutUint64(b[40:], h.vecOff)
	le.PutUint64(b[48:], h.vecLen)
	le.PutUint64(b[56:], h.idsOff)
	le.PutUint64(b[64:], h.idsLen)
	le.PutUint64(b[72:], h.metaOff)
	le.PutUint64(b[80:], h.metaLen)
	le.PutUint32(b[88:], h.vecCRC)
	le.PutUint32(b[92:], h.idsCRC)
	le.PutUint32(b[96:], h.metaCRC)
	le.PutUint32(b[headerCRCAt:], crc32.Checksum(b[:headerCRCAt], castagnoli))
	return b
}

// ErrFormat is wrapped by every error that reports a malformed index file.
var ErrFormat = errors.New("not a valid simsearch index")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// parseHeader decodes and validates the header of a file of fileSize bytes whose first bytes are
// b. It performs every check of FORMAT.md that needs only the header.
func parseHeader(b []byte, fileSize uint64) (header, error) {
	var h header
	if len(b) < HeaderSize || fileSize < HeaderSize {
		return h, formatErr("file is %d bytes, shorter than the %d-byte header (truncated?)", fileSize, HeaderSize)
	}
	if [8]byte(b[0:8]) != Magic {
		return h, formatErr("wrong magic %q (want %q)", b[0:8], Magic[:])
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != Version {
		return h, formatErr("format version %d, this reader knows only version %d", v, Version)
	}
	if got, want := le.Uint32(b[headerCRCAt:]), crc32.Checksum(b[:headerCRCAt], castagnoli); got != want {
		return h, formatErr("header checksum %08x does not match its contents (%08x): damaged header", got, want)
	}
	if v := le.Uint32(b[12:]); v != HeaderSize {
		return h, formatErr("header size %d, want %d", v, HeaderSize)
	}
	if v := le.Uint32(b[20:]); v != elemFloat32 {
		return h, formatErr("element type %d, only 1 (float32) is defined", v)
	}
	if v := le.Uint32(b[32:]); v != metricL2 {
		return h, formatErr("metric %d, only 1 (L2) is defined", v)
	}
	if v := le.Uint32(b[36:]); v != 0 {
		return h, formatErr("flags %#x, want 0", v)
	}
	h.dim = le.Uint32(b[16:])
	h.count = le.Uint64(b[24:])
	h.vecOff, h.vecLen = le.Uint64(b[40:]), le.Uint64(b[48:])
	h.idsOff, h.idsLen = le.Uint64(b[56:]), le.Uint64(b[64:])
	h.metaOff, h.metaLen = le.Uint64(b[72:]), le.Uint64(b[80:])
	h.vecCRC, h.idsCRC, h.metaCRC = le.Uint32(b[88:]), le.Uint32(b[92:]), le.Uint32(b[96:])

	if h.dim == 0 || h.dim > MaxDim {
		return h, formatErr("dim %d out of range 1..%d", h.dim, MaxDim)
	}
	hi, rowsBytes := bits.Mul64(h.count, uint64(h.dim)*4)
	if hi != 0 || rowsBytes != h.vecLen {
		return h, formatErr("vectors length %d does not equal count %d × dim %d × 4", h.vecLen, h.count, h.dim)
	}
	if h.vecOff != HeaderSize {
		return h, formatErr("vectors offset %d, want %d", h.vecOff, HeaderSize)
	}
	if h.count == ^uint64(0) || h.idsLen/8 < h.count+1 {
		return h, formatErr("ids length %d too small for %d offsets", h.idsLen, h.count+1)
	}
	// Sections in order, aligned, inside the file, without overlap. Each end is computed only
	// after checking it cannot overflow.
	prevEnd := uint64(HeaderSize)
	for _, s := range []struct {
		name     string
		off, len uint64
	}{{"vectors", h.vecOff, h.vecLen}, {"ids", h.idsOff, h.idsLen}, {"meta", h.metaOff, h.metaLen}} {
		if s.off%sectionAlign != 0 {
			return h, formatErr("%s offset %d is not %d-byte aligned", s.name, s.off, sectionAlign)
		}
		if s.off < prevEnd {
			return h, formatErr("%s section at %d overlaps the previous section ending at %d", s.name, s.off, prevEnd)
		}
		if s.off > fileSize || s.len > fileSize-s.off {
			return h, formatErr("%s section [%d, +%d) extends past the end of the %d-byte file (truncated?)", s.name, s.off, s.len, fileSize)
		}
		prevEnd = s.off + s.len
	}
	if fileSize != h.end() {
		return h, formatErr("%d trailing bytes after the meta section", fileSize-h.end())
	}
	return h, nil
}
