package collection

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"unicode/utf8"
)

// The change log's layout, version 1; FORMAT.md ("The change log") is the specification.
const (
	LogVersion    = 1
	logHeaderSize = 64
	recordHead    = 8       // u32 body length, u32 CRC-32C of the body
	maxRecord     = 1 << 30 // a longer body is damage, not data
	stateSize     = 48      // FileState on disk

	recAdd    = 1
	recDelete = 2
	recTouch  = 3
	recCommit = 4
)

// LogMagic opens every change log.
var LogMagic = [8]byte{'S', 'I', 'M', 'S', 'L', 'O', 'G', 0x1A}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrFormat marks a damaged or foreign change log.
var ErrFormat = errors.New("invalid change log")

// FileState is what a collection remembers of the file a row was embedded from, to tell whether
// it changed: its size, its modification time and the SHA-256 of its bytes. The zero value means
// unknown (rows converted from shards).
type FileState struct {
	Size    int64
	MtimeNS int64
	SHA256  [32]byte
}

// Known reports whether the state was recorded.
func (s FileState) Known() bool { return s != FileState{} }

func putState(b []byte, s FileState) {
	binary.LittleEndian.PutUint64(b, uint64(s.Size))
	binary.LittleEndian.PutUint64(b[8:], uint64(s.MtimeNS))
	copy(b[16:48], s.SHA256[:])
}

func getState(b []byte) FileState {
	var s FileState
	s.Size = int64(binary.LittleEndian.Uint64(b))
	s.MtimeNS = int64(binary.LittleEndian.Uint64(b[8:]))
	copy(s.SHA256[:], b[16:48])
	return s
}

// Identity is the SHA-256 of a base file's header. The header holds the checksum of every
// section, so two bases with the same identity hold the same rows.
type Identity [32]byte

func identityOf(header []byte) Identity { return sha256.Sum256(header) }

// logHeader encodes the 64-byte header of a log for a base of dim-float rows.
func logHeader(dim int, base Identity) []byte {
	b := make([]byte, logHeaderSize)
	copy(b, LogMagic[:])
	binary.LittleEndian.PutUint32(b[8:], LogVersion)
	binary.LittleEndian.PutUint32(b[12:], uint32(dim))
	copy(b[16:48], base[:])
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

// parseLogHeader checks a log's header and returns the base identity and dim it records.
func parseLogHeader(b []byte) (Identity, int, error) {
	var id Identity
	if len(b) < logHeaderSize {
		return id, 0, fmt.Errorf("%w: %d bytes, shorter than its 64-byte header", ErrFormat, len(b))
	}
	if [8]byte(b[:8]) != LogMagic {
		return id, 0, fmt.Errorf("%w: not a simsearch change log (magic %q)", ErrFormat, b[:8])
	}
	if got := crc32.Checksum(b[:60], castagnoli); got != binary.LittleEndian.Uint32(b[60:]) {
		return id, 0, fmt.Errorf("%w: header checksum %08x does not match (damaged header)", ErrFormat, got)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != LogVersion {
		return id, 0, fmt.Errorf("%w: version %d, this simsearch reads version %d", ErrFormat, v, LogVersion)
	}
	for _, x := range b[48:60] {
		if x != 0 {
			return id, 0, fmt.Errorf("%w: reserved header bytes are not zero", ErrFormat)
		}
	}
	copy(id[:], b[16:48])
	return id, int(binary.LittleEndian.Uint32(b[12:])), nil
}

// record frames body (type byte first) with its length and checksum.
func record(body []byte) []byte {
	b := make([]byte, recordHead, recordHead+len(body))
	binary.LittleEndian.PutUint32(b, uint32(len(body)))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(body, castagnoli))
	return append(b, body...)
}

// Row is one vector to add, with its id and the state of the file it came from.
type Row struct {
	ID     string
	State  FileState
	Vector []float32
}

func appendID(b []byte, id string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(id)))
	return append(b, id...)
}

func addBody(rows []Row) []byte {
	b := []byte{recAdd}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rows)))
	var st [stateSize]byte
	for _, r := range rows {
		b = appendID(b, r.ID)
		putState(st[:], r.State)
		b = append(b, st[:]...)
		for _, v := range r.Vector {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	return b
}

func deleteBody(ids []string) []byte {
	b := []byte{recDelete}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		b = appendID(b, id)
	}
	return b
}

// Touch records a new state for an unchanged file.
type Touch struct {
	ID    string
	State FileState
}

