package pil

import (
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A PNG decoder that delivers rows as it inflates them, so that a PNG of any size costs a few
// rows of memory (an interlaced one, whose rows are only complete after the last pass, costs its
// RGB image). It accepts and refuses what Go's image/png does — the same chunk order rules,
// checksums, lengths and "not enough / too much pixel data" — and converts to RGB by Pillow's
// rules: grey of 1, 2 and 4 bits scaled to 8, 16-bit samples by their high byte except 16-bit
// grey (Pillow's mode "I"), which clips at 255; palette indexes past the palette are black;
// alpha and tRNS are ignored, as convert("RGB") ignores them.

// Chunk order stages, as image/png's.
const (
	pngStart = iota
	pngSeenIHDR
	pngSeenPLTE
	pngSeentRNS
	pngSeenIDAT
	pngSeenIEND
)

// pngFile is a PNG being decoded: what its chunks before the image data said, and where it is.
type pngFile struct {
	data      []byte
	off       int // the next unread byte
	stage     int
	w, h      int
	depth     int
	colorType byte
	interlace bool
	bpp       int // bits per pixel
	palette   [256][3]byte
	chunkLen  uint32 // IDAT bytes left in the current chunk
	crc       uint32 // of the current chunk so far
}

func pngError(msg string) error { return errors.New("png: invalid format: " + msg) }

var errPNGOrder = pngError("chunk out of order")

// pngHeader reads the chunks up to the image data: the size, and the memory an interlaced image
// holds whole.
func pngHeader(data []byte) (header, error) {
	p, err := pngOpenChunks(data)
	if err != nil {
		return header{}, err
	}
	hd := header{w: p.w, h: p.h, rowMemory: 2 * int64(1+(p.bpp*p.w+7)/8)}
	if p.interlace {
		hd.whole, hd.goHeap = 3*int64(p.w)*int64(p.h), true
	}
	return hd, nil
}

// pngOpenChunks reads the signature and the chunks up to the first IDAT's data.
func pngOpenChunks(data []byte) (*pngFile, error) {
	if len(data) < 8 || string(data[:8]) != "\x89PNG\r\n\x1a\n" {
		return nil, pngError("not a PNG file")
	}
	p := &pngFile{data: data, off: 8}
	for p.stage != pngSeenIDAT {
		if err := p.chunk(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// need returns the next n bytes, or io.ErrUnexpectedEOF.
func (p *pngFile) need(n int) ([]byte, error) {
	if n < 0 || len(p.data)-p.off < n {
		return nil, io.ErrUnexpectedEOF
	}
	b := p.data[p.off : p.off+n]
	p.off += n
	return b, nil
}

// checksum reads a chunk's CRC and compares it with body's (after the type).
func (p *pngFile) checksum() error {
	b, err := p.need(4)
	if err != nil {
		return err
	}
	if binary.BigEndian.Uint32(b) != p.crc {
		return pngError("invalid checksum")
	}
	return nil
}

// chunk reads one chunk. At the first IDAT it stops after the chunk's header: the image data is
// read through the IDAT stream.
func (p *pngFile) chunk() error {
	hdr, err := p.need(8)
	if err != nil {
		return err
	}
	length := binary.BigEndian.Uint32(hdr)
	kind := string(hdr[4:8])
	p.crc = crc32.ChecksumIEEE(hdr[4:8])
	body := func() ([]byte, error) {
		if length > 0x7fffffff {
			return nil, pngError(fmt.Sprintf("Bad chunk length: %d", length))
		}
		b, err := p.need(int(length))
		if err != nil {
			return nil, err
		}
		p.crc = crc32.Update(p.crc, crc32.IEEETable, b)
		return b, nil
	}
	switch kind {
	case "IHDR":
		if p.stage != pngStart {
			return errPNGOrder
		}
		p.stage = pngSeenIHDR
		if length != 13 {
			return pngError("bad IHDR length")
		}
		b, err := body()
		if err != nil {
			return err
		}
		if err := p.ihdr(b); err != nil {
			return err
		}
		return p.checksum()
	case "PLTE":
		if p.stage != pngSeenIHDR {
			return errPNGOrder
		}
		p.stage = pngSeenPLTE
		np := int(length / 3)
		if length%3 != 0 || np <= 0 || np > 256 || np > 1<<p.depth {
			return pngError("bad PLTE length")
		}
		b, err := body()
		if err != nil {
			return err
		}
		switch p.colorType {
		case 3:
			for i := 0; i < np; i++ {
				p.palette[i] = [3]byte{b[3*i], b[3*i+1], b[3*i+2]}
			}
		case 2, 6: // optional, and ignorable, for true colour
		default:
			return pngError("PLTE, color type mismatch")
		}
		return p.checksum()
	case "tRNS":
		switch {
		case p.colorType == 3 && p.stage != pngSeenPLTE,
			p.colorType == 2 && p.stage != pngSeenIHDR && p.stage != pngSeenPLTE,
			p.colorType != 3 && p.colorType != 2 && p.stage != pngSeenIHDR:
			return errPNGOrder
		}
		p.stage = pngSeentRNS
		switch {
		case p.colorType == 0 && length != 2, p.colorType == 2 && length != 6, p.colorType == 3 && length > 256:
			return pngError("bad tRNS length")
		case p.colorType == 4 || p.colorType == 6:
			return pngError("tRNS, color type mismatch")
		}
		if _, err := body(); err != nil { // transparency: convert("RGB") ignores it
			return err
		}
		return p.checksum()
	case "IDAT":
		if p.stage < pngSeenIHDR || p.stage > pngSeenIDAT || (p.stage == pngSeenIHDR && p.colorType == 3) {
			return errPNGOrder
		}
		if p.stage != pngSeenIDAT {
			p.stage = pngSeenIDAT
			p.chunkLen = length
			return nil
		}
		// A zero-length or garbage IDAT after the image data: ignored, as image/png does.
	case "IEND":
		if p.stage != pngSeenIDAT {
			return errPNGOrder
		}
		p.stage = pngSeenIEND
		if length != 0 {
			return pngError("bad IEND length")
		}
		return p.checksum()
	}
	if _, err := body(); err != nil {
		return err
	}
	return p.checksum()
}

func (p *pngFile) ihdr(b []byte) error {
	if b[10] != 0 {
		return errors.New("png: unsupported feature: compression method")
	}
	if b[11] != 0 {
		return errors.New("png: unsupported feature: filter method")
	}
	if b[12] > 1 {
		return pngError("invalid interlace method")
	}
	p.interlace = b[12] == 1
	w, h := int32(binary.BigEndian.Uint32(b[0:4])), int32(binary.BigEndian.Uint32(b[4:8]))
	if w <= 0 || h <= 0 {
		return pngError("non-positive dimension")
	}
	p.w, p.h, p.depth, p.colorType = int(w), int(h), int(b[8]), b[9]
	channels := map[byte]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[p.colorType]
	ok := false
	switch p.depth {
	case 1, 2, 4:
		ok = p.colorType == 0 || p.colorType == 3
	case 8:
		ok = channels > 0
	case 16:
		ok = channels > 0 && p.colorType != 3
	}
	if !ok {
		return fmt.Errorf("png: unsupported feature: bit depth %d, color type %d", p.depth, p.colorType)
	}
	p.bpp = p.depth * channels
	return nil
}

// Read presents the IDAT chunks as one stream, checking each one's CRC at its end, as
// image/png's decoder does.
func (p *pngFile) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for p.chunkLen == 0 {
		if err := p.checksum(); err != nil {
			return 0, err
		}
		hdr, err := p.need(8)
		if err != nil {
			return 0, err
		}
		p.chunkLen = binary.BigEndian.Uint32(hdr)
		if string(hdr[4:8]) != "IDAT" {
			return 0, pngError("not enough pixel data")
		}
		p.crc = crc32.ChecksumIEEE(hdr[4:8])
	}
	if int32(p.chunkLen) < 0 {
		return 0, errors.New("png: unsupported feature: IDAT chunk length overflow")
	}
	n := min(len(b), int(p.chunkLen), len(p.data)-p.off)
	if n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	copy(b, p.data[p.off:p.off+n])
	p.off += n
	p.crc = crc32.Update(p.crc, crc32.IEEETable, b[:n])
	p.chunkLen -= uint32(n)
	return n, nil
}

// pngRows is a PNG's rows, converted to RGB as they are read.
type pngRows struct {
	p        *pngFile
	z        io.ReadCloser
	y        int
	cur, prv []byte
	whole    []byte // an interlaced image, assembled from its passes
}

func openPNG(data []byte, _ header) (rows, error) {
	p, err := pngOpenChunks(data)
	if err != nil {
		return nil, err
	}
	z, err := zlib.NewReader(p)
	if err != nil {
		return nil, pngErr(err)
	}
	r := &pngRows{p: p, z: z}
	if !p.interlace {
		n := 1 + (p.bpp*p.w+7)/8
		r.cur, r.prv = make([]byte, n), make([]byte, n)
		return r, nil
	}
	r.whole = make([]byte, 3*p.w*p.h)
	if err := r.passes(); err != nil {
		return nil, err
	}
	return r, nil
}

func pngErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: PNG: %v", ErrFormat, err)
}

func (r *pngRows) read(dst []byte) error {
	p := r.p
	if r.whole != nil {
		copy(dst, r.whole[3*p.w*r.y:])
	} else {
		if err := r.row(r.cur, r.prv); err != nil {
			return err
		}
		p.convert(dst, r.cur[1:], p.w)
		r.cur, r.prv = r.prv, r.cur
	}
	r.y++
	if r.y == p.h && r.whole == nil {
		return r.end()
	}
	return nil
}

func (r *pngRows) size() (int, int) { return r.p.w, r.p.h }

func (r *pngRows) close() { r.z.Close() }

// row reads and unfilters the next row of the current pass into cur (filter byte first).
func (r *pngRows) row(cur, prv []byte) error {
	if _, err := io.ReadFull(r.z, cur); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return pngErr(pngError("not enough pixel data"))
		}
		return pngErr(err)
	}
	bpp := (r.p.bpp + 7) / 8
	c, pr := cur[1:], prv[1:]
	switch cur[0] {
	case 0:
	case 1:
		for i := bpp; i < len(c); i++ {
			c[i] += c[i-bpp]
		}
	case 2:
		for i, v := range pr {
			c[i] += v
		}
	case 3:
		for i := 0; i < bpp; i++ {
			c[i] += pr[i] / 2
		}
		for i := bpp; i < len(c); i++ {
			c[i] += uint8((int(c[i-bpp]) + int(pr[i])) / 2)
		}
	case 4:
		for i := range c {
			var a, b, cc int
			b = int(pr[i])
			if i >= bpp {
				a, cc = int(c[i-bpp]), int(pr[i-bpp])
			}
			pa, pb, pc := abs(b-cc), abs(a-cc), abs(a+b-2*cc)
			switch {
			case pa <= pb && pa <= pc:
				c[i] += uint8(a)
			case pb <= pc:
				c[i] += uint8(b)
			default:
				c[i] += uint8(cc)
			}
		}
	default:
		return pngErr(pngError("bad filter type"))
	}
	return nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// passes reads the seven passes of an interlaced image into r.whole.
func (r *pngRows) passes() error {
	p := r.p
	rgb := make([]byte, 3*p.w)
	for _, s := range [7][4]int{{8, 8, 0, 0}, {8, 8, 4, 0}, {4, 8, 0, 4}, {4, 4, 2, 0}, {2, 4, 0, 2}, {2, 2, 1, 0}, {1, 2, 0, 1}} {
		xf, yf, xo, yo := s[0], s[1], s[2], s[3]
		pw, ph := (p.w-xo+xf-1)/xf, (p.h-yo+yf-1)/yf
		if pw == 0 || ph == 0 {
			continue // no row, not even a filter byte
		}
		n := 1 + (p.bpp*pw+7)/8
		cur, prv := make([]byte, n), make([]byte, n)
		for y := 0; y < ph; y++ {
			if err := r.row(cur, prv); err != nil {
				return err
			}
			p.convert(rgb, cur[1:], pw)
			row := r.whole[3*p.w*(y*yf+yo):]
			for x := 0; x < pw; x++ {
				copy(row[3*(x*xf+xo):3*(x*xf+xo)+3], rgb[3*x:])
			}
			cur, prv = prv, cur
		}
	}
	return r.end()
}

// end checks what follows the last row as image/png does: the zlib stream ends (its checksum
// verified) with the IDAT data, and the chunks after it are well formed up to IEND.
func (r *pngRows) end() error {
	var b [1]byte
	n, err := 0, error(nil)
	for i := 0; n == 0 && err == nil; i++ {
		if i == 100 {
			return pngErr(io.ErrNoProgress)
		}
		n, err = r.z.Read(b[:])
	}
	if err != nil && err != io.EOF {
		return pngErr(pngError(err.Error()))
	}
	p := r.p
	if n != 0 || p.chunkLen != 0 {
		return pngErr(pngError("too much pixel data"))
	}
	if err := p.checksum(); err != nil {
		return pngErr(err)
	}
	for p.stage != pngSeenIEND {
		if err := p.chunk(); err != nil {
			return pngErr(err)
		}
	}
	return nil
}

// convert writes n pixels of unfiltered row data src as RGB to dst.
func (p *pngFile) convert(dst, src []byte, n int) {
	switch {
	case p.colorType == 3: // palette
		for x := 0; x < n; x++ {
			c := p.palette[p.sample(src, x)]
			dst[3*x], dst[3*x+1], dst[3*x+2] = c[0], c[1], c[2]
		}
	case p.colorType == 0 && p.depth < 8:
		scale := byte(255 / (1<<p.depth - 1)) // 0xff, 0x55, 0x11 for 1, 2, 4 bits
		for x := 0; x < n; x++ {
			v := p.sample(src, x) * scale
			dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
		}
	case p.colorType == 0 && p.depth == 16:
		for x := 0; x < n; x++ {
			v := byte(255)
			if src[2*x] == 0 {
				v = src[2*x+1]
			}
			dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
		}
	case p.colorType == 0 || p.colorType == 4: // grey, grey and alpha: the (high) byte of grey
		step := p.bpp / 8
		for x := 0; x < n; x++ {
			v := src[step*x]
			dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
		}
	default: // RGB and RGBA, 8 or 16 bits: the (high) bytes of R, G and B
		step, c := p.bpp/8, p.depth/8
		for x := 0; x < n; x++ {
			s := src[step*x:]
			dst[3*x], dst[3*x+1], dst[3*x+2] = s[0], s[c], s[2*c]
		}
	}
}

// sample is pixel x of a row of 1, 2, 4 or 8-bit samples.
func (p *pngFile) sample(src []byte, x int) byte {
	if p.depth == 8 {
		return src[x]
	}
	bit := x * p.depth
	return src[bit/8] >> (8 - p.depth - bit%8) & (1<<p.depth - 1)
}
