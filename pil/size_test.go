package pil

import (
	"bytes"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r    *bytes.Reader
	read atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.read.Add(int64(n))
	return n, err
}

// TestReadSize reads the size of every bundled photo, of generated TIFF and BMP files and of a
// JPEG whose metadata before the frame header outgrows the first read: each is the size Decode
// finds, read from the start of the file only where the header fits there.
func TestReadSize(t *testing.T) {
	files := map[string][]byte{}
	entries, err := os.ReadDir(images)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); ext == ".npy" || ext == ".txt" || strings.HasPrefix(e.Name(), "broken_") {
			continue
		}
		if files[e.Name()], err = os.ReadFile(filepath.Join(images, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	m := image.NewGray(image.Rect(0, 0, 37, 23))
	m.Set(3, 4, color.Gray{200})
	var tf, bf bytes.Buffer
	if err := tiff.Encode(&tf, m, nil); err != nil {
		t.Fatal(err)
	}
	if err := bmp.Encode(&bf, m); err != nil {
		t.Fatal(err)
	}
	files["gen.tiff"], files["gen.bmp"] = tf.Bytes(), bf.Bytes()
	// Five APP15 segments of 64 KiB after the SOI marker: the frame header starts past 320 KiB.
	jpg := files["ladybird.jpg"]
	big := append([]byte{}, jpg[:2]...)
	for range 5 {
		big = append(big, 0xFF, 0xEF, 0xFF, 0xFF)
		big = append(big, make([]byte, 0xFFFF-2)...)
	}
	files["big_metadata.jpg"] = append(big, jpg[2:]...)

	for name, data := range files {
		img, err := Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := &countingReader{r: bytes.NewReader(data)}
		w, h, err := ReadSize(r, int64(len(data)))
		if err != nil || w != img.W || h != img.H {
			t.Errorf("%s: ReadSize %d×%d, %v; Decode %d×%d", name, w, h, err, img.W, img.H)
		}
		read := r.read.Load()
		if name == "big_metadata.jpg" && read <= sizePrefix {
			t.Errorf("%s: read %d bytes: the header is past them", name, read)
		} else if name != "big_metadata.jpg" && len(data) > sizePrefix && read > sizePrefix {
			t.Errorf("%s: read %d of %d bytes for its size", name, read, len(data))
		}
	}
	for _, name := range []string{"broken_empty.jpg", "broken_text.jpg"} {
		data, _ := os.ReadFile(filepath.Join(images, name))
		if w, h, err := ReadSize(bytes.NewReader(data), int64(len(data))); err == nil {
			t.Errorf("%s: %d×%d, want an error", name, w, h)
		}
	}
	// The header cut short is an error, not a size.
	if w, h, err := ReadSize(bytes.NewReader(jpg[:100]), 100); err == nil {
		t.Errorf("the first 100 bytes of a JPEG: %d×%d, want an error", w, h)
	}
}
