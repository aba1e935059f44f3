package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
)

// The header layout of format versions 1 and 2; FORMAT.md is the specification.
const (
	Version     = 2 // the version writers write; readers also accept 1
	HeaderSize  = 4096
	MaxDim      = 65536
	elemFloat32 = 1
	metricL2    = 1

	headerCRCAt  = 100 // version 1: the header CRC covers [0, headerCRCAt); version 2 also [reservedAt, HeaderSize)
	reservedAt   = 104
	sectionAlign = 8

	// Version 2's table of optional sections.
	tableAt        = reservedAt + 8 // after u32 count and u32 zero
	tableEntrySize = 32
	MaxSections    = 64
	extraAlign     = 64 // optional sections start on a cache line
)

// Kinds of optional section (FORMAT.md, "Optional sections"). Each kind's layout is specified
// by FORMAT.md; readers ignore kinds and section versions they do not know.
const (
	SectionPCA   uint32 = 1 // the projection used by the pruned exact search
	SectionFiles uint32 = 2 // the file each row was embedded from: size, mtime, content hash
)

// sectionEntry is one row of version 2's section table.
type sectionEntry struct {
	kind, version uint32
	off, len      uint64
	crc           uint32
}

// Magic opens every index file.
var Magic = [8]byte{'S', 'I', 'M', 'S', 'I', 'D', 'X', 0x1A}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the decoded fixed header. Offsets and lengths are in bytes.
type header struct {
	version                 uint32
	dim                     uint32
	count                   uint64
	vecOff, vecLen          uint64
	idsOff, idsLen          uint64
	metaOff, metaLen        uint64
	vecCRC, idsCRC, metaCRC uint32
	sections                []sectionEntry // version 2 only
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// layout fills in the section offsets and lengths for count vectors of dim floats, idBytes bytes
// of ids and metaLen bytes of metadata.
func layout(dim uint32, count, idBytes, metaLen uint64) header {
	h := header{version: Version, dim: dim, count: count}
	h.vecOff = HeaderSize
	h.vecLen = count * uint64(dim) * 4
	h.idsOff = alignUp(h.vecOff+h.vecLen, sectionAlign)
	h.idsLen = (count+1)*8 + idBytes
	h.metaOff = alignUp(h.idsOff+h.idsLen, sectionAlign)
	h.metaLen = metaLen
	return h
}

// metaEnd is where the meta section ends; in version 1 it is the end of the file.
func (h *header) metaEnd() uint64 { return h.metaOff + h.metaLen }

// end is the end of the file: the end of the last section.
func (h *header) end() uint64 {
	if n := len(h.sections); n > 0 {
		return h.sections[n-1].off + h.sections[n-1].len
	}
	return h.metaEnd()
}

// addSection places an optional section of length n after the last one.
func (h *header) addSection(kind, version uint32, n uint64) *sectionEntry {
	h.sections = append(h.sections, sectionEntry{kind: kind, version: version, off: alignUp(h.end(), extraAlign), len: n})
	return &h.sections[len(h.sections)-1]
}

// headerCRC is the checksum stored at headerCRCAt: version 1 covers the fields before it,
// version 2 the whole header but the checksum itself.
func headerCRC(b []byte, version uint32) uint32 {
	c := crc32.Checksum(b[:headerCRCAt], castagnoli)
	if version >= 2 {
		c = crc32.Update(c, castagnoli, b[reservedAt:HeaderSize])
	}
	return c
}

func (h *header) marshal() []byte {
	b := make([]byte, HeaderSize)
	le := binary.LittleEndian
	copy(b[0:8], Magic[:])
	le.PutUint32(b[8:], h.version)
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
	if h.version >= 2 {
		le.PutUint32(b[reservedAt:], uint32(len(h.sections)))
		for i, e := range h.sections {
			p := b[tableAt+i*tableEntrySize:]
			le.PutUint32(p[0:], e.kind)
			le.PutUint32(p[4:], e.version)
			le.PutUint64(p[8:], e.off)
			le.PutUint64(p[16:], e.len)
			le.PutUint32(p[24:], e.crc)
		}
	}
	le.PutUint32(b[headerCRCAt:], headerCRC(b, h.version))
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
	h.version = le.Uint32(b[8:])
	if h.version != 1 && h.version != 2 {
		return h, formatErr("format version %d, this reader knows versions 1 and 2", h.version)
	}
	if got, want := le.Uint32(b[headerCRCAt:]), headerCRC(b, h.version); got != want {
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
	if err := parseSections(&h, b, fileSize); err != nil {
		return h, err
	}
	if fileSize != h.end() {
		return h, formatErr("%d trailing bytes after the last section", fileSize-h.end())
	}
	return h, nil
}

// parseSections reads version 2's section table and checks that the reserved bytes are zero.
func parseSections(h *header, b []byte, fileSize uint64) error {
	le := binary.LittleEndian
	zeroFrom := reservedAt
	if h.version >= 2 {
		n := le.Uint32(b[reservedAt:])
		if n > MaxSections {
			return formatErr("section table has %d entries, at most %d are allowed", n, MaxSections)
		}
		if v := le.Uint32(b[reservedAt+4:]); v != 0 {
			return formatErr("reserved header bytes %d-%d are %#x, want 0", reservedAt+4, reservedAt+7, v)
		}
		prevEnd := h.metaEnd()
		seen := map[uint32]bool{}
		for i := range int(n) {
			p := b[tableAt+i*tableEntrySize:]
			e := sectionEntry{kind: le.Uint32(p[0:]), version: le.Uint32(p[4:]), off: le.Uint64(p[8:]), len: le.Uint64(p[16:]), crc: le.Uint32(p[24:])}
			switch {
			case le.Uint32(p[28:]) != 0:
				return formatErr("section table entry %d: reserved field is not zero", i)
			case e.kind == 0:
				return formatErr("section table entry %d: kind 0 is not allowed", i)
			case seen[e.kind]:
				return formatErr("section table entry %d: a second section of kind %d", i, e.kind)
			case e.off%extraAlign != 0:
				return formatErr("section %d (kind %d) offset %d is not %d-byte aligned", i, e.kind, e.off, extraAlign)
			case e.off < prevEnd:
				return formatErr("section %d (kind %d) at %d overlaps the previous section ending at %d", i, e.kind, e.off, prevEnd)
			case e.off > fileSize || e.len > fileSize-e.off:
				return formatErr("section %d (kind %d) [%d, +%d) extends past the end of the %d-byte file (truncated?)", i, e.kind, e.off, e.len, fileSize)
			}
			seen[e.kind] = true
			h.sections = append(h.sections, e)
			prevEnd = e.off + e.len
		}
		zeroFrom = tableAt + int(n)*tableEntrySize
	}
	for i := zeroFrom; i < HeaderSize; i++ {
		if b[i] != 0 {
			return formatErr("reserved header byte %d is %#x, want 0", i, b[i])
		}
	}
	return nil
}
