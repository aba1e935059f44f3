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
	f := sniff(head)
	if f == nil {
		return 0, 0, fmt.Errorf("%w: unrecognised format (simsearch reads JPEG, PNG, GIF, WebP, TIFF and BMP)", ErrFormat)
	}
	var hd header
	if f.name == "TIFF" {
		// The directory holding the size may be anywhere: x/image/tiff reads it in place.
		c, cerr := tiff.DecodeConfig(io.NewSectionReader(r, 0, size))
		hd, err = header{w: c.Width, h: c.Height}, cerr
	} else if hd, err = f.header(head); err != nil && size > int64(len(head)) {
		whole := make([]byte, size)
		if n, rerr := r.ReadAt(whole, 0); n < len(whole) {
			return 0, 0, fmt.Errorf("reading the header: %w", rerr)
		}
		hd, err = f.header(whole)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s: %v", ErrFormat, f.name, err)
	}
	if hd.w <= 0 || hd.h <= 0 {
		return 0, 0, fmt.Errorf("%w: %s: size %dx%d", ErrFormat, f.name, hd.w, hd.h)
	}
	return hd.w, hd.h, nil
}
