package shard

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
)

// Header is a validated .npy header (format versions 1.0, 2.0 and 3.0).
type Header struct {
	DType      string // as written, e.g. "<f4", "<U44"
	Order      byte   // '<' little-endian, '>' big-endian, '|' not applicable
	Kind       byte   // 'f' float, 'i' signed, 'u' unsigned, 'U' UTF-32 text, 'S' bytes
	ItemSize   int    // bytes per element
	Fortran    bool   // column-major data
	Shape      []int
	DataOffset int64 // where the array data starts
}

// Elems returns the number of elements (1 for a scalar).
func (h *Header) Elems() int {
	n := 1
	for _, d := range h.Shape {
		n *= d
	}
	return n
}

// DataBytes returns the size of the array data.
func (h *Header) DataBytes() int64 { return int64(h.Elems()) * int64(h.ItemSize) }

const maxHeaderLen = 1 << 20 // numpy itself refuses to read headers over ~10 kB by default

// ReadHeader reads and validates an npy header. It accepts what numpy writes for plain arrays of
// numbers and strings and refuses, with a reason, everything else: other magic, unknown versions,
// malformed dictionaries, structured dtypes, and object arrays (which numpy stores as a pickle
// that simsearch never loads).
func ReadHeader(r io.Reader) (*Header, error) {
	br := bufio.NewReader(r)
	var pre [8]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return nil, fmt.Errorf("not an npy file: %d bytes is too short for the npy magic", len(pre))
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("not an npy file: wrong magic %q", pre[:6])
	}
	major := pre[6]
	var hlen, fixed int
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("truncated npy header")
		}
		hlen, fixed = int(binary.LittleEndian.Uint16(b[:])), 10
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("truncated npy header")
		}
		v := binary.LittleEndian.Uint32(b[:])
		if v > maxHeaderLen {
			return nil, fmt.Errorf("npy header length %d is implausibly large", v)
		}
		hlen, fixed = int(v), 12
	default:
		return nil, fmt.Errorf("unsupported npy format version %d.%d", major, pre[7])
	}
	text := make([]byte, hlen)
	if _, err := io.ReadFull(br, text); err != nil {
		return nil, fmt.Errorf("truncated npy header: want %d bytes of header text", hlen)
	}
	h, err := parseDict(string(text))
	if err != nil {
		return nil, fmt.Errorf("malformed npy header %q: %w", strings.TrimSpace(string(text)), err)
	}
	if err := h.parseDType(); err != nil {
		return nil, err
	}
	if err := h.checkSize(); err != nil {
		return nil, err
	}
	h.DataOffset = int64(fixed + hlen)
	return h, nil
}

// parseDict parses the header's Python dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (10000, 1280), }
func parseDict(s string) (*Header, error) {
	p := &lexer{s: strings.TrimRight(s, " \n\x00")}
	if !p.eat('{') {
		return nil, fmt.Errorf("want '{'")
	}
	h := &Header{}
	seen := map[string]bool{}
	for !p.eat('}') {
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q repeated", key)
		}
		seen[key] = true
		if !p.eat(':') {
			return nil, fmt.Errorf("want ':' after %q", key)
		}
		switch key {
		case "descr":
			if p.peek() == '[' {
				return nil, fmt.Errorf("structured dtype (a list of fields) is not supported")
			}
			if h.DType, err = p.str(); err != nil {
				return nil, err
			}
		case "fortran_order":
			switch {
			case p.word("True"):
				h.Fortran = true
			case p.word("False"):
			default:
				return nil, fmt.Errorf("fortran_order must be True or False")
			}
		case "shape":
			if h.Shape, err = p.shape(); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown key %q", key)
		}
		if !p.eat(',') && p.peek() != '}' {
			return nil, fmt.Errorf("want ',' or '}' after %q", key)
		}
	}
	if p.skipSpace(); p.i != len(p.s) {
		return nil, fmt.Errorf("text after the dictionary")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return nil, fmt.Errorf("missing key %q", k)
		}
	}
	return h, nil
}

func (h *Header) checkSize() error {
	total := uint64(h.ItemSize)
	for _, d := range h.Shape {
		hi, lo := bits.Mul64(total, uint64(d))
		if hi != 0 || lo > 1<<62 {
			return fmt.Errorf("shape %v is too large", h.Shape)
		}
		total = lo
	}
	return nil
}

func (h *Header) parseDType() error {
	d := h.DType
	if len(d) < 2 {
		return fmt.Errorf("dtype %q not understood", d)
	}
	order := d[0]
	switch order {
	case '<', '>', '|':
	case '=':
		order = '<' // numpy writes '=' only for native order on little-endian machines
	default:
		return fmt.Errorf("dtype %q not understood (want a byte-order character first)", d)
	}
	kind := d[1]
	if kind == 'O' {
		return fmt.Errorf("dtype %q is an object array: its data is a Python pickle, which simsearch never loads; save plain numbers or strings", d)
	}
	size, err := strconv.Atoi(d[2:])
	if err != nil || size <= 0 || size > 1<<20 {
		return fmt.Errorf("dtype %q not understood", d)
	}
	switch kind {
	case 'f':
		if size != 2 && size != 4 && size != 8 {
			return fmt.Errorf("dtype %q: unsupported float size", d)
		}
	case 'i', 'u':
		if size != 1 && size != 2 && size != 4 && size != 8 {
			return fmt.Errorf("dtype %q: unsupported integer size", d)
		}
	case 'U':
		size *= 4 // UTF-32 code units
	case 'S':
	default:
		return fmt.Errorf("dtype %q is not supported (want float, integer or string)", d)
	}
	h.Order, h.Kind, h.ItemSize = order, kind, size
	return nil
}

type lexer struct {
	s string
	i int
}

func (p *lexer) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *lexer) peek() byte {
	if p.skipSpace(); p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *lexer) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *lexer) word(w string) bool {
	if p.skipSpace(); strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

// str reads a quoted string without escapes (numpy never writes any in a header).
func (p *lexer) str() (string, error) {
	q := p.peek()
	if q != '\'' && q != '"' {
		return "", fmt.Errorf("want a quoted string at offset %d", p.i)
	}
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", fmt.Errorf("unterminated string at offset %d", p.i)
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsRune(v, '\\') {
		return "", fmt.Errorf("escaped string at offset %d", p.i)
	}
	p.i += end + 2
	return v, nil
}

// shape reads a tuple of non-negative integers: (), (3,), (3, 4).
func (p *lexer) shape() ([]int, error) {
	if !p.eat('(') {
		return nil, fmt.Errorf("shape must be a tuple")
	}
	shape := []int{}
	for !p.eat(')') {
		p.skipSpace()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		n, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
		if err != nil || n > 1<<40 {
			return nil, fmt.Errorf("bad shape dimension at offset %d", p.i)
		}
		shape = append(shape, int(n))
		p.i = j
		if !p.eat(',') && p.peek() != ')' {
			return nil, fmt.Errorf("want ',' or ')' in shape")
		}
	}
	return shape, nil
}
