package pil

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// samePNG checks a decode by pil against image/png's: both refuse the file, or both decode it,
// to the same pixels once image/png's are converted by Pillow's rules — with one difference on
// purpose: 16-bit grey with a tRNS chunk, which image/png gives as 16-bit RGBA (so its high
// byte) and Pillow as mode "I", clipped at 255, as pil does.
func samePNG(t *testing.T, data []byte, img *RGB, err error) {
	t.Helper()
	if c, cerr := png.DecodeConfig(bytes.NewReader(data)); cerr == nil && int64(c.Width)*int64(c.Height) > fuzzLimit {
		return // pil refuses it for its size; image/png would allocate it
	}
	ref, rerr := png.Decode(bytes.NewReader(data))
	if (err == nil) != (rerr == nil) {
		t.Fatalf("pil: %v; image/png: %v", err, rerr)
	}
	if err != nil {
		return
	}
	want := &RGB{W: img.W, H: img.H, Pix: make([]byte, len(img.Pix))}
	rows, cerr := newImageRows(ref)
	if cerr != nil {
		t.Fatal(cerr)
	}
	for y := 0; y < want.H; y++ {
		rows.read(want.Pix[3*want.W*y : 3*want.W*(y+1)])
	}
	if m, ok := ref.(*image.NRGBA64); ok && data[24] == 16 && data[25] == 0 { // IHDR: depth 16, grey
		for i := 0; i < want.W*want.H; i++ {
			v := byte(255)
			if m.Pix[8*i] == 0 {
				v = m.Pix[8*i+1]
			}
			want.Pix[3*i], want.Pix[3*i+1], want.Pix[3*i+2] = v, v, v
		}
	}
	if b := ref.Bounds(); b.Dx() != img.W || b.Dy() != img.H || !bytes.Equal(img.Pix, want.Pix) {
		t.Fatalf("pil decoded %dx%d, image/png %dx%d; pixels differ", img.W, img.H, b.Dx(), b.Dy())
	}
}

type pngSpec struct {
	w, h, depth int
	colorType   byte
	interlace   bool
	palette     int // entries in PLTE, for colour type 3
	trns        bool
}

// makePNG writes a PNG of random samples, every row with a random filter, the image data split
// over one to three IDAT chunks.
func makePNG(rng *rand.Rand, s pngSpec) []byte {
	channels := map[byte]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[s.colorType]
	bpp := s.depth * channels
	var raw bytes.Buffer
	pass := func(w, h int) {
		if w == 0 || h == 0 {
			return
		}
		n := (bpp*w + 7) / 8
		prev := make([]byte, n)
		for range h {
			row := make([]byte, n)
			for i := range row {
				row[i] = byte(rng.IntN(256))
			}
			ft := byte(rng.IntN(5))
			raw.WriteByte(ft)
			raw.Write(filterRow(ft, row, prev, max(1, bpp/8)))
			prev = row
		}
	}
	if s.interlace {
		for _, p := range [7][4]int{{8, 8, 0, 0}, {8, 8, 4, 0}, {4, 8, 0, 4}, {4, 4, 2, 0}, {2, 4, 0, 2}, {2, 2, 1, 0}, {1, 2, 0, 1}} {
			pass((s.w-p[2]+p[0]-1)/p[0], (s.h-p[3]+p[1]-1)/p[1])
		}
	} else {
		pass(s.w, s.h)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(raw.Bytes())
	zw.Close()
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(s.w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(s.h))
	il := byte(0)
	if s.interlace {
		il = 1
	}
	writeChunk(&out, "IHDR", append(ihdr, byte(s.depth), s.colorType, 0, 0, il))
	if s.colorType == 3 {
		pal := make([]byte, 3*s.palette)
		for i := range pal {
			pal[i] = byte(rng.IntN(256))
		}
		writeChunk(&out, "PLTE", pal)
	}
	if s.trns {
		n := map[byte]int{0: 2, 2: 6}[s.colorType]
		if s.colorType == 3 {
			n = 1 + rng.IntN(s.palette)
		}
		t := make([]byte, n)
		for i := range t {
			t[i] = byte(rng.IntN(256))
		}
		writeChunk(&out, "tRNS", t)
	}
	writeChunk(&out, "tEXt", []byte("Comment\x00ignored"))
	idat := z.Bytes()
	for len(idat) > 0 {
		n := min(len(idat), 1+rng.IntN(len(idat)))
		writeChunk(&out, "IDAT", idat[:n])
		idat = idat[n:]
	}
	writeChunk(&out, "IEND", nil)
	return out.Bytes()
}

func writeChunk(b *bytes.Buffer, kind string, data []byte) {
	binary.Write(b, binary.BigEndian, uint32(len(data)))
	b.WriteString(kind)
	b.Write(data)
	binary.Write(b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(kind), data...)))
}

// filterRow applies PNG filter ft to row (the previous row prev), bpp bytes per pixel.
func filterRow(ft byte, row, prev []byte, bpp int) []byte {
	out := make([]byte, len(row))
	for i := range row {
		var a, b, c int
		b = int(prev[i])
		if i >= bpp {
			a, c = int(row[i-bpp]), int(prev[i-bpp])
		}
		var pred int
		switch ft {
		case 1:
			pred = a
		case 2:
			pred = b
		case 3:
			pred = (a + b) / 2
		case 4:
			pa, pb, pc := abs(b-c), abs(a-c), abs(a+b-2*c)
			switch {
			case pa <= pb && pa <= pc:
				pred = a
			case pb <= pc:
				pred = b
			default:
				pred = c
			}
		}
		out[i] = row[i] - byte(pred)
	}
	return out
}

