package pil

import "math"

// Resize returns the image scaled to w×h exactly as Pillow 9.4's Image.resize((w, h)) does with
// its default filter for RGB images, BICUBIC (Resample.c): a separable convolution, horizontal
// pass first, with the filter's support widened by the scale factor when shrinking
// (antialiasing), coefficients normalised in float64 and rounded to 22-bit fixed point, and each
// pass rounded and clamped to 8 bits. Matching every one of those steps, not just "bicubic", is
// what makes the pixels — and so the embeddings — identical to the Python pipeline's.
func (m *RGB) Resize(w, h int) *RGB {
	if w == m.W && h == m.H {
		return &RGB{W: w, H: h, Pix: append([]byte(nil), m.Pix...)}
	}
	r := newResizer(m.W, m.H, w, h)
	for y := 0; y < m.H; y++ {
		r.push(m.Pix[3*m.W*y : 3*m.W*(y+1)])
	}
	return r.out
}

// resizer is Resize fed one source row at a time, top to bottom, so that a decoder need never
// hold the whole image: each row is resampled horizontally as it comes (Pillow's first pass,
// which reads one row at a time anyway), and added, with its weight, into the accumulators of
// the output rows whose filter window it falls in; an output row is rounded once its window's
// last row has been added. The integers summed, and the order they are summed in, are Pillow's,
// so the result is bit for bit the two-pass one; what it holds is the tables, one resampled row
// and the few output rows in progress.
type resizer struct {
	w, h        int
	horiz, vert *coeffs // nil: that pass is not needed (the size does not change)
	y           int     // the next source row
	tmp         []byte  // the current row, resampled horizontally
	open        []openRow
	free        [][]int32
	next        int // the first output row not yet opened
	out         *RGB
}

type openRow struct {
	yy  int
	acc []int32
}

func newResizer(sw, sh, w, h int) *resizer {
	r := &resizer{w: w, h: h, out: &RGB{W: w, H: h, Pix: make([]byte, 3*w*h)}}
	if w != sw {
		c := newCoeffs(sw, w)
		r.horiz = &c
		r.tmp = make([]byte, 3*w)
	}
	if h != sh {
		c := newCoeffs(sh, h)
		r.vert = &c
	}
	return r
}

// push adds source row r.y (3*sw bytes).
func (r *resizer) push(row []byte) {
	y := r.y
	r.y++
	if r.vert == nil {
		if r.horiz == nil {
			copy(r.out.Pix[3*r.w*y:], row)
		} else {
			resampleRow(r.out.Pix[3*r.w*y:3*r.w*(y+1)], row, r.horiz)
		}
		return
	}
	c := r.vert
	// Open the output rows whose window starts at or before y; windows move down monotonically.
	for r.next < r.h && c.bounds[2*r.next] <= y {
		var acc []int32
		if n := len(r.free); n > 0 {
			acc, r.free = r.free[n-1], r.free[:n-1]
		} else {
			acc = make([]int32, 3*r.w)
		}
		for i := range acc {
			acc[i] = 1 << (precisionBits - 1)
		}
		r.open = append(r.open, openRow{r.next, acc})
		r.next++
	}
	if len(r.open) == 0 {
		return // above every window: Pillow's horizontal pass skips it too
	}
	src := row
	if r.horiz != nil {
		resampleRow(r.tmp, row, r.horiz)
		src = r.tmp
	}
	kept := r.open[:0]
	for _, o := range r.open {
		ymin, n := c.bounds[2*o.yy], c.bounds[2*o.yy+1]
		kv := c.k[o.yy*c.ksize+y-ymin]
		for i, p := range src {
			o.acc[i] += int32(p) * kv
		}
		if y < ymin+n-1 {
			kept = append(kept, o)
			continue
		}
		dst := r.out.Pix[3*r.w*o.yy : 3*r.w*(o.yy+1)]
		for i, v := range o.acc {
			dst[i] = clamp8(v)
		}
		r.free = append(r.free, o.acc)
	}
	r.open = kept
}

