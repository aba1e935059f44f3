package parallel

import (
	"sync/atomic"
	"testing"
)

func TestRangesCoverEachRowOnce(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 1}, {1, 3}, {10, 3}, {100, 7}, {5, 5}} {
		seen := make([]atomic.Int32, tc.n)
		var calls atomic.Int32
		Ranges(tc.n, tc.workers, func(w, lo, hi int) {
			calls.Add(1)
			for r := lo; r < hi; r++ {
				seen[r].Add(1)
			}
		})
		if int(calls.Load()) != tc.workers {
			t.Errorf("%+v: %d calls", tc, calls.Load())
		}
		for r := range seen {
			if seen[r].Load() != 1 {
				t.Errorf("%+v: row %d covered %d times", tc, r, seen[r].Load())
			}
		}
	}
}