func pngSpecs(rng *rand.Rand) []pngSpec {
	var specs []pngSpec
	combos := map[byte][]int{0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
	for ct, depths := range combos {
		for _, d := range depths {
			for _, il := range []bool{false, true} {
				for _, trns := range []bool{false, true} {
					if trns && (ct == 4 || ct == 6) {
						continue
					}
					s := pngSpec{w: 1 + rng.IntN(40), h: 1 + rng.IntN(40), depth: d, colorType: ct, interlace: il, trns: trns}
					if ct == 3 {
						s.palette = 1 + rng.IntN(1<<d)
					}
					specs = append(specs, s)
				}
			}
		}
	}
	return specs
}

// Every colour type, bit depth, filter and interlacing, with and without tRNS and with short
// palettes: pil decodes the pixels image/png does (converted by Pillow's rules), whole and by
// rows into a resize; and so it does for the bundled PNGs.
func TestPNGAsImagePNG(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var files [][]byte
	for range 4 {
		for _, s := range pngSpecs(rng) {
			files = append(files, makePNG(rng, s))
		}
	}
	for _, name := range []string{"astronaut.png", "chelsea.png", "chelsea_palette.png", "stripes_la.png", "stripes_rgba.png", "tiny_red.png", "horse.png"} {
		files = append(files, read(t, name))
	}
	o := Options{MaxPixels: fuzzLimit}
	for i, data := range files {
		img, err := o.Decode(data)
		if err != nil {
			t.Fatalf("file %d (IHDR % x): %v", i, data[16:29], err)
		}
		samePNG(t, data, img, err)
		got, err := o.DecodeResized(data, 13, 29)
		if err != nil || !bytes.Equal(got.Pix, refResize(img, 13, 29).Pix) {
			t.Fatalf("file %d: resized by rows: %v, or pixels differ from the two-pass resize", i, err)
		}
	}
}

// Cut short anywhere, or with a byte of the image data changed (and its chunk's CRC made right
// again, so the change gets past the checksum), a PNG is refused exactly when image/png refuses
// it.
func TestPNGRefusedAsImagePNG(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	o := Options{MaxPixels: fuzzLimit}
	for _, s := range pngSpecs(rng) {
		data := makePNG(rng, s)
		for n := 0; n < len(data); n += 1 + n/8 {
			img, err := o.Decode(data[:n])
			if err == nil {
				t.Fatalf("cut to %d of %d bytes: decoded", n, len(data))
			}
			samePNG(t, data[:n], img, err)
		}
		for range 20 {
			m := bytes.Clone(data)
			at := 33 + rng.IntN(len(m)-33-12) // after IHDR, before IEND
			m[at] ^= byte(1 + rng.IntN(255))
			fixCRCs(m)
			img, err := o.Decode(m)
			samePNG(t, m, img, err)
		}
	}
}

// fixCRCs recomputes every chunk's CRC, as far as the chunk lengths make sense.
func fixCRCs(b []byte) {
	for off := 8; off+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[off:]))
		if n < 0 || off+12+n > len(b) {
			return
		}
		binary.BigEndian.PutUint32(b[off+8+n:], crc32.ChecksumIEEE(b[off+4:off+8+n]))
		off += 12 + n
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(images, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Image data that goes on after the zlib stream is refused exactly when image/png refuses it:
// image/png reads the stream through a 4 KB buffer and looks no further than that, so a few
// bytes of junk pass, in the last IDAT or in one more, and 10 KB in the last IDAT do not.
func TestPNGTooMuchData(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	s := pngSpec{w: 40, h: 30, depth: 8, colorType: 2}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, s.h*(1+3*s.w)))
	zw.Close()
	head := makePNG(rng, s)[:33] // signature and IHDR
	for name, tc := range map[string]struct {
		idats [][]byte
		ok    bool
	}{
		"clean":                  {[][]byte{z.Bytes()}, true},
		"4 bytes in the IDAT":    {[][]byte{append(bytes.Clone(z.Bytes()), "junk"...)}, true},
		"4 bytes in a next IDAT": {[][]byte{z.Bytes(), []byte("junk")}, true},
		"an empty next IDAT":     {[][]byte{z.Bytes(), nil}, true},
		"10 KB in the IDAT":      {[][]byte{append(bytes.Clone(z.Bytes()), make([]byte, 10<<10)...)}, false},
	} {
		var b bytes.Buffer
		b.Write(head)
		for _, d := range tc.idats {
			writeChunk(&b, "IDAT", d)
		}
		writeChunk(&b, "IEND", nil)
		img, err := Decode(b.Bytes())
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", name, err)
		}
		if !tc.ok && !strings.Contains(fmt.Sprint(err), "too much pixel data") {
			t.Errorf("%s: %v, want too much pixel data", name, err)
		}
		samePNG(t, b.Bytes(), img, err)
	}
}
