// Package pil decodes images and resizes them exactly as the Python pipeline this project
// replaces does with Pillow 9.4:
//
//	PIL.Image.open(path).convert("RGB").resize((224, 224))
//
// That means: the file's format is recognised by its content, not its name; JPEG is decoded by
// libjpeg-turbo with Pillow's settings (accurate integer IDCT, fancy chroma upsampling), WebP by
// libwebp, PNG by this package (png.go), GIF, TIFF and BMP by Go and golang.org/x/image
// (lossless formats, so any correct decoder agrees); modes are converted to RGB with Pillow's
// rules (alpha dropped, not composited; grey replicated; palettes looked up; CMYK by Pillow's
// formula); EXIF orientation is not applied unless asked for (Options.ExifTranspose); and the
// resize is Pillow's separable bicubic with antialiasing in 8-bit fixed point (resize.go).
//
// Hostile files are refused before they cost memory: every format's size is read from its header
// and checked against Pillow's decompression-bomb limit (limits.go), and decodes in flight share
// one memory budget. A decode that resizes reads the image row by row into the resize, so that
// PNG and JPEG images of any size cost a few rows (and a multi-scan JPEG its DCT coefficients,
// which libjpeg keeps whole); the other formats' decoders hold the image whole until it is
// resized, and the budget counts it.
package pil

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"io"
	"io/fs"
	"os"
	"runtime/debug"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// RGB is an 8-bit RGB image, pixels row-major, three bytes each.
type RGB struct {
	W, H int
	Pix  []byte
}

// ErrFormat is wrapped by errors about files that are not images simsearch can read.
var ErrFormat = errors.New("not a readable image")

// Open reads the image file at path and converts it to RGB with the default options.
func Open(path string) (*RGB, error) { return Defaults().Open(path) }

// Decode converts an encoded image to RGB with the default options.
func Decode(data []byte) (*RGB, error) { return Defaults().Decode(data) }

// OpenResized is Open followed by Resize(w, h), with the default options.
func OpenResized(path string, w, h int) (*RGB, error) { return Defaults().OpenResized(path, w, h) }

// DecodeResized is Decode followed by Resize(w, h), with the default options.
func DecodeResized(data []byte, w, h int) (*RGB, error) { return Defaults().DecodeResized(data, w, h) }

// Open reads the image file at path and converts it to RGB.
func (o Options) Open(path string) (*RGB, error) { return o.openFile(path, nil) }

// OpenResized reads the image file at path, converts it to RGB and resizes it to w×h. Callers
// that need the image at one size should use it rather than Open and Resize: the image is read
// row by row into the resize where its format allows, and whatever full-size image a decoder
// holds counts against the decode budget until only the resized image is left.
func (o Options) OpenResized(path string, w, h int) (*RGB, error) {
	return o.openFile(path, func(int, int) (int, int) { return w, h })
}

