package pil

import (
	"bytes"
	"compress/zlib"
	"errors"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const hostile = "../testdata/hostile"

// Every hostile file is refused with a reason, and refusing it allocates next to nothing: sizes
// are checked from the header before any pixel is allocated (before the fix, the PNG header bomb
// made the runtime abort with "out of memory").
func TestHostileFilesRefused(t *testing.T) {
	ents, err := os.ReadDir(hostile)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(hostile, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			img, err := Decode(data)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("decoded to %dx%d, want a refusal", img.W, img.H)
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) {
				t.Errorf("error %v wraps neither ErrFormat nor ErrTooLarge", err)
			}
			bomb := strings.Contains(e.Name(), "bomb")
			if bomb && (!errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "exceeds the limit of 178956970")) {
				t.Errorf("bomb refused for another reason than its size: %v", err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
				t.Errorf("refusing it allocated %d MB", got>>20)
			}
			t.Log(err)
		})
	}
	if n < 18 {
		t.Fatalf("only %d hostile files in %s: run go run ./testdata/hostile/gen", n, hostile)
	}
}

// The limit is Pillow's: refused strictly above 2×MAX_IMAGE_PIXELS, and an option.
func TestMaxPixels(t *testing.T) {
	o := Options{}
	for _, tc := range []struct {
		w, h int
		ok   bool
	}{
		{PillowMaxImagePixels, 1, true}, // Pillow warns and loads
		{PillowMaxImagePixels, 2, true}, // exactly 2×: Pillow's check is ">"
		{PillowMaxImagePixels*2 + 1, 1, false},
		{0, 5, false},
	} {
		if err := o.checkSize("PNG", tc.w, tc.h); (err == nil) != tc.ok {
			t.Errorf("%dx%d: %v, want ok=%v", tc.w, tc.h, err, tc.ok)
		}
	}
	data, err := os.ReadFile(filepath.Join(images, "astronaut.png")) // 512x512
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Options{MaxPixels: 512*512 - 1}).Decode(data); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxPixels 512*512-1: %v, want ErrTooLarge", err)
	}
	if _, err := (Options{MaxPixels: 512 * 512}).Decode(data); err != nil {
		t.Errorf("MaxPixels 512*512: %v", err)
	}
}

// The loadable bombs: PNG and single-scan JPEG are decoded by rows and cost a few rows at any
// size; a progressive JPEG costs its DCT coefficients and a lossless WebP its ARGB and RGB
// images, and the plan counts them from the header, before anything is decoded.
func TestBombCosts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		min, max int64 // bytes the decode holds, resizing to 224×224
	}{
		{"bomb_13000x13000_rgba.png", 0, 2 << 20},
		{"bomb_13000x13000_baseline.jpg", 0, 8 << 20},
		{"bomb_13000x13000_progressive.jpg", 13000 * 13000 * 6, 13000*13000*6 + 8<<20},
		{"bomb_13000x13000_lossless.webp", 13000 * 13000 * 7, 13000*13000*7 + 2<<20},
		{"warn_10000x9000_1bit.png", 0, 1 << 20},
	} {
		data, err := os.ReadFile(filepath.Join(hostile, "loadable", tc.name))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Options{}.plan(data, func(int, int) (int, int) { return 224, 224 })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p.cost < tc.min || p.cost > tc.max {
			t.Errorf("%s: costs %d bytes, want %d to %d", tc.name, p.cost, tc.min, tc.max)
		}
	}
}

// Decoded by rows, a 16-million-pixel PNG and JPEG allocate a few megabytes (whole, they would
// take 64 and 48 MB), and come out as the whole image resized.
func TestDecodeByRowsHoldsLittle(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 4000, 4000))
	for i := range m.Pix {
		m.Pix[i] = byte(i / 4000 % 251)
	}
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, m, nil); err != nil {
		t.Fatal(err)
	}
	pngBomb, err := os.ReadFile(filepath.Join(hostile, "loadable", "bomb_4000x4000_1bit.png"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"JPEG": jpg.Bytes(), "PNG": pngBomb} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		img, err := DecodeResized(data, 224, 224)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
			t.Errorf("%s: allocated %d MB", name, got>>20)
		}
		whole, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(img.Pix, refResize(whole, 224, 224).Pix) {
			t.Errorf("%s: decoded by rows, pixels differ from the whole image resized", name)
		}
	}
}

// An image too elongated to resize — Pillow's intermediate image or a weight table over the
// pixel limit — is refused from its header: a 1×1,000,000 PNG of 2 KB would have cost 672 MB of
// intermediate rows, and hundreds of times its decode's work.
func TestTooElongatedToResize(t *testing.T) {
	o := Options{}
	for _, tc := range []struct {
		w, h int
		ok   bool
	}{
		{1, 798_915, true}, {1, 798_916, false}, // 224 × height ≤ 178,956,970
		{44_700_000, 1, true}, {44_800_000, 1, false}, // 224 × (2·⌈width/112⌉+1)
		{13000, 13000, true},
	} {
		if err := o.checkResize("PNG", tc.w, tc.h, 224, 224); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrTooLarge)) {
			t.Errorf("%dx%d: %v, want ok=%v", tc.w, tc.h, err, tc.ok)
		}
	}
	var raw bytes.Buffer
	zw := zlib.NewWriter(&raw)
	zw.Write(make([]byte, 2*1_000_000)) // a filter byte and one byte of 8 pixels, per row
	zw.Close()
	var png bytes.Buffer
	png.WriteString("\x89PNG\r\n\x1a\n")
	writeChunk(&png, "IHDR", []byte{0, 0, 0, 1, 0, 0x0f, 0x42, 0x40, 1, 0, 0, 0, 0})
	writeChunk(&png, "IDAT", raw.Bytes())
	writeChunk(&png, "IEND", nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := DecodeResized(png.Bytes(), 224, 224)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1x1000000 is too elongated to resize to 224x224") {
		t.Errorf("1x1000000: %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("refusing it allocated %d KB", got>>10)
	}
	if _, err := Decode(png.Bytes()); err != nil { // whole, it is a million pixels
		t.Errorf("decoded whole: %v", err)
	}
}
