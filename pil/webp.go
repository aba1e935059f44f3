package pil

/*
#cgo LDFLAGS: -lwebp
#include <stdlib.h>
#include <webp/decode.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

func webpHeader(data []byte) (header, error) {
	var f C.WebPBitstreamFeatures
	if C.WebPGetFeatures((*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(data))), C.size_t(len(data)), &f) != C.VP8_STATUS_OK {
		return header{}, errors.New("invalid header")
	}
	// libwebp decodes into an RGB buffer of the whole image; a lossless image goes through
	// 32-bit ARGB pixels of the whole image first (its back-references reach anywhere above),
	// and a lossy one with alpha through an alpha plane. Both are C's, freed when done.
	n := int64(f.width) * int64(f.height)
	per := int64(3)
	switch {
	case f.format != 1: // lossless, or mixed (animation): count the worst
		per += 4
	case f.has_alpha != 0:
		per++
	}
	return header{w: int(f.width), h: int(f.height), whole: per * n}, nil
}

// webpRows is a WebP decoded whole, into C memory, and read by rows.
type webpRows struct {
	w, h, y int
	pix     *C.uint8_t
}

// openWebP decodes with libwebp's default options (fancy upsampling), as Pillow does, to RGB;
// an alpha channel is dropped by decoding to RGB, which libwebp does without compositing.
func openWebP(data []byte, hd header) (rows, error) {
	size := C.size_t(3 * hd.w * hd.h)
	pix := (*C.uint8_t)(C.malloc(size))
	if pix == nil {
		return nil, fmt.Errorf("%w: WebP: cannot allocate %dx%d", ErrTooLarge, hd.w, hd.h)
	}
	ptr := (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(data)))
	if C.WebPDecodeRGBInto(ptr, C.size_t(len(data)), pix, size, C.int(3*hd.w)) == nil {
		C.free(unsafe.Pointer(pix))
		return nil, fmt.Errorf("%w: WebP: corrupt or truncated data", ErrFormat)
	}
	return &webpRows{w: hd.w, h: hd.h, pix: pix}, nil
}

func (r *webpRows) size() (int, int) { return r.w, r.h }

func (r *webpRows) read(dst []byte) error {
	stride := 3 * r.w
	copy(dst, unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(r.pix), stride*r.y)), stride))
	r.y++
	return nil
}

func (r *webpRows) close() {
	C.free(unsafe.Pointer(r.pix))
	r.pix = nil
}
