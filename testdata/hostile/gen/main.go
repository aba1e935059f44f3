// Command gen writes the hostile images of testdata/hostile: files that claim or decode to more
// pixels than Pillow opens (header bombs and decompression bombs), truncated files and files
// whose headers lie about their data, in every format simsearch reads. Every one must be refused
// cleanly, quickly and without a large allocation, but for those in loadable/: bombs under
// Pillow's limit, which Pillow opens, and simsearch must decode within bounded memory (or, in a
// server, refuse for their cost). Run from the repository root:
//
//	go run ./testdata/hostile/gen
//
// The output is deterministic; the files are committed (each under 200 KB, but for the one bomb
// that cannot be smaller: deflate shrinks at most about 1000 to 1, so a PNG of 676 MB of pixel
// data takes 657 KB).
package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"io"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

const (
	out    = "testdata/hostile"
	images = "testdata/images"
)

func main() {
	files := map[string][]byte{
		// Header bombs: a header claiming far more pixels than Pillow's limit, and next to no data.
		"header_bomb.png":  pngFile(1_000_000, 1_000_000, 8, 2, zlibBytes(make([]byte, 64))),
		"header_bomb.gif":  gifHeaderBomb(),
		"header_bomb.jpg":  jpegResized(read("elephants_small.jpg"), 60000, 60000),
		"header_bomb.webp": webpResized(read("wood.webp"), 16383, 16383),
		"header_bomb.tif":  tiffFile(1_000_000, 1_000_000, 8, 1, 0, make([]byte, 64)),
		"header_bomb.bmp":  bmpHeader(1_000_000, 1_000_000, 24, 64),
		// Decompression bombs: real image data of 400 or 182 million pixels, in a few dozen KB.
		"bomb_20000x20000_1bit.png": pngFile(20000, 20000, 1, 0, zlibBytes(zeroRows(20000, (20000+7)/8, true))),
		"bomb_14000x13000.gif":      gifBomb(14000, 13000),
		"bomb_20000x20000_1bit.tif": tiffFile(20000, 20000, 1, 1, 8, zlibBytes(zeroRows(20000, (20000+7)/8, false))),
		// Truncated files: the first half of a good file.
		"truncated.png":  half(read("horse.png")),
		"truncated.gif":  half(read("astronaut.gif")),
		"truncated.jpg":  half(read("elephants_small.jpg")),
		"truncated.webp": half(read("wood.webp")),
		"truncated.tif":  half(encode(func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) })),
		"truncated.bmp":  half(encode(bmp.Encode)),
		// Lying files: headers that promise more than the data holds.
		"lying_size.png":        pngFile(1000, 1000, 8, 2, zlibBytes(zeroRows(10, 30, true))),
		"lying_zero_height.jpg": jpegResized(read("elephants_small.jpg"), 4000, 0),
		"lying_size.bmp":        bmpHeader(1000, 1000, 24, 300),
		"lying_offsets.tif":     tiffFile(64, 64, 8, 1, 0, nil),
		"lying_riff_size.webp":  webpLyingRIFF(read("wood.webp")),
		"lying_frame.gif":       gifLyingFrame(),
		"lying_png_is_text.png": []byte("\x89PNG\r\n\x1a\nthis is not a PNG chunk stream"),
	}
	// Loadable bombs: under Pillow's limit, so Pillow opens them and simsearch must too, but each
	// decodes to 16 to 169 million pixels: 64 MB to 1.2 GB if held whole.
	files["loadable/bomb_4000x4000_1bit.png"] = pngFile(4000, 4000, 1, 0, zlibBytes(zeroRows(4000, (4000+7)/8, true)))
	files["loadable/bomb_13000x13000_rgba.png"] = pngFile(13000, 13000, 8, 6, zlibBytes(zeroRows(13000, 4*13000, true)))
	// JPEG: the entropy data stops after a few bytes, at the EOI marker; libjpeg (for Pillow too)
	// warns and decodes the rest as zero coefficients, a flat grey image. The progressive one
	// makes libjpeg keep every DCT coefficient of the image: 2 bytes x 64 per block, 1 GB here.
	files["loadable/bomb_13000x13000_baseline.jpg"] = jpegBomb(13000, 13000, false)
	files["loadable/bomb_13000x13000_progressive.jpg"] = jpegBomb(13000, 13000, true)
	// WebP lossless: one colour, every prefix code of a single symbol, so no pixel costs a bit.
	files["loadable/bomb_13000x13000_lossless.webp"] = webpLosslessBomb(13000, 13000)
	files["loadable/bomb_5000x5000_lossless.webp"] = webpLosslessBomb(5000, 5000)
	// Over Pillow's MAX_IMAGE_PIXELS but not over twice it: Pillow warns and loads it.
	files["loadable/warn_10000x9000_1bit.png"] = pngFile(10000, 9000, 1, 0, zlibBytes(zeroRows(9000, (10000+7)/8, true)))
	if err := os.MkdirAll(filepath.Join(out, "loadable"), 0o755); err != nil {
		log.Fatal(err)
	}
	for name, b := range files {
		if len(b) > 200<<10 && name != "loadable/bomb_13000x13000_rgba.png" {
			log.Fatalf("%s: %d bytes, over the 200 KB budget", name, len(b))
		}
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func read(name string) []byte {
	b, err := os.ReadFile(filepath.Join(images, name))
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func half(b []byte) []byte { return b[:len(b)/2] }

// encode writes a small colour image with a Go encoder.
func encode(enc func(w io.Writer, m image.Image) error) []byte {
	m := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for i := range m.Pix {
		m.Pix[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	if err := enc(&buf, m); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}

func zlibBytes(raw []byte) []byte {
	var buf bytes.Buffer
	w, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	w.Write(raw)
	w.Close()
	return buf.Bytes()
}

// zeroRows is rows of rowBytes zero bytes, each preceded by PNG's filter byte when filtered.
func zeroRows(rows, rowBytes int, filtered bool) []byte {
	if filtered {
		rowBytes++
	}
	return make([]byte, rows*rowBytes)
}

func pngFile(w, h uint32, depth, colorType byte, idat []byte) []byte {
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, depth, colorType, 0, 0, 0)
	chunk(&buf, "IHDR", ihdr)
	chunk(&buf, "IDAT", idat)
	chunk(&buf, "IEND", nil)
	return buf.Bytes()
}

func chunk(buf *bytes.Buffer, kind string, data []byte) {
	binary.Write(buf, binary.BigEndian, uint32(len(data)))
	crc := crc32.NewIEEE()
	crc.Write([]byte(kind))
	crc.Write(data)
	buf.WriteString(kind)
	buf.Write(data)
	binary.Write(buf, binary.BigEndian, crc.Sum32())
}

// gifBomb encodes a w×h image of one colour: LZW turns it into a small file.
func gifBomb(w, h int) []byte {
	m := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black, color.White})
	var buf bytes.Buffer
	if err := gif.Encode(&buf, m, nil); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}

// gifHeaderBomb is a 1×1 GIF whose logical screen is 65535×65535.
func gifHeaderBomb() []byte {
	b := gifBomb(1, 1)
	binary.LittleEndian.PutUint16(b[6:], 65535)
	binary.LittleEndian.PutUint16(b[8:], 65535)
	return b
}

// gifLyingFrame is a GIF whose first frame is larger than its logical screen.
func gifLyingFrame() []byte {
	b := gifBomb(16, 16)
	binary.LittleEndian.PutUint16(b[6:], 4)
	binary.LittleEndian.PutUint16(b[8:], 4)
	return b
}

// jpegResized rewrites the size in a JPEG's frame header, leaving its data as it was.
func jpegResized(b []byte, w, h uint16) []byte {
	b = bytes.Clone(b)
	for i := 2; i+9 < len(b); {
		m := b[i+1]
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if m >= 0xC0 && m <= 0xC2 {
			binary.BigEndian.PutUint16(b[i+5:], h)
			binary.BigEndian.PutUint16(b[i+7:], w)
			return b
		}
		i += 2 + n
	}
	log.Fatal("no SOF marker")
	return nil
}

// webpResized rewrites the size in a lossy WebP's VP8 frame header (14 bits each).
func webpResized(b []byte, w, h uint16) []byte {
	b = bytes.Clone(b)
	i := bytes.Index(b, []byte("VP8 "))
	if i < 0 {
		log.Fatal("not a simple lossy WebP")
	}
	// chunk header (8), frame tag (3), start code (3), then width and height.
	binary.LittleEndian.PutUint16(b[i+14:], w&0x3fff)
	binary.LittleEndian.PutUint16(b[i+16:], h&0x3fff)
	return b
}

// webpLyingRIFF claims a RIFF payload four times longer than the file.
func webpLyingRIFF(b []byte) []byte {
	b = bytes.Clone(b[:len(b)/4])
	binary.LittleEndian.PutUint32(b[4:], uint32(4*len(b)))
	return b
}

// tiffFile writes a one-strip greyscale TIFF; compression 8 is deflate, 0 none. Without data,
// the strip points past the end of the file.
func tiffFile(w, h uint32, bits, spp, compression uint16, data []byte) []byte {
	if compression == 0 {
		compression = 1
	}
	offset := uint32(8)
	count := uint32(len(data))
	if data == nil {
		offset, count = 1<<20, w*h
	}
	type entry struct {
		tag, typ uint16
		val      uint32
	}
	entries := []entry{
		{256, 4, w}, {257, 4, h}, {258, 3, uint32(bits)}, {259, 3, uint32(compression)},
		{262, 3, 1}, {273, 4, offset}, {277, 3, uint32(spp)}, {278, 4, h}, {279, 4, count},
	}
	var buf bytes.Buffer
	buf.WriteString("II*\x00")
	binary.Write(&buf, binary.LittleEndian, uint32(8+len(data)))
	buf.Write(data)
	binary.Write(&buf, binary.LittleEndian, uint16(len(entries)))
	for _, e := range entries {
		binary.Write(&buf, binary.LittleEndian, e.tag)
		binary.Write(&buf, binary.LittleEndian, e.typ)
		binary.Write(&buf, binary.LittleEndian, uint32(1))
		binary.Write(&buf, binary.LittleEndian, e.val)
	}
	binary.Write(&buf, binary.LittleEndian, uint32(0))
	return buf.Bytes()
}

// bmpHeader is a bottom-up BMP of the given size followed by only dataBytes bytes of pixels.
func bmpHeader(w, h int32, bits uint16, dataBytes int) []byte {
	var buf bytes.Buffer
	buf.WriteString("BM")
	binary.Write(&buf, binary.LittleEndian, uint32(54+dataBytes))
	binary.Write(&buf, binary.LittleEndian, uint32(0))
	binary.Write(&buf, binary.LittleEndian, uint32(54))
	binary.Write(&buf, binary.LittleEndian, uint32(40))
	binary.Write(&buf, binary.LittleEndian, w)
	binary.Write(&buf, binary.LittleEndian, h)
	binary.Write(&buf, binary.LittleEndian, uint16(1))
	binary.Write(&buf, binary.LittleEndian, bits)
	buf.Write(make([]byte, 24)) // compression 0 and the rest
	buf.Write(make([]byte, dataBytes))
	return buf.Bytes()
}

// jpegBomb is a w×h YCbCr JPEG (three components, no subsampling) whose Huffman tables have one
// code each, of one bit: category 0 for DC, end-of-block for AC. Its entropy data is 16 zero
// bytes, then EOI.
func jpegBomb(w, h uint16, progressive bool) []byte {
	var buf bytes.Buffer
	seg := func(marker byte, data ...byte) {
		buf.Write([]byte{0xFF, marker, byte((len(data) + 2) >> 8), byte(len(data) + 2)})
		buf.Write(data)
	}
	buf.Write([]byte{0xFF, 0xD8})
	seg(0xDB, append([]byte{0}, bytes.Repeat([]byte{1}, 64)...)...) // quantisation table 0: all 1
	sof := byte(0xC0)
	if progressive {
		sof = 0xC2
	}
	seg(sof, 8, byte(h>>8), byte(h), byte(w>>8), byte(w), 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0)
	oneCode := func(class, symbol byte) []byte { // BITS: one code of length 1; HUFFVAL
		return append(append([]byte{class << 4}, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), symbol)
	}
	seg(0xC4, append(oneCode(0, 0), oneCode(1, 0)...)...)
	if progressive {
		seg(0xDA, 3, 1, 0, 2, 0, 3, 0, 0, 0, 0) // the DC first scan: Ss = Se = 0, Ah = Al = 0
	} else {
		seg(0xDA, 3, 1, 0, 2, 0, 3, 0, 0, 63, 0)
	}
	buf.Write(make([]byte, 16))
	buf.Write([]byte{0xFF, 0xD9})
	return buf.Bytes()
}

// webpLosslessBomb is a w×h VP8L image of one opaque black: no transform, no colour cache, and
// five simple prefix codes of one symbol each (green, red, blue 0; alpha 255; distance 0).
func webpLosslessBomb(w, h uint32) []byte {
	var bits uint64
	n := 0
	put := func(v uint64, width int) { bits |= v << n; n += width }
	put(uint64(w-1), 14)
	put(uint64(h-1), 14)
	put(0, 1) // alpha_is_used: a hint
	put(0, 3) // version
	put(0, 1) // no transform
	put(0, 1) // no colour cache
	put(0, 1) // one prefix-code group
	for _, sym := range []uint64{0, 0, 0, 255, 0} {
		put(1, 1) // simple code
		put(0, 1) // of one symbol
		if sym < 2 {
			put(0, 1) // of 1 bit
			put(sym, 1)
		} else {
			put(1, 1) // of 8 bits
			put(sym, 8)
		}
	}
	data := append([]byte{0x2f}, binary.LittleEndian.AppendUint64(nil, bits)...)
	data = append(data, make([]byte, 7)...) // padding: the bit reader reads ahead
	var buf bytes.Buffer
	buf.WriteString("RIFF")
	binary.Write(&buf, binary.LittleEndian, uint32(4+8+len(data)))
	buf.WriteString("WEBPVP8L")
	binary.Write(&buf, binary.LittleEndian, uint32(len(data)))
	buf.Write(data)
	return buf.Bytes()
}
