// Package pil decodes images and resizes them exactly as the Python pipeline this project
// replaces does with Pillow 9.4:
//
//	PIL.Image.open(path).convert("RGB").resize((224, 224))
//
// That means: the file's format is recognised by its content, not its name; JPEG is decoded by
// libjpeg-turbo with Pillow's settings (accurate integer IDCT, fancy chroma upsampling), WebP by
// libwebp, PNG, GIF, TIFF and BMP by Go and golang.org/x/image (lossless formats, so any correct
// decoder agrees); modes are converted to RGB with Pillow's rules (alpha dropped, not composited;
// grey replicated; palettes looked up; CMYK by Pillow's formula); EXIF orientation is not applied
// unless asked for (Options.ExifTranspose); and the resize is Pillow's separable bicubic with
// antialiasing in 8-bit fixed point (resize.go).
//
// Hostile files are refused before they cost memory: every format's size is read from its header
// and checked against Pillow's decompression-bomb limit (limits.go), and decodes in flight share
// one memory budget.
package pil

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"io/fs"
	"os"

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

// Open reads the image file at path and converts it to RGB.
func (o Options) Open(path string) (*RGB, error) {
	data, err := o.read(path)
	if err != nil {
		return nil, err
	}
	img, err := o.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

func (o Options) read(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errors.New("is a directory, not an image")}
	}
	return os.ReadFile(path)
}

// OpenResized is Open followed by Resize(w, h), with the default options.
func OpenResized(path string, w, h int) (*RGB, error) { return Defaults().OpenResized(path, w, h) }

// DecodeResized is Decode followed by Resize(w, h), with the default options.
func DecodeResized(data []byte, w, h int) (*RGB, error) { return Defaults().DecodeResized(data, w, h) }

// OpenResized reads the image file at path, converts it to RGB and resizes it to w×h, holding
// its share of the decode budget until only the resized image is left: callers that need the
// image at one size should use it rather than Open and Resize, so that full-size images held
// between the two count against the budget too.
func (o Options) OpenResized(path string, w, h int) (*RGB, error) {
	data, err := o.read(path)
	if err != nil {
		return nil, err
	}
	img, err := o.decode(data, w, h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// DecodeResized is OpenResized for an image in memory.
func (o Options) DecodeResized(data []byte, w, h int) (*RGB, error) { return o.decode(data, w, h) }

// Decode converts an encoded image to RGB, recognising its format by content. The image's size
// is read from its header and checked against MaxPixels, and the memory its decoding will hold
// is taken from the process's decode budget, before any pixel is decoded.
func (o Options) Decode(data []byte) (*RGB, error) { return o.decode(data, 0, 0) }

// decode decodes data and, unless w is 0, resizes it to w×h before giving back its budget.
func (o Options) decode(data []byte, w, h int) (*RGB, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrFormat)
	}
	f := sniff(data)
	if f == nil {
		return nil, fmt.Errorf("%w: unrecognised format (simsearch reads JPEG, PNG, GIF, WebP, TIFF and BMP)", ErrFormat)
	}
	hd, err := f.header(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, f.name, err)
	}
	if err := o.checkSize(f.name, hd.w, hd.h); err != nil {
		return nil, err
	}
	cost := int64(hd.w) * int64(hd.h) * (hd.bytesPerPixel + 3)
	if o.ExifTranspose {
		cost += 3 * int64(hd.w) * int64(hd.h)
	}
	defer decodeBudget.release(decodeBudget.acquire(cost))
	img, err := f.decode(data, hd)
	if err != nil {
		return nil, err
	}
	if o.ExifTranspose {
		img = img.transpose(orientation(f.name, data))
	}
	if w != 0 {
		img = img.Resize(w, h)
	}
	return img, nil
}

// header is what a format's header says before anything is decoded.
type header struct {
	w, h int
	// bytesPerPixel estimates the memory the decoder holds per pixel besides the RGB result.
	bytesPerPixel int64
	cmyk          bool // JPEG: decodes to CMYK
}

