// Package pil decodes images and resizes them exactly as the Python pipeline this project
// replaces does with Pillow 9.4:
//
//	PIL.Image.open(path).convert("RGB").resize((224, 224))
//
// That means: the file's format is recognised by its content, not its name; JPEG is decoded by
// libjpeg-turbo with Pillow's settings (accurate integer IDCT, fancy chroma upsampling), WebP by
// libwebp, PNG and GIF by Go (both formats are lossless, so any correct decoder agrees); modes
// are converted to RGB with Pillow's rules (alpha dropped, not composited; grey replicated;
// palettes looked up; CMYK by Pillow's formula); EXIF orientation is not applied; and the
// resize is Pillow's separable bicubic with antialiasing in 8-bit fixed point (resize.go).
package pil

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io/fs"
	"os"
)

// RGB is an 8-bit RGB image, pixels row-major, three bytes each.
type RGB struct {
	W, H int
	Pix  []byte
}

// MaxPixels bounds the images Open accepts, as Pillow's decompression-bomb check does (Pillow
// refuses above twice its default limit of 89,478,485 pixels).
const MaxPixels = 2 * 89_478_485

// ErrFormat is wrapped by errors about files that are not images simsearch can read.
var ErrFormat = errors.New("not a readable image")

// Open reads the image file at path and converts it to RGB.
func Open(path string) (*RGB, error) {
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
	img, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// Decode converts an encoded image to RGB, recognising its format by content.
func Decode(data []byte) (*RGB, error) {
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("%w: empty file", ErrFormat)
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return decodeJPEG(data)
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: PNG: %v", ErrFormat, err)
		}
		return fromImage(img)
	case bytes.HasPrefix(data, []byte("GIF87a")) || bytes.HasPrefix(data, []byte("GIF89a")):
		img, err := gif.Decode(bytes.NewReader(data)) // the first frame, as Image.open shows it
		if err != nil {
			return nil, fmt.Errorf("%w: GIF: %v", ErrFormat, err)
		}
		return fromImage(img)
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return decodeWebP(data)
	}
	return nil, fmt.Errorf("%w: unrecognised format (simsearch reads JPEG, PNG, GIF and WebP)", ErrFormat)
}

func checkSize(w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: size %dx%d", ErrFormat, w, h)
	}
	if int64(w)*int64(h) > MaxPixels {
		return fmt.Errorf("%w: %dx%d pixels exceeds the limit of %d (a decompression bomb?)", ErrFormat, w, h, MaxPixels)
	}
	return nil
}

// fromImage converts a Go-decoded PNG or GIF to RGB by Pillow's rules. Colours are taken as
// stored (non-premultiplied) and alpha is ignored, as convert("RGB") does.
func fromImage(img image.Image) (*RGB, error) {
	b := img.Bounds()
	if err := checkSize(b.Dx(), b.Dy()); err != nil {
		return nil, err
	}
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