// resizeMemory is what a resizer from sw×sh to w×h holds, besides the output: the weight tables
// and the accumulators of the output rows in progress (at most windowRows at once).
func resizeMemory(sw, sh, w, h int) int64 {
	mem := int64(3 * w)
	if w != sw {
		mem += 4*int64(w)*int64(kernelSize(sw, w)) + 16*int64(w)
	}
	if h != sh {
		mem += 4*int64(h)*int64(kernelSize(sh, h)) + 16*int64(h)
		mem += 12 * int64(w) * int64(min(h, windowRows(sh, h)))
	}
	return mem
}

// kernelSize is the number of weights per output pixel newCoeffs keeps.
func kernelSize(in, out int) int {
	scale := float64(float32(in)) / float64(out)
	return int(math.Ceil(bicubicSupport*max(scale, 1)))*2 + 1
}

// windowRows bounds the number of output rows whose windows hold one source row: a window
// spans 2·support+1 source rows around its centre and consecutive centres are scale apart.
func windowRows(in, out int) int {
	scale := float64(float32(in)) / float64(out)
	support := bicubicSupport * max(scale, 1)
	return int(math.Ceil((2*support+2)/scale)) + 2
}

const (
	precisionBits  = 32 - 8 - 2
	bicubicSupport = 2.0
)

func bicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return ((a+2)*x-(a+3))*x*x + 1
	}
	if x < 2 {
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

// coeffs holds, for each output pixel, the first input pixel and the number of input pixels it
// reads (bounds[2i], bounds[2i+1]) and their fixed-point weights k[i*ksize : i*ksize+n].
type coeffs struct {
	ksize  int
	bounds []int
	k      []int32
}

// newCoeffs is Pillow's precompute_coeffs followed by normalize_coeffs_8bpc, for the whole
// input range [0, in).
func newCoeffs(in, out int) coeffs {
	scale := float64(float32(in)) / float64(out)
	filterscale := max(scale, 1)
	support := bicubicSupport * filterscale
	ksize := kernelSize(in, out)
	c := coeffs{ksize: ksize, bounds: make([]int, 2*out), k: make([]int32, out*ksize)}
	kk := make([]float64, ksize)
	for xx := 0; xx < out; xx++ {
		center := (float64(xx) + 0.5) * scale
		ss := 1 / filterscale
		xmin := int(center - support + 0.5) // C's (int) truncates toward zero
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > in {
			xmax = in
		}
		xmax -= xmin
		var ww float64
		for x := 0; x < xmax; x++ {
			kk[x] = bicubic((float64(x+xmin) - center + 0.5) * ss)
			ww += kk[x]
		}
		for x := 0; x < xmax; x++ {
			if ww != 0 {
				kk[x] /= ww
			}
			v := kk[x] * (1 << precisionBits)
			if v < 0 {
				c.k[xx*ksize+x] = int32(v - 0.5)
			} else {
				c.k[xx*ksize+x] = int32(v + 0.5)
			}
		}
		c.bounds[2*xx], c.bounds[2*xx+1] = xmin, xmax
	}
	return c
}

// clamp8 is Pillow's clip8: drop the fraction bits and clamp to a byte.
func clamp8(v int32) byte {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v)
}

// resampleRow is Pillow's horizontal pass over one row: src (RGB) to dst, len(c.bounds)/2 wide.
func resampleRow(dst, src []byte, c *coeffs) {
	for xx := 0; xx < len(dst)/3; xx++ {
		xmin, n := c.bounds[2*xx], c.bounds[2*xx+1]
		k := c.k[xx*c.ksize : xx*c.ksize+n]
		s0, s1, s2 := int32(1)<<(precisionBits-1), int32(1)<<(precisionBits-1), int32(1)<<(precisionBits-1)
		px := src[3*xmin : 3*(xmin+n)]
		for x, kv := range k {
			s0 += int32(px[3*x]) * kv
			s1 += int32(px[3*x+1]) * kv
			s2 += int32(px[3*x+2]) * kv
		}
		dst[3*xx], dst[3*xx+1], dst[3*xx+2] = clamp8(s0), clamp8(s1), clamp8(s2)
	}
}
