package pil

import (
	"fmt"
	"io"

	"golang.org/x/image/tiff"
)

// sizePrefix is what ReadSize reads first: the header of every format, EXIF and colour profiles
// included, fits in it for all but unusual files, which ReadSize then reads whole.
const sizePrefix = 256 << 10

// ReadSize returns the width and height that the header of the image in r (size bytes) gives,
// as stored (EXIF orientation is not applied), reading no pixel: the header that Decode checks
// against MaxPixels before it decodes anything. It reads the start of the file; a TIFF's
// directory, wherever it is; and the whole file only when its header does not fit in the start.
func ReadSize(r io.ReaderAt, size int64) (w, h int, err error) {
	head := make([]byte, min(size, sizePrefix))
	if n, err := r.ReadAt(head, 0); n < len(head) {
		return 0, 0, fmt.Errorf("reading the header: %w", err)
	}
	if f := sniff(head); f != nil && f.name == "TIFF" {
		// The directory holding the size may be anywhere: x/image/tiff reads it in place.
		c, err := tiff.DecodeConfig(io.NewSectionReader(r, 0, size))
		if err != nil {
			return 0, 0, fmt.Errorf("%w: TIFF: %v", ErrFormat, err)
		}
		if c.Width <= 0 || c.Height <= 0 {
			return 0, 0, fmt.Errorf("%w: TIFF: size %dx%d", ErrFormat, c.Width, c.Height)
		}
		return c.Width, c.Height, nil
	} else if f == nil || size == int64(len(head)) {
		return Size(head)
	}
	if w, h, err = Size(head); err == nil {
		return w, h, nil
	}
	whole := make([]byte, size) // a header longer than the prefix (a large profile, say)
	if n, err := r.ReadAt(whole, 0); n < len(whole) {
		return 0, 0, fmt.Errorf("reading the header: %w", err)
	}
	return Size(whole)
}