func (o Options) openFile(path string, fit func(w, h int) (int, int)) (*RGB, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errors.New("is a directory, not an image")}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, err := o.Named(path).decode(data, fit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// Decode converts an encoded image to RGB, recognising its format by content. The image's size
// is read from its header and checked against MaxPixels, and the memory its decoding will hold
// is taken from the process's decode budget, before any pixel is decoded.
func (o Options) Decode(data []byte) (*RGB, error) { return o.decode(data, nil) }

// DecodeResized is OpenResized for an image in memory.
func (o Options) DecodeResized(data []byte, w, h int) (*RGB, error) {
	return o.decode(data, func(int, int) (int, int) { return w, h })
}

// DecodeFit is DecodeResized to the size that fit gives for the image's size (after EXIF
// transposition, if asked for): a thumbnail's, say.
func (o Options) DecodeFit(data []byte, fit func(w, h int) (int, int)) (*RGB, error) {
	if fit == nil {
		return nil, errors.New("pil: DecodeFit without a size")
	}
	return o.decode(data, fit)
}

// Size returns an encoded image's width and height from its header, without decoding it.
func Size(data []byte) (w, h int, err error) {
	f, hd, err := readHeader(data)
	if err != nil {
		return 0, 0, err
	}
	if hd.w <= 0 || hd.h <= 0 {
		return 0, 0, fmt.Errorf("%w: %s: size %dx%d", ErrFormat, f.name, hd.w, hd.h)
	}
	return hd.w, hd.h, nil
}

func readHeader(data []byte) (*format, header, error) {
	if len(data) == 0 {
		return nil, header{}, fmt.Errorf("%w: empty file", ErrFormat)
	}
	f := sniff(data)
	if f == nil {
		return nil, header{}, fmt.Errorf("%w: unrecognised format (simsearch reads JPEG, PNG, GIF, WebP, TIFF and BMP)", ErrFormat)
	}
	hd, err := f.header(data)
	if err != nil {
		return nil, header{}, fmt.Errorf("%w: %s: %v", ErrFormat, f.name, err)
	}
	return f, hd, nil
}

// freeAfter is the size of a decode's Go-heap garbage above which the memory is handed back to
// the system right away, rather than when the garbage collector next runs and its scavenger
// gets to it: a server's peak memory is then the decodes in flight, not their history.
const freeAfter = 64 << 20

// decode decodes data and, unless fit is nil, resizes it to the size fit gives, before giving
// back its budget.
func (o Options) decode(data []byte, fit func(w, h int) (int, int)) (*RGB, error) {
	p, err := o.plan(data, fit)
	if err != nil {
		return nil, err
	}
	g, err := decodeBudget.acquire(p.f.name, p.cost)
	if err != nil {
		return nil, err
	}
	defer func() {
		decodeBudget.release(g)
		if p.garbage >= freeAfter {
			debug.FreeOSMemory()
		}
	}()
	o.warnSize(p.hd.w, p.hd.h)
	return p.run(data, fit)
}

// plan is what a decode will do and hold, known from the header before any pixel is decoded.
type plan struct {
	f      *format
	hd     header
	orient int // the EXIF orientation to apply, 1 for none
	// w×h is the image after transposition, tw×th what it is resized to.
	w, h, tw, th int
	// cost is the memory the decode holds at its peak; garbage what it leaves on Go's heap.
	cost, garbage int64
}

func (o Options) plan(data []byte, fit func(w, h int) (int, int)) (*plan, error) {
	f, hd, err := readHeader(data)
	if err != nil {
		return nil, err
	}
	if err := o.checkSize(f.name, hd.w, hd.h); err != nil {
		return nil, err
	}
	p := &plan{f: f, hd: hd, orient: 1, w: hd.w, h: hd.h}
	if o.ExifTranspose {
		if p.orient = orientation(f.name, data); p.orient < 2 || p.orient > 8 {
			p.orient = 1
		}
	}
	if p.orient >= 5 {
		p.w, p.h = hd.h, hd.w
	}
	p.tw, p.th = p.w, p.h
	if fit != nil {
		if p.tw, p.th = fit(p.w, p.h); p.tw <= 0 || p.th <= 0 {
			return nil, fmt.Errorf("pil: cannot resize %dx%d to %dx%d", p.w, p.h, p.tw, p.th)
		}
		if err := o.checkResize(f.name, p.w, p.h, p.tw, p.th); err != nil {
			return nil, err
		}
	}
	// The decoder's whole-image memory and rows, a row for the resize, then either the image
	// whole (no resize, or a transposition: the image is turned before it is resized, so held
	// twice) or the resize's tables and rows, and the result.
	pixels := 3 * int64(hd.w) * int64(hd.h)
	p.cost = hd.whole + hd.rowMemory + 3*int64(hd.w)
	if hd.goHeap {
		p.garbage = hd.whole
	}
	switch {
	case p.orient != 1:
		p.cost += 2 * pixels
		p.garbage += pixels
		if fit != nil {
			p.garbage += pixels
		}
	case fit == nil:
		p.cost += pixels
	}
	if fit != nil {
		p.cost += resizeMemory(p.w, p.h, p.tw, p.th) + 3*int64(p.tw)*int64(p.th)
	}
	return p, nil
}

// run decodes as planned.
func (p *plan) run(data []byte, fit func(w, h int) (int, int)) (*RGB, error) {
	src, err := p.f.open(data, p.hd)
	if err != nil {
		return nil, err
	}
	defer src.close()
	// The source's size: the header's, or a GIF's smaller first frame (GIF has no orientation).
	w, h := src.size()
	tw, th := p.tw, p.th
	if w != p.hd.w || h != p.hd.h {
		tw, th = w, h
		if fit != nil {
			if tw, th = fit(w, h); tw <= 0 || th <= 0 {
				return nil, fmt.Errorf("pil: cannot resize %dx%d to %dx%d", w, h, tw, th)
			}
		}
	}
	if p.orient != 1 || fit == nil {
		img := &RGB{W: w, H: h, Pix: make([]byte, 3*w*h)}
		for y := 0; y < h; y++ {
			if err := src.read(img.Pix[3*w*y : 3*w*(y+1)]); err != nil {
				return nil, err
			}
		}
		img = img.transpose(p.orient)
		if fit != nil {
			img = img.Resize(tw, th)
		}
		return img, nil
	}
	r := newResizer(w, h, tw, th)
	row := make([]byte, 3*w)
	for y := 0; y < h; y++ {
		if err := src.read(row); err != nil {
			return nil, err
		}
		r.push(row)
	}
	return r.out, nil
}

// header is what a format's header says before anything is decoded.
type header struct {
	w, h int
	// whole is the memory the decoder holds for the whole image while its rows are read (0 for
	// a decoder that decodes each row as it is read); goHeap says it is Go's, not C's.
	whole  int64
	goHeap bool
	// rowMemory is the decoder's buffers of rows.
	rowMemory int64
	cmyk      bool // JPEG: decodes to CMYK
}

// rows is a decoded image read one RGB row at a time, top to bottom.
type rows interface {
	// size is the image's: the header's, but for a GIF whose first frame is smaller.
	size() (w, h int)
	// read converts the next row to RGB into dst, 3 bytes per pixel.
	read(dst []byte) error
	// close frees what the decoder holds.
	close()
}

// format is one image format: how to recognise it, read its header and decode it.
type format struct {
	name   string
	match  func([]byte) bool
	header func([]byte) (header, error)
	open   func([]byte, header) (rows, error)
}

func sniff(data []byte) *format {
	for i := range formats {
		if formats[i].match(data) {
			return &formats[i]
		}
	}
	return nil
}

func prefix(p ...string) func([]byte) bool {
	return func(b []byte) bool {
		for _, s := range p {
			if bytes.HasPrefix(b, []byte(s)) {
				return true
			}
		}
		return false
	}
}

var formats = []format{
	{"JPEG", prefix("\xFF\xD8\xFF"), jpegHeader, openJPEG},
	{"PNG", prefix("\x89PNG\r\n\x1a\n"), pngHeader, openPNG},
	// The first frame, as Image.open shows it.
	{"GIF", prefix("GIF87a", "GIF89a"), goHeader(gif.DecodeConfig, 0), goOpen("GIF", gif.Decode)},
	{"WebP", func(b []byte) bool { return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" }, webpHeader, openWebP},
	// x/image/tiff inflates a strip or tile into a buffer of up to 8 bytes per pixel whatever the
	// pixel layout: a deflate bomb in a greyscale strip costs that much.
	{"TIFF", prefix("II*\x00", "MM\x00*"), goHeader(tiff.DecodeConfig, 8), goOpen("TIFF", tiff.Decode)},
	{"BMP", prefix("BM"), goHeader(bmp.DecodeConfig, 0), goOpen("BMP", bmp.Decode)},
}

// goHeader reads the header of a format decoded by Go, whose decoder holds the image in the
// layout of its colour model plus extra bytes per pixel of buffers.
func goHeader(config func(io.Reader) (image.Config, error), extra int64) func([]byte) (header, error) {
	return func(data []byte) (header, error) {
		c, err := config(bytes.NewReader(data))
		if err != nil {
			return header{}, err
		}
		n := int64(c.Width) * int64(c.Height)
		return header{w: c.Width, h: c.Height, whole: n * (bytesPerPixel(c.ColorModel) + extra), goHeap: true}, nil
	}
}

func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.GrayModel:
		return 1
	case color.Gray16Model:
		return 2
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 4
}

func goOpen(name string, decode func(io.Reader) (image.Image, error)) func([]byte, header) (rows, error) {
	return func(data []byte, hd header) (rows, error) {
		img, err := decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		// A GIF's first frame may be smaller than its logical screen; never larger.
		if b := img.Bounds(); int64(b.Dx())*int64(b.Dy()) > int64(hd.w)*int64(hd.h) {
			return nil, fmt.Errorf("%w: %s: decoded %dx%d, larger than the header's %dx%d", ErrFormat, name, b.Dx(), b.Dy(), hd.w, hd.h)
		}
		return newImageRows(img)
	}
}

// imageRows reads a Go-decoded image's rows, converted to RGB by Pillow's rules. Colours are
// taken as stored (non-premultiplied) and alpha is ignored, as convert("RGB") does.
type imageRows struct {
	w, h, y int
	row     func(y int, dst []byte)
}

func newImageRows(img image.Image) (rows, error) {
	b := img.Bounds()
	w := b.Dx()
	r := &imageRows{w: w, h: b.Dy()}
	switch m := img.(type) {
	case *image.Paletted:
		var lut [256][3]byte
		for i, c := range m.Palette {
			lut[i] = rgb8(c)
		}
		r.row = func(y int, dst []byte) {
			for x, ix := range m.Pix[y*m.Stride : y*m.Stride+w] {
				c := lut[ix]
				dst[3*x], dst[3*x+1], dst[3*x+2] = c[0], c[1], c[2]
			}
		}
	case *image.Gray16:
		// Pillow opens 16-bit grey as mode "I" (PNG) or "I;16" (TIFF); converting it to RGB
		// clips each value to 255.
		r.row = func(y int, dst []byte) {
			row := m.Pix[y*m.Stride : y*m.Stride+2*w]
			for x := 0; x < w; x++ {
				v := byte(255)
				if row[2*x] == 0 {
					v = row[2*x+1]
				}
				dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
			}
		}
	case *image.Gray:
		r.row = func(y int, dst []byte) {
			for x, v := range m.Pix[y*m.Stride : y*m.Stride+w] {
				dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
			}
		}
	case *image.RGBA: // opaque: Go's decoders use RGBA only without alpha
		r.row = rgbxRows(m.Pix, m.Stride, w, 4, 1)
	case *image.NRGBA:
		r.row = rgbxRows(m.Pix, m.Stride, w, 4, 1)
	case *image.RGBA64: // 16-bit: the high byte, as Pillow's "RGB;16B" unpacker
		r.row = rgbxRows(m.Pix, m.Stride, w, 8, 2)
	case *image.NRGBA64:
		r.row = rgbxRows(m.Pix, m.Stride, w, 8, 2)
	default:
		return nil, fmt.Errorf("%w: unsupported pixel layout %T", ErrFormat, img)
	}
	return r, nil
}

func (r *imageRows) read(dst []byte) error {
	r.row(r.y, dst)
	r.y++
	return nil
}

func (r *imageRows) size() (int, int) { return r.w, r.h }

func (r *imageRows) close() {}

// rgbxRows copies the first three channels of pixels of size px bytes whose channels are step
// bytes apart (taking the first, most significant, byte of each).
func rgbxRows(pix []byte, stride, w, px, step int) func(int, []byte) {
	return func(y int, dst []byte) {
		row := pix[y*stride : y*stride+w*px]
		for x, i := 0, 0; x < len(row); x, i = x+px, i+3 {
			dst[i], dst[i+1], dst[i+2] = row[x], row[x+step], row[x+2*step]
		}
	}
}

// rgb8 returns a palette colour's stored RGB bytes, without premultiplying by its alpha.
func rgb8(c color.Color) [3]byte {
	switch c := c.(type) {
	case color.NRGBA:
		return [3]byte{c.R, c.G, c.B}
	case color.RGBA:
		return [3]byte{c.R, c.G, c.B}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]byte{n.R, n.G, n.B}
}
