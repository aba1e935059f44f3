package pil

import (
	"bytes"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// TIFF and BMP files written by Go's encoders from the bundled PNGs decode to the same pixels as
// the PNGs: both formats are lossless, and Pillow opens both.
func TestTIFFAndBMP(t *testing.T) {
	encoders := map[string]func(io.Writer, image.Image) error{
		"TIFF": func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) },
		"TIFF deflate": func(w io.Writer, m image.Image) error {
			return tiff.Encode(w, m, &tiff.Options{Compression: tiff.Deflate})
		},
		"BMP": bmp.Encode,
	}
	for _, name := range []string{"astronaut.png", "chelsea_palette.png", "stripes_rgba.png", "tiny_red.png"} {
		data, err := os.ReadFile(filepath.Join(images, name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		src, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		for enc, f := range encoders {
			var buf bytes.Buffer
			if err := f(&buf, src); err != nil {
				t.Fatalf("%s as %s: %v", name, enc, err)
			}
			got, err := Decode(buf.Bytes())
			if err != nil {
				t.Errorf("%s as %s: %v", name, enc, err)
				continue
			}
			if got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
				t.Errorf("%s as %s: %dx%d, pixels differ from the PNG's", name, enc, got.W, got.H)
			}
		}
	}
}

// libjpeg warns about bytes between two markers; Pillow ignores the warning and loads the image,
// and so does simsearch, with the pixels of the clean file.
func TestJPEGWarningsAreNotErrors(t *testing.T) {
	clean, err := os.ReadFile(filepath.Join(images, "elephants_small.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	// After SOI comes the first segment; junk goes right after it.
	end := 4 + (int(clean[4])<<8 | int(clean[5]))
	junk := append(append(append([]byte{}, clean[:end]...), "\x00junk\x00"...), clean[end:]...)
	want, err := Decode(clean)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"extraneous bytes before a marker": junk,
		"junk after the end of the image":  append(append([]byte{}, clean...), "trailing junk"...),
	} {
		got, err := Decode(data)
		if err != nil {
			t.Errorf("%s: %v (Pillow loads it)", name, err)
			continue
		}
		if !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("%s: pixels differ from the clean file's", name)
		}
	}
}