func touchBody(ts []Touch) []byte {
	b := []byte{recTouch}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ts)))
	var st [stateSize]byte
	for _, t := range ts {
		b = appendID(b, t.ID)
		putState(st[:], t.State)
		b = append(b, st[:]...)
	}
	return b
}

func commitBody(seq uint64, unixNS int64) []byte {
	b := []byte{recCommit}
	b = binary.LittleEndian.AppendUint64(b, seq)
	return binary.LittleEndian.AppendUint64(b, uint64(unixNS))
}

// op is one decoded record.
type op struct {
	kind    byte
	rows    []Row // add
	ids     []string
	touches []Touch
	seq     uint64 // commit
}

// scanLog walks the records after the header. It calls fn for each whole record whose checksum
// holds, in order, with the offset just past it, and returns where the intact records end: a
// torn or damaged record and everything after it is a tail that the reader ignores.
func scanLog(b []byte, dim int, fn func(o op, end int64) error) (int64, error) {
	pos := int64(logHeaderSize)
	for {
		rest := b[pos:]
		if len(rest) < recordHead {
			return pos, nil
		}
		n := int64(binary.LittleEndian.Uint32(rest))
		if n == 0 || n > maxRecord || n > int64(len(rest)-recordHead) {
			return pos, nil
		}
		body := rest[recordHead : recordHead+n]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(rest[4:]) {
			return pos, nil
		}
		o, err := decodeOp(body, dim)
		if err != nil {
			// The checksum holds, so the writer wrote this: a bug or another program, not a crash.
			return pos, fmt.Errorf("%w: record at byte %d: %v", ErrFormat, pos, err)
		}
		pos += recordHead + n
		if err := fn(o, pos); err != nil {
			return pos, err
		}
	}
}

// decoder reads a record body, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		if d.err == nil {
			d.err = errors.New("record is shorter than its contents")
		}
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32() int {
	if b := d.take(4); b != nil {
		return int(binary.LittleEndian.Uint32(b))
	}
	return 0
}

func (d *decoder) id() string {
	s := string(d.take(d.u32()))
	if d.err == nil {
		if err := validID(s); err != nil {
			d.err = err
		}
	}
	return s
}

func validID(id string) error {
	if id == "" || !utf8.ValidString(id) {
		return fmt.Errorf("id %q is empty or not UTF-8", id)
	}
	for i := 0; i < len(id); i++ {
		if id[i] == 0 {
			return fmt.Errorf("id %q contains a NUL byte", id)
		}
	}
	return nil
}

func decodeOp(body []byte, dim int) (op, error) {
	d := &decoder{b: body[1:]}
	o := op{kind: body[0]}
	switch o.kind {
	case recAdd:
		n := d.u32()
		if n > len(d.b)/(4+stateSize+4*dim) {
			return o, fmt.Errorf("add record claims %d rows in %d bytes", n, len(d.b))
		}
		o.rows = make([]Row, n)
		vec := make([]float32, n*dim)
		for i := range o.rows {
			r := &o.rows[i]
			r.ID = d.id()
			if st := d.take(stateSize); st != nil {
				r.State = getState(st)
			}
			r.Vector = vec[i*dim : (i+1)*dim : (i+1)*dim]
			raw := d.take(4 * dim)
			for c := 0; raw != nil && c < dim; c++ {
				v := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*c:]))
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return o, fmt.Errorf("row %q column %d is %v", r.ID, c, v)
				}
				r.Vector[c] = v
			}
		}
	case recDelete:
		n := d.u32()
		if n > len(d.b)/5 {
			return o, fmt.Errorf("delete record claims %d ids in %d bytes", n, len(d.b))
		}
		o.ids = make([]string, n)
		for i := range o.ids {
			o.ids[i] = d.id()
		}
	case recTouch:
		n := d.u32()
		if n > len(d.b)/(5+stateSize) {
			return o, fmt.Errorf("touch record claims %d ids in %d bytes", n, len(d.b))
		}
		o.touches = make([]Touch, n)
		for i := range o.touches {
			o.touches[i].ID = d.id()
			if st := d.take(stateSize); st != nil {
				o.touches[i].State = getState(st)
			}
		}
	case recCommit:
		if b := d.take(16); b != nil {
			o.seq = binary.LittleEndian.Uint64(b)
		}
	default:
		return o, fmt.Errorf("unknown record type %d", o.kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the record's contents", len(d.b))
	}
	return o, d.err
}
