package collection

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"unicode/utf8"
)

// The change log's layout; FORMAT.md ("The change log") is the specification. Version 2 adds
// the abort record and the add record with signatures; a version-1 log is read as it is and
// rewritten as version 2 by the first writer that appends to it.
const (
	LogVersion    = 2
	logHeaderSize = 64
	recordHead    = 8       // u32 body length, u32 CRC-32C of the body
	maxRecord     = 1 << 30 // a longer body is damage, not data
	stateSize     = 48      // FileState on disk
	commitLen     = 17      // a commit record's body

	recAdd    = 1 // version 1's add: no signatures (read, never written)
	recDelete = 2
	recTouch  = 3
	recCommit = 4
	recAbort  = 5 // version 2: the records since the last commit or abort are not part of the collection
	recAddSig = 6 // version 2: add, with each row's signature on the base's PCA basis

	// recordBytes bounds the add records a writer appends (a batch is split into records of about
	// this size), so that a reader needs no more memory than this per record.
	recordBytes = 4 << 20
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

// logHeader encodes the 64-byte header of a version-2 log for a base of dim-float rows.
func logHeader(dim int, base Identity) []byte {
	b := make([]byte, logHeaderSize)
	copy(b, LogMagic[:])
	binary.LittleEndian.PutUint32(b[8:], LogVersion)
	binary.LittleEndian.PutUint32(b[12:], uint32(dim))
	copy(b[16:48], base[:])
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

// parseLogHeader checks a log's header and returns the base identity, dim and version it records.
func parseLogHeader(b []byte) (Identity, int, int, error) {
	var id Identity
	if len(b) < logHeaderSize {
		return id, 0, 0, fmt.Errorf("%w: %d bytes, shorter than its 64-byte header", ErrFormat, len(b))
	}
	if [8]byte(b[:8]) != LogMagic {
		return id, 0, 0, fmt.Errorf("%w: not a simsearch change log (magic %q)", ErrFormat, b[:8])
	}
	if got := crc32.Checksum(b[:60], castagnoli); got != binary.LittleEndian.Uint32(b[60:]) {
		return id, 0, 0, fmt.Errorf("%w: header checksum %08x does not match (damaged header)", ErrFormat, got)
	}
	v := binary.LittleEndian.Uint32(b[8:])
	if v != 1 && v != LogVersion {
		return id, 0, 0, fmt.Errorf("%w: version %d, this simsearch reads versions 1 and %d", ErrFormat, v, LogVersion)
	}
	for _, x := range b[48:60] {
		if x != 0 {
			return id, 0, 0, fmt.Errorf("%w: reserved header bytes are not zero", ErrFormat)
		}
	}
	copy(id[:], b[16:48])
	return id, int(binary.LittleEndian.Uint32(b[12:])), int(v), nil
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

func appendFloats(b []byte, v []float32) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// addBody encodes rows as a version-2 add record with their signatures (width floats per row,
// 0 for none) and an upper bound of their distance from the basis's mean. It returns, for each
// row, where its vector and its signature start in the body.
func addBody(rows []Row, sigs []float32, width int, maxNorm float64) (body []byte, vec, sig []int) {
	body = []byte{recAddSig}
	body = binary.LittleEndian.AppendUint32(body, uint32(len(rows)))
	body = binary.LittleEndian.AppendUint32(body, uint32(width))
	body = binary.LittleEndian.AppendUint64(body, math.Float64bits(maxNorm))
	var st [stateSize]byte
	for i, r := range rows {
		body = appendID(body, r.ID)
		putState(st[:], r.State)
		body = append(body, st[:]...)
		vec = append(vec, len(body))
		body = appendFloats(body, r.Vector)
		sig = append(sig, len(body))
		body = appendFloats(body, sigs[i*width:(i+1)*width])
	}
	return body, vec, sig
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

func abortBody() []byte { return []byte{recAbort} }

// rowRef is an added row as the log holds it: its id and file state, and where its vector (and
// signature) are in the log file. Vectors stay in the file until a view or a compaction reads
// them, so that neither the reader nor the writer holds the log's vectors twice.
type rowRef struct {
	ID    string
	State FileState
	vec   int64   // file offset of its dim float32 values
	sig   int64   // file offset of its signature (the base PCA section's width); 0: none
	norm  float64 // with sig: an upper bound of its distance from the basis's mean
}

// op is one decoded record.
type op struct {
	kind    byte
	rows    []rowRef // add
	ids     []string
	touches []Touch
	seq     uint64 // commit
}

// scanLog reads the records of a log of size bytes after its header, in order, and calls fn for
// each whole record whose checksum holds, with the offsets where it starts and ends. It returns
// where the intact records end: a record that runs past the end of the file or whose checksum
// fails ends them, and what follows is the torn tail of an interrupted append, which readers
// ignore, unless a valid commit record follows it: then the log is damaged (a committed record
// changed on disk: a commit is appended only once every record before it is synced, so a crash
// cannot leave a bad record before one), and scanLog says so rather than lose what was committed
// after it.
//
// sigWidth is the width of the base PCA section's signatures, 0 when the base has none this
// package reads (the signatures of add records are then ignored).
func scanLog(r io.ReaderAt, size int64, version, dim, sigWidth int, fn func(o op, start, end int64) error) (int64, error) {
	pos := int64(logHeaderSize)
	br := bufio.NewReaderSize(io.NewSectionReader(r, pos, size-pos), 1<<20)
	var head [recordHead]byte
	var body []byte
	var lastSeq uint64
	bad := func(why string) (int64, error) {
		if at, ok := findCommit(r, pos+1, size, lastSeq); ok {
			return pos, fmt.Errorf("%w: the record at byte %d is damaged (%s), yet a valid commit record follows at byte %d: this is damage to committed records, not an interrupted write; "+
				"nothing was cut (restore the file from a backup, or move it aside to fall back to the index file alone)", ErrFormat, pos, why, at)
		}
		return pos, nil
	}
	for {
		if size-pos < recordHead {
			return pos, nil // nothing, or a few bytes of a torn record head: too short for a commit
		}
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return pos, shorter(err)
		}
		n := int64(binary.LittleEndian.Uint32(head[:]))
		if n == 0 || n > maxRecord || n > size-pos-recordHead {
			return bad(fmt.Sprintf("a record length of %d bytes with %d left in the file", n, size-pos-recordHead))
		}
		if int64(cap(body)) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return pos, shorter(err)
		}
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(head[4:]) {
			return bad("its checksum does not match")
		}
		o, err := decodeOp(body, pos+recordHead, version, dim, sigWidth)
		if err != nil {
			// The checksum holds, so the writer wrote this: a bug or another program, not a crash.
			return pos, fmt.Errorf("%w: record at byte %d: %v", ErrFormat, pos, err)
		}
		end := pos + recordHead + n
		if err := fn(o, pos, end); err != nil {
			return pos, err
		}
		if o.kind == recCommit {
			lastSeq = o.seq
		}
		pos = end
	}
}

// shorter reads a log that ended before the size it had when stat'ed as ending there: the next
// writer cuts torn bytes, which a reader may have counted.
func shorter(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil
	}
	return err
}

// findCommit looks for a valid commit record starting at or after from whose sequence number is
// above after: the sign that a bad record is damage rather than a torn tail. A record of random
// bytes passes for one with a chance of about 2⁻³² per position.
func findCommit(r io.ReaderAt, from, size int64, after uint64) (int64, bool) {
	const span = recordHead + commitLen
	buf := make([]byte, 1<<20)
	for base := from; size-base >= span; base += int64(len(buf) - span + 1) {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-base)], base)
		if err != nil && err != io.EOF {
			return 0, false
		}
		b := buf[:n]
		for i := 0; i+span <= len(b); i++ {
			if binary.LittleEndian.Uint32(b[i:]) != commitLen || b[i+recordHead] != recCommit {
				continue
			}
			body := b[i+recordHead : i+span]
			if crc32.Checksum(body, castagnoli) == binary.LittleEndian.Uint32(b[i+4:]) && binary.LittleEndian.Uint64(body[1:]) > after {
				return base + int64(i), true
			}
		}
		if int64(n) < int64(len(buf)) {
			break
		}
	}
	return 0, false
}

