package collection

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"simsearch/kernel"
	"simsearch/knn"
)

// Result is one neighbour.
type Result struct {
	ID       string
	Distance float32 // Euclidean
}

// scanPart finds the k nearest rows of one part of a view (the base, or the added block) to each
// query, leaving out the rows set in exclude. Every scan goes through here, so a faster exact
// search (the pruned one) plugs in at this one place.
func scanPart(vectors []float32, dim int, queries []float32, k int, exclude []uint64) ([][]knn.Neighbor, error) {
	return knn.SearchBatch(vectors, dim, queries, k, knn.Options{Exclude: exclude})
}

// Search returns, for each query (row-major, Dim floats each), its k nearest live rows, nearest
// first. Rows at equal squared distance are ordered by id, so that an updated collection answers
// exactly as a fresh build whose rows are sorted by id. Without a log the base's own order (by
// row) breaks ties, as a plain index search does.
func (v *View) Search(queries []float32, k int) ([][]Result, error) {
	dim := v.Dim()
	if len(queries) == 0 || len(queries)%dim != 0 {
		return nil, fmt.Errorf("query vectors have %d floats, not a multiple of the index's dim %d", len(queries), dim)
	}
	nq := len(queries) / dim
	var base, added [][]knn.Neighbor
	var err error
	if v.base.Len() > v.deleted {
		if base, err = scanPart(v.base.Vectors(), dim, queries, k, v.del); err != nil {
			return nil, err
		}
	}
	if len(v.addIDs) > 0 {
		if added, err = scanPart(v.added, dim, queries, k, nil); err != nil {
			return nil, err
		}
	}
	out := make([][]Result, nq)
	type cand struct {
		id string
		d  float32 // squared
	}
	for j := range out {
		if added == nil && v.deleted == 0 {
			if base == nil {
				continue
			}
			out[j] = make([]Result, len(base[j]))
			for i, n := range base[j] {
				id, err := v.base.ID(n.Row)
				if err != nil {
					return nil, err
				}
				out[j][i] = Result{ID: id, Distance: n.Distance}
			}
			continue
		}
		// The parts' answers carry rounded square roots; the squared distances, recomputed by the
		// same kernel for these few rows, order the merge exactly as one scan would.
		q := queries[j*dim : (j+1)*dim]
		var cs []cand
		if base != nil {
			for _, n := range base[j] {
				id, err := v.base.ID(n.Row)
				if err != nil {
					return nil, err
				}
				cs = append(cs, cand{id, kernel.L2Squared(q, v.base.Row(n.Row))})
			}
		}
		if added != nil {
			for _, n := range added[j] {
				cs = append(cs, cand{v.addIDs[n.Row], kernel.L2Squared(q, v.added[n.Row*dim:(n.Row+1)*dim])})
			}
		}
		slices.SortFunc(cs, func(a, b cand) int {
			return cmp.Or(cmp.Compare(a.d, b.d), strings.Compare(a.id, b.id))
		})
		cs = cs[:min(k, len(cs))]
		out[j] = make([]Result, len(cs))
		for i, c := range cs {
			out[j][i] = Result{ID: c.id, Distance: float32(math.Sqrt(float64(c.d)))}
		}
	}
	return out, nil
}
