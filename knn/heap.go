package knn

// item is a candidate: a squared distance and its row.
type item struct {
	d   float32
	row int64
}

// worse orders candidates: farther first, and at equal distance the later row.
func (a item) worse(b item) bool { return a.d > b.d || (a.d == b.d && a.row > b.row) }

// heap is a bounded max-heap by worse: h[0] is the worst of the kept candidates.
type heap []item

// push adds x, keeping at most k items by evicting the worst.
func (h *heap) push(x item, k int) {
	s := *h
	if len(s) < k {
		s = append(s, x)
		for i := len(s) - 1; i > 0; {
			p := (i - 1) / 2
			if !s[i].worse(s[p]) {
				break
			}
			s[i], s[p] = s[p], s[i]
			i = p
		}
		*h = s
		return
	}
	if !s[0].worse(x) {
		return
	}
	s[0] = x
	for i := 0; ; {
		l, r, w := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].worse(s[w]) {
			w = l
		}
		if r < len(s) && s[r].worse(s[w]) {
			w = r
		}
		if w == i {
			break
		}
		s[i], s[w] = s[w], s[i]
		i = w
	}
}
