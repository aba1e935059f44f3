package shard

import (
	"math"
	"testing"
)

// Half floats written by numpy widen to exactly what numpy's astype("<f4") gives: subnormals,
// signed zeros and the largest finite value included (npyio decoded 6e-5 as 1.1e-38).
func TestHalfFloatsAsNumpy(t *testing.T) {
	f, err := OpenFeatures("../testdata/npy/ok_f2_special/0000.features.npy")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, _, err := ReadVectors("../testdata/npy/ok_f2_special_as_f4.npy")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rows) != len(want) || len(want) != 8 {
		t.Fatalf("%d values, want %d (8)", len(f.Rows), len(want))
	}
	for i := range want {
		if math.Float32bits(f.Rows[i]) != math.Float32bits(want[i]) {
			t.Errorf("value %d: %g (%#x), numpy %g (%#x)", i, f.Rows[i], math.Float32bits(f.Rows[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// Every one of the 65,536 half floats: exact against the definition value = ±m × 2^(e-25).
func TestHalfToFloat32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		sign, exp, mant := h>>15, (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case exp == 0x1f && mant == 0:
			want = math.Inf(1)
		case exp == 0x1f:
			if g := halfToFloat32(uint16(h)); g == g {
				t.Fatalf("%#04x: %g, want NaN", h, g)
			}
			continue
		case exp == 0:
			want = math.Ldexp(float64(mant), -24)
		default:
			want = math.Ldexp(float64(mant|0x400), exp-25)
		}
		if sign == 1 {
			want = -want
		}
		if g := halfToFloat32(uint16(h)); float64(g) != want || math.Signbit(float64(g)) != (sign == 1) {
			t.Fatalf("%#04x: %g, want %g", h, g, want)
		}
	}
}
