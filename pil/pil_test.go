package pil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const images = "../testdata/images"

func TestBrokenInputs(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"broken_empty.jpg", "empty file"},
		{"broken_text.jpg", "unrecognised format"},
		{"broken_truncated.jpg", "JPEG: Premature end of JPEG file"},
		{"does_not_exist.jpg", "no such file"},
		{".", "is a directory"},
	} {
		path := filepath.Join(images, tc.file)
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("Open(%s) = %v, want an error naming the file and containing %q", path, err, tc.want)
		}
	}
	if _, err := Open(filepath.Join(images, "nope.png")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v is not ErrNotExist", err)
	}
}

// Corrupt data in every format is an error, never a panic or a half-grey image.
func TestTruncatedEveryFormat(t *testing.T) {
	for _, name := range []string{"astronaut.png", "astronaut.gif", "wood.webp", "aqua_progressive.jpg", "coffee_cmyk.jpg"} {
		data, err := os.ReadFile(filepath.Join(images, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{len(data) / 2, 40} {
			if _, err := Decode(data[:n]); err == nil || !errors.Is(err, ErrFormat) {
				t.Errorf("%s cut to %d bytes: %v", name, n, err)
			}
		}
	}
}

func TestModes(t *testing.T) {
	// Grey JPEG, LA and RGBA PNG, palette PNG and GIF, CMYK JPEG, WebP: each opens as RGB of
	// the expected size (their pixels are checked end to end against Pillow by the embed tests).
	for _, tc := range []struct {
		file string
		w, h int
		grey bool
	}{
		{"camera_gray.jpg", 512, 512, true},
		{"stripes_la.png", 800, 500, true},
		{"stripes_rgba.png", 800, 600, true}, // grey stripes with an alpha channel
		{"chelsea_palette.png", 451, 300, false},
		{"astronaut.gif", 256, 256, false},
		{"coffee_cmyk.jpg", 600, 400, false},
		{"wood.webp", 640, 480, false},
		{"tiny_red.png", 17, 9, false},
	} {
		img, err := Open(filepath.Join(images, tc.file))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if img.W != tc.w || img.H != tc.h || len(img.Pix) != 3*tc.w*tc.h {
			t.Errorf("%s: %dx%d with %d bytes, want %dx%d", tc.file, img.W, img.H, len(img.Pix), tc.w, tc.h)
		}
		grey := true
		for i := 0; i < len(img.Pix); i += 3 {
			if img.Pix[i] != img.Pix[i+1] || img.Pix[i] != img.Pix[i+2] {
				grey = false
				break
			}
		}
		if grey != tc.grey {
			t.Errorf("%s: grey = %v, want %v", tc.file, grey, tc.grey)
		}
	}
}

func TestCMYK(t *testing.T) {
	// Stored (Adobe-inverted) CMYK bytes → Pillow's RGB. Pure black ink k: stored 0 → black;
	// no ink at all: stored 255 → white; 50% cyan, no black → R = 255 − 128·255/255 = 127.
	dst := make([]byte, 9)
	cmykToRGB(dst, []byte{255, 255, 255, 0, 255, 255, 255, 255, 127, 255, 255, 255})
	want := []byte{0, 0, 0, 255, 255, 255, 127, 255, 255}
	if string(dst) != string(want) {
		t.Errorf("cmykToRGB = %v, want %v", dst, want)
	}
}

func TestResize(t *testing.T) {
	// A flat image stays flat at any size: the weights of every output pixel sum to one.
	flat := &RGB{W: 37, H: 5, Pix: make([]byte, 3*37*5)}
	for i := range flat.Pix {
		flat.Pix[i] = []byte{10, 128, 250}[i%3]
	}
	for _, s := range [][2]int{{224, 224}, {3, 2}, {37, 5}, {1, 1}, {500, 7}} {
		r := flat.Resize(s[0], s[1])
		if r.W != s[0] || r.H != s[1] || len(r.Pix) != 3*s[0]*s[1] {
			t.Fatalf("Resize(%v): %dx%d, %d bytes", s, r.W, r.H, len(r.Pix))
		}
		for i, v := range r.Pix {
			if v != flat.Pix[i%3] {
				t.Fatalf("Resize(%v): byte %d = %d, want %d", s, i, v, flat.Pix[i%3])
			}
		}
	}
	// Bicubic overshoots at a hard edge and Pillow clamps: a 0/255 step upscaled keeps 0 and 255
	// at the ends and is monotone apart from the clamped ringing.
	step := &RGB{W: 4, H: 1, Pix: []byte{0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255}}
	r := step.Resize(16, 1)
	if r.Pix[0] != 0 || r.Pix[len(r.Pix)-1] != 255 {
		t.Errorf("step edges: %v", r.Pix)
	}
}

// BenchmarkDecodeResized is the decode every query and extract does: by rows into the resize.
func BenchmarkDecodeResized(b *testing.B) {
	for _, name := range []string{"dune.jpg", "aqua_progressive.jpg", "chelsea.png", "wood.webp"} {
		b.Run(name, func(b *testing.B) {
			data, err := os.ReadFile(filepath.Join(images, name))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := DecodeResized(data, 224, 224); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
