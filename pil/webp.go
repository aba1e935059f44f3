package pil

/*
#cgo LDFLAGS: -lwebp
#include <stdlib.h>
#include <webp/decode.h>
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// decodeWebP decodes with libwebp's default options (fancy upsampling), as Pillow does, to RGB;
// an alpha channel is dropped by decoding to RGB, which libwebp does without compositing.
func decodeWebP(data []byte) (*RGB, error) {
	var w, h C.int
	ptr := (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(data)))
	if C.WebPGetInfo(ptr, C.size_t(len(data)), &w, &h) == 0 {
		return nil, fmt.Errorf("%w: WebP: invalid header", ErrFormat)
	}
	if err := checkSize(int(w), int(h)); err != nil {
		return nil, err
	}
	out := &RGB{W: int(w), H: int(h), Pix: make([]byte, 3*int(w)*int(h))}
	stride := 3 * int(w)
	res := C.WebPDecodeRGBInto(ptr, C.size_t(len(data)), (*C.uint8_t)(unsafe.Pointer(&out.Pix[0])), C.size_t(len(out.Pix)), C.int(stride))
	if res == nil {
		return nil, fmt.Errorf("%w: WebP: corrupt or truncated data", ErrFormat)
	}
	return out, nil
}
