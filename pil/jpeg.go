package pil

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

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

// Warnings are ignored, as Pillow's decoder ignores them (extraneous bytes before a marker, a
// corrupt entropy segment, ...), with one exception: running out of data. Pillow feeds libjpeg
// through a suspending source and raises "image file is truncated" when the file ends before the
// image does; libjpeg's memory source instead warns JWRN_JPEG_EOF and pads with grey.
static void on_warning(j_common_ptr cinfo, int level) {
	if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_error(cinfo);
}

static void init(struct jpeg_decompress_struct *cinfo, struct err_mgr *err) {
	cinfo->err = jpeg_std_error(&err->pub);
	err->pub.error_exit = on_error;
	err->pub.emit_message = on_warning;
}

// header reads the size and colour space without decoding any pixel.
static int header(const unsigned char *buf, unsigned long len, int *w, int *h, int *comps, int *cmyk, int *progressive, char *msg) {
	struct jpeg_decompress_struct cinfo;
	struct err_mgr err;
	init(&cinfo, &err);
	if (setjmp(err.jump)) {
		strncpy(msg, err.msg, JMSG_LENGTH_MAX);
		jpeg_destroy_decompress(&cinfo);
		return 0;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, buf, len);
	jpeg_read_header(&cinfo, TRUE);
	*w = cinfo.image_width;
	*h = cinfo.image_height;
	*comps = cinfo.num_components;
	*cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
	*progressive = cinfo.progressive_mode;
	jpeg_destroy_decompress(&cinfo);
	return 1;
}

// decode decodes a JPEG held in memory into out (w*h*3 bytes, or 4 for CMYK). Colour JPEGs come
// out RGB, CMYK/YCCK ones CMYK, greyscale ones grey replicated to RGB by libjpeg.
static int decode(const unsigned char *buf, unsigned long len, unsigned char *out, int w, int h, int cmyk, char *msg) {
	struct jpeg_decompress_struct cinfo;
	struct err_mgr err;
	init(&cinfo, &err);
	if (setjmp(err.jump)) {
		strncpy(msg, err.msg, JMSG_LENGTH_MAX);
		jpeg_destroy_decompress(&cinfo);
		return 0;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, buf, len);
	jpeg_read_header(&cinfo, TRUE);
	if ((int)cinfo.image_width != w || (int)cinfo.image_height != h) {
		snprintf(msg, JMSG_LENGTH_MAX, "size changed between two reads of the header");
		jpeg_destroy_decompress(&cinfo);
		return 0;
	}
	cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
	// Pillow's decoder settings: libjpeg's defaults (JDCT_ISLOW, fancy upsampling, no scaling).
	cinfo.dct_method = JDCT_ISLOW;
	cinfo.do_fancy_upsampling = TRUE;
	jpeg_start_decompress(&cinfo);
	size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW row = out + stride * cinfo.output_scanline;
		jpeg_read_scanlines(&cinfo, &row, 1);
	}
	// No jpeg_finish_decompress: like Pillow, nothing after the last scanline is read, so a
	// file whose EOI marker is missing or followed by junk still loads.
	jpeg_destroy_decompress(&cinfo);
	return 1;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// cgo copies nothing: data and the output stay pinned for the calls; libjpeg only reads data.
func jpegHeader(data []byte) (header, error) {
	var (
		w, h, comps, cmyk, progressive C.int
		msg                            [C.JMSG_LENGTH_MAX]C.char
	)
	if C.header((*C.uchar)(unsafe.Pointer(unsafe.SliceData(data))), C.ulong(len(data)), &w, &h, &comps, &cmyk, &progressive, &msg[0]) == 0 {
		return header{}, errors.New(C.GoString(&msg[0]))
	}
	hd := header{w: int(w), h: int(h), cmyk: cmyk != 0, bytesPerPixel: 1} // CMYK's fourth byte
	if progressive != 0 {
		hd.bytesPerPixel += 2 * int64(comps) // libjpeg keeps every DCT coefficient until the last scan
	}
	return hd, nil
}

func decodeJPEG(data []byte, hd header) (*RGB, error) {
	var msg [C.JMSG_LENGTH_MAX]C.char
	n := hd.w * hd.h
	px, cmyk := 3, C.int(0)
	if hd.cmyk {
		px, cmyk = 4, 1
	}
	pix := make([]byte, px*n)
	if C.decode((*C.uchar)(unsafe.Pointer(unsafe.SliceData(data))), C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&pix[0])), C.int(hd.w), C.int(hd.h), cmyk, &msg[0]) == 0 {
		return nil, fmt.Errorf("%w: JPEG: %s", ErrFormat, C.GoString(&msg[0]))
	}
	if hd.cmyk {
		cmykToRGB(pix, pix) // in place: pixel i's RGB never overwrites a CMYK byte not yet read
		pix = pix[:3*n]
	}
	return &RGB{W: hd.w, H: hd.h, Pix: pix}, nil
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
