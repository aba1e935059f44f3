package pil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzLimit keeps fuzzing's memory small: a mutated header may legitimately ask for an image
// Pillow would open, and fuzzing is after crashes, not after allocating it.
const fuzzLimit = 1 << 20

// fuzzDecode checks what every decode must give: an RGB image within the limit whose buffer
// matches its size, or an error that says why; never a panic.
func fuzzDecode(t *testing.T, data []byte, decode func([]byte) (*RGB, error)) {
	img, err := decode(data)
	if err != nil {
		if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v wraps neither ErrFormat nor ErrTooLarge", err)
		}
		return
	}
	if img.W <= 0 || img.H <= 0 || int64(img.W)*int64(img.H) > fuzzLimit || len(img.Pix) != 3*img.W*img.H {
		t.Fatalf("decoded %dx%d with %d bytes", img.W, img.H, len(img.Pix))
	}
}

// seed adds the bundled and hostile files whose names end in one of exts.
func seed(f *testing.F, exts ...string) {
	for _, dir := range []string{images, hostile} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range ents {
			for _, ext := range exts {
				if !e.IsDir() && strings.HasSuffix(e.Name(), ext) {
					b, err := os.ReadFile(filepath.Join(dir, e.Name()))
					if err != nil {
						f.Fatal(err)
					}
					if len(b) < 64<<10 {
						f.Add(b)
					}
				}
			}
		}
	}
}

// FuzzDecode is the entry point every caller uses: sniffing, header checks, decoding, EXIF.
func FuzzDecode(f *testing.F) {
	seed(f, ".jpg", ".png", ".gif", ".webp", ".tif", ".bmp")
	o := Options{MaxPixels: fuzzLimit, ExifTranspose: true}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, data, o.Decode) })
}

// fuzzFormat fuzzes one format's header reader and decoder directly, whatever the first bytes.
func fuzzFormat(f *testing.F, name string, exts ...string) {
	seed(f, exts...)
	var ft *format
	for i := range formats {
		if formats[i].name == name {
			ft = &formats[i]
		}
	}
	o := Options{MaxPixels: fuzzLimit}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, func(b []byte) (*RGB, error) {
			hd, err := ft.header(b)
			if err != nil {
				return nil, ErrFormat
			}
			if err := o.checkSize(name, hd.w, hd.h); err != nil {
				return nil, err
			}
			return ft.decode(b, hd)
		})
	})
}

func FuzzJPEG(f *testing.F) { fuzzFormat(f, "JPEG", ".jpg") }
func FuzzPNG(f *testing.F)  { fuzzFormat(f, "PNG", ".png") }
func FuzzGIF(f *testing.F)  { fuzzFormat(f, "GIF", ".gif") }
func FuzzWebP(f *testing.F) { fuzzFormat(f, "WebP", ".webp") }
func FuzzTIFF(f *testing.F) { fuzzFormat(f, "TIFF", ".tif") }
func FuzzBMP(f *testing.F)  { fuzzFormat(f, "BMP", ".bmp") }
