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

// coefficients is the memory libjpeg holds for the image's DCT coefficients when it has several
// scans (progressive, or sequential with one scan per component): it decodes every scan before
// the first row comes out (jdcoefct.c's whole_image arrays). 0 for a single-scan image, whose
// rows are decoded as they are read.
static long coefficients(struct jpeg_decompress_struct *cinfo) {
	if (!cinfo->progressive_mode && cinfo->comps_in_scan >= cinfo->num_components) return 0;
	long n = 0;
	for (int i = 0; i < cinfo->num_components; i++) {
		jpeg_component_info *c = &cinfo->comp_info[i];
		long bw = (c->width_in_blocks + c->h_samp_factor - 1) / c->h_samp_factor * c->h_samp_factor;
		long bh = (c->height_in_blocks + c->v_samp_factor - 1) / c->v_samp_factor * c->v_samp_factor;
		n += bw * bh * (long)sizeof(JBLOCK);
	}
	return n;
}

// header reads the size and colour space without decoding any pixel.
static int header(const unsigned char *buf, unsigned long len, int *w, int *h, int *cmyk, long *coef, char *msg) {
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
	*cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
	*coef = coefficients(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	return 1;
}

// A decoder whose rows are read a few at a time.
struct decoder {
	struct jpeg_decompress_struct cinfo;
	struct err_mgr err;
};

// start opens a decoder on a JPEG held in memory (buf must stay where it is until finish).
// Colour JPEGs come out RGB, CMYK/YCCK ones CMYK, greyscale ones grey replicated to RGB by
// libjpeg. max_mem caps libjpeg's whole-image arrays: a file that would need more than its
// header said is refused ("Backing store not supported") rather than allocated.
static struct decoder *start(const unsigned char *buf, unsigned long len, int w, int h, int cmyk, long max_mem, char *msg) {
	struct decoder *d = calloc(1, sizeof *d);
	if (d == NULL) {
		snprintf(msg, JMSG_LENGTH_MAX, "out of memory");
		return NULL;
	}
	init(&d->cinfo, &d->err);
	if (setjmp(d->err.jump)) {
		strncpy(msg, d->err.msg, JMSG_LENGTH_MAX);
		jpeg_destroy_decompress(&d->cinfo);
		free(d);
		return NULL;
	}
	jpeg_create_decompress(&d->cinfo);
	d->cinfo.mem->max_memory_to_use = max_mem;
	jpeg_mem_src(&d->cinfo, buf, len);
	jpeg_read_header(&d->cinfo, TRUE);
	if ((int)d->cinfo.image_width != w || (int)d->cinfo.image_height != h) {
		snprintf(d->err.msg, JMSG_LENGTH_MAX, "size changed between two reads of the header");
		longjmp(d->err.jump, 1);
	}
	d->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
	// Pillow's decoder settings: libjpeg's defaults (JDCT_ISLOW, fancy upsampling, no scaling).
	d->cinfo.dct_method = JDCT_ISLOW;
	d->cinfo.do_fancy_upsampling = TRUE;
	jpeg_start_decompress(&d->cinfo);
	return d;
}

// read decodes up to n rows into out (stride bytes apart) and returns how many, or -1.
static int read_rows(struct decoder *d, unsigned char *out, int n, size_t stride, char *msg) {
	if (setjmp(d->err.jump)) {
		strncpy(msg, d->err.msg, JMSG_LENGTH_MAX);
		return -1;
	}
	int got = 0;
	while (got < n && d->cinfo.output_scanline < d->cinfo.output_height) {
		JSAMPROW row = out + stride * got;
		got += jpeg_read_scanlines(&d->cinfo, &row, 1);
	}
	return got;
}

// finish frees the decoder. No jpeg_finish_decompress: like Pillow, nothing after the last
// scanline is read, so a file whose EOI marker is missing or followed by junk still loads.
static void finish(struct decoder *d) {
	jpeg_destroy_decompress(&d->cinfo);
	free(d);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// cgo copies nothing: data and the rows stay where they are during the calls (and data, which
// libjpeg reads between calls, is pinned until close); libjpeg only reads data.
func jpegHeader(data []byte) (header, error) {
	var (
		w, h, cmyk C.int
		coef       C.long
		msg        [C.JMSG_LENGTH_MAX]C.char
	)
	if C.header((*C.uchar)(unsafe.Pointer(unsafe.SliceData(data))), C.ulong(len(data)), &w, &h, &cmyk, &coef, &msg[0]) == 0 {
		return header{}, errors.New(C.GoString(&msg[0]))
	}
	// libjpeg's row buffers (a few rows of every component, upsampled, each up to 64 pixels
	// wider: 256 bytes a pixel of width is plenty) and the rows read at a time.
	return header{w: int(w), h: int(h), cmyk: cmyk != 0, whole: int64(coef), rowMemory: int64(w) * (256 + 4*jpegRows)}, nil
}

// jpegRows is how many rows one call into libjpeg decodes.
const jpegRows = 16

type jpegDecoder struct {
	d    *C.struct_decoder
	pin  runtime.Pinner // the file's bytes, which libjpeg reads between calls
	w, h int
	px   int // bytes per pixel out of libjpeg: 3, or 4 for CMYK
	buf  []byte
	have int // rows in buf
	next int // the next of them to hand out
	done int // rows read from libjpeg
	msg  [C.JMSG_LENGTH_MAX]C.char
}

func openJPEG(data []byte, hd header) (rows, error) {
	j := &jpegDecoder{w: hd.w, h: hd.h, px: 3}
	cmyk := C.int(0)
	if hd.cmyk {
		j.px, cmyk = 4, 1
	}
	p := unsafe.SliceData(data)
	j.pin.Pin(p)
	// Room for the coefficients and libjpeg's own buffers, and some to spare.
	maxMem := C.long(hd.whole + hd.rowMemory + 16<<20)
	j.d = C.start((*C.uchar)(unsafe.Pointer(p)), C.ulong(len(data)), C.int(hd.w), C.int(hd.h), cmyk, maxMem, &j.msg[0])
	if j.d == nil {
		j.pin.Unpin()
		return nil, fmt.Errorf("%w: JPEG: %s", ErrFormat, C.GoString(&j.msg[0]))
	}
	j.buf = make([]byte, jpegRows*j.px*hd.w)
	return j, nil
}

func (j *jpegDecoder) size() (int, int) { return j.w, j.h }

func (j *jpegDecoder) read(dst []byte) error {
	stride := j.px * j.w
	if j.next == j.have {
		n := C.read_rows(j.d, (*C.uchar)(unsafe.Pointer(&j.buf[0])), C.int(min(jpegRows, j.h-j.done)), C.size_t(stride), &j.msg[0])
		if n <= 0 {
			if n == 0 {
				return fmt.Errorf("%w: JPEG: no more rows", ErrFormat)
			}
			return fmt.Errorf("%w: JPEG: %s", ErrFormat, C.GoString(&j.msg[0]))
		}
		j.have, j.next = int(n), 0
		j.done += int(n)
	}
	row := j.buf[stride*j.next : stride*(j.next+1)]
	j.next++
	if j.px == 4 {
		cmykToRGB(dst, row)
	} else {
		copy(dst, row)
	}
	return nil
}

func (j *jpegDecoder) close() {
	C.finish(j.d)
	j.pin.Unpin()
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