// decoder reads a record body, remembering the first error.
type decoder struct {
	b   []byte
	pos int // of b[0] in the body
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
	d.pos += n
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
		if err := ValidID(s); err != nil {
			d.err = err
		}
	}
	return s
}

// floats checks that the next n float32 values are finite and returns where they start.
func (d *decoder) floats(n int, what string, id string) int {
	at := d.pos
	raw := d.take(4 * n)
	for c := 0; raw != nil && c < n; c++ {
		v := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*c:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			d.err = fmt.Errorf("row %q %s value %d is %v", id, what, c, v)
			return at
		}
	}
	return at
}

// ValidID checks an id against the rules of the index's ids: non-empty UTF-8 without NUL bytes.
func ValidID(id string) error {
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

// decodeOp decodes a record body that starts at byte off of the log.
func decodeOp(body []byte, off int64, version, dim, sigWidth int) (op, error) {
	d := &decoder{b: body[1:], pos: 1}
	o := op{kind: body[0]}
	switch o.kind {
	case recAdd, recAddSig:
		if o.kind == recAddSig && version < 2 {
			return o, fmt.Errorf("record type %d in a version-%d log", o.kind, version)
		}
		n := d.u32()
		width, norm := 0, 0.0
		if o.kind == recAddSig {
			width = d.u32()
			if b := d.take(8); b != nil {
				norm = math.Float64frombits(binary.LittleEndian.Uint64(b))
			}
			switch {
			case width == 1 || width > dim+1: // rank+1 with 1 ≤ rank ≤ dim, whether the section is read or not
				return o, fmt.Errorf("add record with signatures of %d floats for rows of %d (want 0, or 2 to %d)", width, dim, dim+1)
			case width > 0 && sigWidth > 0 && width != sigWidth:
				return o, fmt.Errorf("add record with signatures of %d floats, the base's PCA section has %d", width, sigWidth)
			case math.IsNaN(norm) || math.IsInf(norm, 0) || norm < 0:
				return o, fmt.Errorf("add record with a largest norm of %v", norm)
			}
		}
		if n > len(d.b)/(4+stateSize+4*(dim+width)) {
			return o, fmt.Errorf("add record claims %d rows in %d bytes", n, len(d.b))
		}
		o.rows = make([]rowRef, n)
		for i := range o.rows {
			r := &o.rows[i]
			r.ID = d.id()
			if st := d.take(stateSize); st != nil {
				r.State = getState(st)
			}
			r.vec = off + int64(d.floats(dim, "column", r.ID))
			if width > 0 {
				at := d.floats(width, "signature", r.ID)
				if width == sigWidth {
					r.sig, r.norm = off+int64(at), norm
				}
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
	case recAbort:
		if version < 2 {
			return o, fmt.Errorf("record type %d in a version-%d log", o.kind, version)
		}
	default:
		return o, fmt.Errorf("unknown record type %d", o.kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the record's contents", len(d.b))
	}
	return o, d.err
}
