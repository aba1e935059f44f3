package pil

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// Each orientation's transpose, on a 3x2 image whose pixels are numbered 1..6 row by row
// (PIL.ImageOps.exif_transpose's table: 6 turns 90° clockwise, 8 anticlockwise).
func TestTranspose(t *testing.T) {
	m := &RGB{W: 3, H: 2}
	for v := byte(1); v <= 6; v++ {
		m.Pix = append(m.Pix, v, v, v)
	}
	for _, tc := range []struct {
		orientation int
		w, h        int
		want        []byte
	}{
		{1, 3, 2, []byte{1, 2, 3, 4, 5, 6}},
		{2, 3, 2, []byte{3, 2, 1, 6, 5, 4}},
		{3, 3, 2, []byte{6, 5, 4, 3, 2, 1}},
		{4, 3, 2, []byte{4, 5, 6, 1, 2, 3}},
		{5, 2, 3, []byte{1, 4, 2, 5, 3, 6}},
		{6, 2, 3, []byte{4, 1, 5, 2, 6, 3}},
		{7, 2, 3, []byte{6, 3, 5, 2, 4, 1}},
		{8, 2, 3, []byte{3, 6, 2, 5, 1, 4}},
		{9, 3, 2, []byte{1, 2, 3, 4, 5, 6}},
	} {
		r := m.transpose(tc.orientation)
		var got []byte
		for i := 0; i < len(r.Pix); i += 3 {
			got = append(got, r.Pix[i])
		}
		if r.W != tc.w || r.H != tc.h || string(got) != string(tc.want) {
			t.Errorf("orientation %d: %dx%d %v, want %dx%d %v", tc.orientation, r.W, r.H, got, tc.w, tc.h, tc.want)
		}
	}
}

// dune_exif_rotated.jpg carries orientation 6 (turn 90° clockwise to view): ignored by default as
// the Python pipeline ignores it, applied with ExifTranspose.
func TestExifTranspose(t *testing.T) {
	path := filepath.Join(images, "dune_exif_rotated.jpg")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if o := Orientation(data); o != 6 {
		t.Fatalf("orientation %d, want 6", o)
	}
	plain, err := Options{}.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	turned, err := Options{ExifTranspose: true}.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if turned.W != plain.H || turned.H != plain.W {
		t.Fatalf("transposed %dx%d from %dx%d", turned.W, turned.H, plain.W, plain.H)
	}
	// Clockwise: the bottom-left pixel of the stored image becomes the top-left one.
	if string(turned.Pix[:3]) != string(plain.Pix[3*(plain.H-1)*plain.W:][:3]) {
		t.Errorf("top-left pixel is not the stored bottom-left one")
	}
	for _, name := range []string{"elephants.jpg", "chelsea.png", "wood.webp"} {
		b, err := os.ReadFile(filepath.Join(images, name))
		if err != nil {
			t.Fatal(err)
		}
		if o := Orientation(b); o != 1 {
			t.Errorf("%s: orientation %d, want 1 (none)", name, o)
		}
	}
}

// A PNG's eXIf chunk (before the image data) is read as Pillow reads it.
func TestOrientationPNG(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(images, "tiny_red.png"))
	if err != nil {
		t.Fatal(err)
	}
	exif := []byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00")
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(exif)))
	chunk = append(append(chunk, "eXIf"...), exif...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	ihdrEnd := 8 + 8 + 13 + 4
	withExif := append(append(append([]byte{}, data[:ihdrEnd]...), chunk...), data[ihdrEnd:]...)
	if o := Orientation(withExif); o != 8 {
		t.Fatalf("orientation %d, want 8", o)
	}
	img, err := Options{ExifTranspose: true}.Decode(withExif)
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 9 || img.H != 17 {
		t.Errorf("transposed to %dx%d, want 9x17", img.W, img.H)
	}
}