// format is one image format: how to recognise it, read its header and decode it.
type format struct {
	name   string
	match  func([]byte) bool
	header func([]byte) (header, error)
	decode func([]byte, header) (*RGB, error)
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
	{"JPEG", prefix("\xFF\xD8\xFF"), jpegHeader, decodeJPEG},
	{"PNG", prefix("\x89PNG\r\n\x1a\n"), goHeader(png.DecodeConfig, 2, 0), goDecode("PNG", png.Decode)},
	// The first frame, as Image.open shows it.
	{"GIF", prefix("GIF87a", "GIF89a"), goHeader(gif.DecodeConfig, 1, 0), goDecode("GIF", gif.Decode)},
	{"WebP", func(b []byte) bool { return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" }, webpHeader, decodeWebP},
	// x/image/tiff inflates a strip or tile into a buffer of up to 8 bytes per pixel whatever the
	// pixel layout: a deflate bomb in a greyscale strip costs that much.
	{"TIFF", prefix("II*\x00", "MM\x00*"), goHeader(tiff.DecodeConfig, 1, 8), goDecode("TIFF", tiff.Decode)},
	{"BMP", prefix("BM"), goHeader(bmp.DecodeConfig, 1, 0), goDecode("BMP", bmp.Decode)},
}

// goHeader reads the header of a format decoded by Go; the decoder holds the image in the
// layout of its colour model, times copies (PNG's interlaced passes hold a second one), and
// extra bytes per pixel of buffers.
func goHeader(config func(io.Reader) (image.Config, error), copies, extra int64) func([]byte) (header, error) {
	return func(data []byte) (header, error) {
		c, err := config(bytes.NewReader(data))
		if err != nil {
			return header{}, err
		}
		return header{w: c.Width, h: c.Height, bytesPerPixel: copies*bytesPerPixel(c.ColorModel) + extra}, nil
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

func goDecode(name string, decode func(io.Reader) (image.Image, error)) func([]byte, header) (*RGB, error) {
	return func(data []byte, hd header) (*RGB, error) {
		img, err := decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		if b := img.Bounds(); int64(b.Dx())*int64(b.Dy()) > int64(hd.w)*int64(hd.h) {
			return nil, fmt.Errorf("%w: %s: decoded %dx%d, larger than the header's %dx%d", ErrFormat, name, b.Dx(), b.Dy(), hd.w, hd.h)
		}
		return fromImage(img)
	}
}

// fromImage converts a Go-decoded PNG or GIF to RGB by Pillow's rules. Colours are taken as
// stored (non-premultiplied) and alpha is ignored, as convert("RGB") does.
func fromImage(img image.Image) (*RGB, error) {
	b := img.Bounds()
	out := &RGB{W: b.Dx(), H: b.Dy(), Pix: make([]byte, 3*b.Dx()*b.Dy())}
	switch m := img.(type) {
	case *image.Paletted:
		lut := make([][3]byte, 256)
		for i, c := range m.Palette {
			lut[i] = rgb8(c)
		}
		i := 0
		for y := 0; y < b.Dy(); y++ {
			for _, ix := range m.Pix[y*m.Stride : y*m.Stride+b.Dx()] {
				c := lut[ix]
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = c[0], c[1], c[2]
				i += 3
			}
		}
	case *image.Gray16:
		// Pillow opens 16-bit grey as mode "I" (PNG) or "I;16" (TIFF); converting it to RGB
		// clips each value to 255.
		i := 0
		for y := 0; y < b.Dy(); y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+2*b.Dx()]
			for x := 0; x < len(row); x += 2 {
				v := byte(255)
				if row[x] == 0 {
					v = row[x+1]
				}
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = v, v, v
				i += 3
			}
		}
	case *image.Gray:
		i := 0
		for y := 0; y < b.Dy(); y++ {
			for _, v := range m.Pix[y*m.Stride : y*m.Stride+b.Dx()] {
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = v, v, v
				i += 3
			}
		}
	case *image.RGBA:
		copyRGBX(out.Pix, m.Pix, m.Stride, b.Dx(), b.Dy(), 4, 1) // opaque: Go's PNG decoder uses RGBA only without alpha
	case *image.NRGBA:
		copyRGBX(out.Pix, m.Pix, m.Stride, b.Dx(), b.Dy(), 4, 1)
	case *image.RGBA64:
		copyRGBX(out.Pix, m.Pix, m.Stride, b.Dx(), b.Dy(), 8, 2) // 16-bit: the high byte, as Pillow's "RGB;16B" unpacker
	case *image.NRGBA64:
		copyRGBX(out.Pix, m.Pix, m.Stride, b.Dx(), b.Dy(), 8, 2)
	default:
		return nil, fmt.Errorf("%w: unsupported pixel layout %T", ErrFormat, img)
	}
	return out, nil
}

// copyRGBX copies the first three channels of pixels of size px bytes whose channels are step
// bytes apart (taking the first, most significant, byte of each).
func copyRGBX(dst, src []byte, stride, w, h, px, step int) {
	i := 0
	for y := 0; y < h; y++ {
		row := src[y*stride : y*stride+w*px]
		for x := 0; x < len(row); x += px {
			dst[i], dst[i+1], dst[i+2] = row[x], row[x+step], row[x+2*step]
			i += 3
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
