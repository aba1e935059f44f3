package kernel

import (
	"testing"
	"time"
)

func TestPick(t *testing.T) {
	us := func(v ...float64) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x * float64(time.Microsecond))
		}
		return d
	}
	for _, tc := range []struct {
		name  string
		times []time.Duration // narrowest kernel first
		want  int
	}{
		{"one kernel", us(3), 0},
		{"the wider is clearly faster", us(3, 2), 1},
		{"the narrower is faster", us(2, 3), 0},
		{"a tie goes to the narrower", us(3, 3), 0},
		{"the wider is faster within the margin", us(3, 2.9), 0},
		{"the wider is faster by just over the margin", us(3, 2.84), 1},
		{"three: the middle one wins", us(4, 2, 1.95), 1},
		{"three: the widest beats the best narrower", us(4, 2, 1.5), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pick(tc.times); got != tc.want {
				t.Errorf("pick(%v) = %d, want %d", tc.times, got, tc.want)
			}
		})
	}
}

// TestMeasure times the assembly kernels this CPU has, as the first use does, and checks that
// every one got a time and that the probe block is computed right by each (a kernel that did
// nothing would be the fastest).
func TestMeasure(t *testing.T) {
	var cands []impl
	for _, k := range impls {
		if k.name != "generic" {
			cands = append(cands, k)
		}
	}
	if len(cands) < 2 {
		t.Skipf("nothing to measure: the assembly kernels here are %v", cands)
	}
	times := measure(cands)
	for i, k := range cands {
		if times[i] <= 0 {
			t.Errorf("%s: time %v", k.name, times[i])
		}
	}
	t.Logf("probe times: %v, pick %s", times, cands[pick(times)].name)
	q := make([]float32, probeDim)
	rows := make([]float32, probeRows*probeDim)
	for i := range rows {
		rows[i] = float32(i%7) * 0.25
	}
	want := make([]float32, probeRows)
	blockGeneric(q, rows, want)
	for _, k := range cands {
		got := make([]float32, probeRows)
		k.block(q, rows, got)
		for r := range got {
			if d := got[r] - want[r]; d > want[r]*1e-5 || d < -want[r]*1e-5 {
				t.Errorf("%s: probe row %d = %v, generic says %v", k.name, r, got[r], want[r])
			}
		}
	}
}

// BenchmarkChoose is the start-up cost of the measured choice, paid once per process at the
// first distance computed.
func BenchmarkChoose(b *testing.B) {
	defer Use(Name())
	for b.Loop() {
		choose()
	}
}
