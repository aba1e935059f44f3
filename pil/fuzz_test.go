package pil

import (
	"bytes"
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

// fuzzFormat fuzzes one format's header reader and decoder directly, whatever the first bytes:
// decoded whole and resized by rows, the image must be the one the reference two-pass resize
// makes of it whole; check, when set, compares the decode with another decoder's.
func fuzzFormat(f *testing.F, name string, check func(t *testing.T, data []byte, img *RGB, err error), exts ...string) {
	seed(f, exts...)
	var ft *format
	for i := range formats {
		if formats[i].name == name {
			ft = &formats[i]
		}
	}
	o := Options{MaxPixels: fuzzLimit}
	f.Fuzz(func(t *testing.T, data []byte) {
		var whole *RGB
		fuzzDecode(t, data, func(b []byte) (*RGB, error) {
			img, err := decodeAs(o, ft, b, nil)
			if check != nil {
				check(t, b, img, err)
			}
			whole = img
			return img, err
		})
		if whole == nil {
			return
		}
		w, h := max(1, whole.W/3), max(1, whole.H*2)
		got, err := decodeAs(o, ft, data, func(int, int) (int, int) { return w, h })
		if err != nil {
			t.Fatalf("decoded whole, but not resized to %dx%d: %v", w, h, err)
		}
		if want := refResize(whole, w, h); !bytes.Equal(got.Pix, want.Pix) {
			t.Fatalf("resized by rows to %dx%d: pixels differ from the two-pass resize of the whole image", w, h)
		}
	})
}

// decodeAs decodes data as format ft, whatever its first bytes.
func decodeAs(o Options, ft *format, data []byte, fit func(w, h int) (int, int)) (*RGB, error) {
	hd, err := ft.header(data)
	if err != nil {
		return nil, ErrFormat
	}
	if err := o.checkSize(ft.name, hd.w, hd.h); err != nil {
		return nil, err
	}
	p := &plan{f: ft, hd: hd, orient: 1, w: hd.w, h: hd.h, tw: hd.w, th: hd.h}
	if fit != nil {
		p.tw, p.th = fit(hd.w, hd.h)
	}
	return p.run(data, fit)
}

func FuzzJPEG(f *testing.F) { fuzzFormat(f, "JPEG", nil, ".jpg") }
func FuzzPNG(f *testing.F)  { fuzzFormat(f, "PNG", samePNG, ".png") }
func FuzzGIF(f *testing.F)  { fuzzFormat(f, "GIF", nil, ".gif") }
func FuzzWebP(f *testing.F) { fuzzFormat(f, "WebP", nil, ".webp") }
func FuzzTIFF(f *testing.F) { fuzzFormat(f, "TIFF", nil, ".tif") }
func FuzzBMP(f *testing.F)  { fuzzFormat(f, "BMP", nil, ".bmp") }
