package knn

import (
	"math"
	"slices"
)

// Top keeps the k best rows offered to it by (squared distance, row), for searches that compute
// distances in their own order (the pruned search visits rows by a lower bound, not by row).
type Top struct {
	h heap
	k int
}

// NewTop returns an empty Top keeping at most k rows; k <= 0 keeps every row offered.
func NewTop(k int) *Top {
	if k <= 0 {
		return &Top{k: math.MaxInt}
	}
	return &Top{h: make(heap, 0, k), k: k}
}

// Push offers row at squared distance d. Rows may arrive in any order: ties are broken by row.
func (t *Top) Push(d float32, row int) { t.h.push(item{d: d, row: int64(row)}, t.k) }

// Full reports whether Top holds k rows (never, when it keeps every row).
func (t *Top) Full() bool { return len(t.h) == t.k }

// Worst returns the largest squared distance kept; meaningful only when Full.
func (t *Top) Worst() float32 { return t.h[0].d }

// Sorted returns the kept rows nearest first, with Euclidean distances.
func (t *Top) Sorted() []Neighbor {
	all := slices.Clone(t.h)
	sortItems(all)
	out := make([]Neighbor, len(all))
	for i, it := range all {
		out[i] = Neighbor{Row: int(it.row), Distance: float32(math.Sqrt(float64(it.d)))}
	}
	return out
}

// sortItems orders candidates nearest first, ties by row.
func sortItems(s []item) {
	slices.SortFunc(s, func(a, b item) int {
		if a.worse(b) {
			return 1
		}
		if b.worse(a) {
			return -1
		}
		return 0
	})
}
