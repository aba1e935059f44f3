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
	var w, h C.int
	if C.WebPGetInfo((*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(data))), C.size_t(len(data)), &w, &h) == 0 {
		return header{}, errors.New("invalid header")
	}
	// libwebp decodes lossless images through 32-bit ARGB rows and lossy ones through YUV planes.
	return header{w: int(w), h: int(h), bytesPerPixel: 4}, nil
}

// decodeWebP decodes with libwebp's default options (fancy upsampling), as Pillow does, to RGB;
// an alpha channel is dropped by decoding to RGB, which libwebp does without compositing.
func decodeWebP(data []byte, hd header) (*RGB, error) {
	ptr := (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(data)))
	out := &RGB{W: hd.w, H: hd.h, Pix: make([]byte, 3*hd.w*hd.h)}
	stride := 3 * hd.w
	res := C.WebPDecodeRGBInto(ptr, C.size_t(len(data)), (*C.uint8_t)(unsafe.Pointer(&out.Pix[0])), C.size_t(len(out.Pix)), C.int(stride))
	if res == nil {
		return nil, fmt.Errorf("%w: WebP: corrupt or truncated data", ErrFormat)
	}
	return out, nil
}
