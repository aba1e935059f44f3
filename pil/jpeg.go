package pil

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

struct err_mgr {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo) {
	struct err_mgr *e = (struct err_mgr *)cinfo->err;
	(*cinfo->err->format_message)(cinfo, e->msg);
	longjmp(e->jump, 1);
}

// Warnings (a corrupt or truncated stream) are errors here: Pillow raises on a truncated JPEG
// unless told otherwise, and libjpeg would otherwise fill the missing rows with grey.
static void on_warning(j_common_ptr cinfo, int level) {
	if (level < 0) on_error(cinfo);
}

// decode decodes a JPEG held in memory. Colour JPEGs come out RGB, CMYK/YCCK ones CMYK (with
// *cmyk set), greyscale ones grey replicated to RGB by libjpeg. The caller frees *pix.
static int decode(const unsigned char *buf, unsigned long len, int max_pixels,
                  unsigned char **pix, int *w, int *h, int *cmyk, char *msg) {
	struct jpeg_decompress_struct cinfo;
	struct err_mgr err;
	unsigned char *volatile out = NULL;
	cinfo.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = on_error;
	err.pub.emit_message = on_warning;
	if (setjmp(err.jump)) {
		strncpy(msg, err.msg, JMSG_LENGTH_MAX);
		jpeg_destroy_decompress(&cinfo);
		free(out);
		return 0;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, buf, len);
	jpeg_read_header(&cinfo, TRUE);
	if ((long long)cinfo.image_width * cinfo.image_height > max_pixels) {
		snprintf(msg, JMSG_LENGTH_MAX, "%ux%u pixels exceeds the limit of %d", cinfo.image_width, cinfo.image_height, max_pixels);
		jpeg_destroy_decompress(&cinfo);
		return 0;
	}
	*cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
	cinfo.out_color_space = *cmyk ? JCS_CMYK : JCS_RGB;
	// Pillow's decoder settings: libjpeg's defaults (JDCT_ISLOW, fancy upsampling, no scaling).
	cinfo.dct_method = JDCT_ISLOW;
	cinfo.do_fancy_upsampling = TRUE;
	jpeg_start_decompress(&cinfo);
	size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
	out = malloc(stride * cinfo.output_height);
	if (out == NULL) {
		snprintf(msg, JMSG_LENGTH_MAX, "out of memory");
		jpeg_destroy_decompress(&cinfo);
		return 0;
	}
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW row = out + stride * cinfo.output_scanline;
		jpeg_read_scanlines(&cinfo, &row, 1);
	}
	jpeg_finish_decompress(&cinfo);
	*w = cinfo.output_width;
	*h = cinfo.output_height;
	jpeg_destroy_decompress(&cinfo);
	*pix = out;
	return 1;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

func decodeJPEG(data []byte) (*RGB, error) {
	var (
		pix        *C.uchar
		w, h, cmyk C.int
		msg        [C.JMSG_LENGTH_MAX]C.char
	)
	// cgo copies nothing: data stays pinned for the call, and libjpeg only reads it.
	ok := C.decode((*C.uchar)(unsafe.Pointer(unsafe.SliceData(data))), C.ulong(len(data)), C.int(MaxPixels), &pix, &w, &h, &cmyk, &msg[0])
	if ok == 0 {
		return nil, fmt.Errorf("%w: JPEG: %s", ErrFormat, C.GoString(&msg[0]))
	}
	defer C.free(unsafe.Pointer(pix))
	n := int(w) * int(h)
	out := &RGB{W: int(w), H: int(h), Pix: make([]byte, 3*n)}
	if cmyk == 0 {
		copy(out.Pix, unsafe.Slice((*byte)(pix), 3*n))
		return out, nil
	}
	cmykToRGB(out.Pix, unsafe.Slice((*byte)(pix), 4*n))
	return out, nil
}

// cmykToRGB converts libjpeg's CMYK output as Pillow does: its JPEG plugin reads CMYK as
// "CMYK;I" (inverted, the Adobe convention), and convert("RGB") computes
// R = 255 − k − c·(255 − k)/255 with Pillow's rounded integer division, and so on.
func cmykToRGB(dst, src []byte) {
	for i, j := 0, 0; j < len(src); i, j = i+3, j+4 {
		c, m, y, k := 255-int(src[j]), 255-int(src[j+1]), 255-int(src[j+2]), 255-int(src[j+3])
		nk := 255 - k
		dst[i] = clip8(nk - muldiv255(c, nk))
		dst[i+1] = clip8(nk - muldiv255(m, nk))
		dst[i+2] = clip8(nk - muldiv255(y, nk))
	}
}

// muldiv255 is Pillow's MULDIV255: a·b/255 rounded, without a division.
func muldiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

func clip8(v int) byte {
	switch {
	case v < 0:
		return 0
	case v > 255:
		return 255
	}
	return byte(v)
}
