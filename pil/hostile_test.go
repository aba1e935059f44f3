package pil

import (
	"errors"
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
