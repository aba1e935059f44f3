package pil

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// refResize is Pillow's resize as Resample.c writes it, two whole passes: every source row the
// vertical pass reads resampled horizontally into an intermediate image, then the vertical pass
// over it. The resize by rows must give the same bytes.
func refResize(m *RGB, w, h int) *RGB {
	if w == m.W && h == m.H {
		return &RGB{W: w, H: h, Pix: append([]byte(nil), m.Pix...)}
	}
	src := m
	vert := newCoeffs(m.H, h)
	if w != m.W {
		first := vert.bounds[0]
		last := vert.bounds[2*(h-1)] + vert.bounds[2*(h-1)+1]
		for i := 0; i < h; i++ {
			vert.bounds[2*i] -= first
		}
		c := newCoeffs(m.W, w)
		tmp := &RGB{W: w, H: last - first, Pix: make([]byte, 3*w*(last-first))}
		for y := 0; y < tmp.H; y++ {
			resampleRow(tmp.Pix[3*w*y:3*w*(y+1)], m.Pix[3*m.W*(y+first):3*m.W*(y+first+1)], &c)
		}
		src = tmp
	}
	if h == m.H {
		return src
	}
	stride := 3 * src.W
	out := &RGB{W: src.W, H: h, Pix: make([]byte, stride*h)}
	for yy := 0; yy < h; yy++ {
		ymin, n := vert.bounds[2*yy], vert.bounds[2*yy+1]
		for i := 0; i < stride; i++ {
			acc := int32(1) << (precisionBits - 1)
			for y := 0; y < n; y++ {
				acc += int32(src.Pix[stride*(ymin+y)+i]) * vert.k[yy*vert.ksize+y]
			}
			out.Pix[stride*yy+i] = clamp8(acc)
		}
	}
	return out
}

func randomRGB(rng *rand.Rand, w, h int) *RGB {
	m := &RGB{W: w, H: h, Pix: make([]byte, 3*w*h)}
	for i := range m.Pix {
		m.Pix[i] = byte(rng.IntN(256))
	}
	return m
}

// Resizing by rows gives the two-pass resize's bytes, shrinking, growing, one way and the other,
// to and from one pixel; and it never has more output rows in progress than resizeMemory counts.
func TestResizeByRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	sizes := [][4]int{{1, 1, 224, 224}, {640, 480, 224, 224}, {3, 2000, 224, 224}, {2000, 3, 224, 224}, {17, 9, 17, 224}, {17, 9, 224, 9}, {300, 1, 7, 5}, {5, 5, 1, 1}}
	for range 200 {
		sizes = append(sizes, [4]int{1 + rng.IntN(60), 1 + rng.IntN(60), 1 + rng.IntN(60), 1 + rng.IntN(60)})
	}
	for _, s := range sizes {
		m := randomRGB(rng, s[0], s[1])
		want := refResize(m, s[2], s[3])
		r := newResizer(s[0], s[1], s[2], s[3])
		most := 0
		for y := 0; y < m.H; y++ {
			r.push(m.Pix[3*m.W*y : 3*m.W*(y+1)])
			most = max(most, len(r.open))
		}
		if !bytes.Equal(r.out.Pix, want.Pix) {
			t.Errorf("%dx%d to %dx%d: the resize by rows differs from the two-pass one", s[0], s[1], s[2], s[3])
		}
		if s[1] != s[3] && most > min(s[3], windowRows(s[1], s[3])) {
			t.Errorf("%dx%d to %dx%d: %d output rows in progress, over the %d counted", s[0], s[1], s[2], s[3], most, windowRows(s[1], s[3]))
		}
		if got := m.Resize(s[2], s[3]); !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("%dx%d to %dx%d: Resize differs from the two-pass resize", s[0], s[1], s[2], s[3])
		}
	}
}
