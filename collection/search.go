package collection

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"simsearch/kernel"
	"simsearch/knn"
	"simsearch/prune"
)

// Result is one neighbour.
type Result struct {
	ID       string
	Distance float32 // Euclidean
}

// Search returns, for each query (row-major, Dim floats each), its nearest live rows, nearest
// first: the req.K nearest (req.KEach[j] for query j when KEach is set), or with req.MaxDistance
// those within it (the k nearest of them when k is not 0). The base is searched with its PCA
// section when it has one (the pruned exact search; req.Scan chooses), and the rows added by the
// log beside it, with their signatures on the same basis. Once the log adds or deletes rows, rows
// at equal squared distance are ordered by id, so that an updated collection answers exactly as a
// fresh build whose rows are sorted by id. Without such a log the base's own order (by row)
// breaks ties, as a plain index search does. Each query's Stats add up its parts.
func (v *View) Search(queries []float32, req prune.Request) ([][]Result, []prune.Stats, error) {
	dim := v.Dim()
	if len(queries) == 0 || len(queries)%dim != 0 {
		return nil, nil, fmt.Errorf("query vectors have %d floats, not a multiple of the index's dim %d", len(queries), dim)
	}
	if v.pcaErr != nil && req.Scan != prune.Full {
		return nil, nil, fmt.Errorf("%w (simsearch verify checks the file; --scan full does not use the section)", v.pcaErr)
	}
	nq := len(queries) / dim
	if req.KEach != nil && len(req.KEach) != nq {
		return nil, nil, fmt.Errorf("%d numbers of neighbours for %d queries", len(req.KEach), nq)
	}
	kOf := func(j int) int {
		if req.KEach != nil {
			return req.KEach[j]
		}
		return req.K
	}
	merge := len(v.addIDs) > 0 || v.deleted > 0
	// A base not sorted by id breaks ties by row: a row of smaller id tied with its k-th could be
	// left out. Asked for one more, it shows whether the k-th place is tied (see baseTies).
	wider := merge && !v.meta.SortedIDs
	stats := make([]prune.Stats, nq)
	// The added block (small next to the base) is scanned by one goroutine while the base's
	// workers scan the base: one wait for both, not two in a row. It lives on the heap, not in
	// the mapping, so it needs no fault guard of its own.
	var base, added [][]knn.Neighbor
	var addStats []prune.Stats
	var err, addErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if len(v.addIDs) > 0 {
			r := req
			r.Exclude, r.Workers = nil, 1
			added, addStats, addErr = prune.SearchBatch(v.added, dim, v.addPCA, queries, r)
		}
	}()
	if v.base.Len() > v.deleted {
		r := req
		r.Exclude = v.del
		if wider {
			r.KEach = make([]int, nq)
			for j := range nq {
				r.KEach[j] = kOf(j)
				if r.KEach[j] > 0 { // 0 stays 0 (every row in range), and a negative k refused
					r.KEach[j]++
				}
			}
		}
		var st []prune.Stats
		if base, st, err = prune.SearchBatch(v.base.Vectors(), dim, v.pca, queries, r); err == nil {
			copy(stats, st)
		}
	}
	<-done
	if err = cmp.Or(err, addErr); err != nil {
		return nil, nil, err
	}
	for j, s := range addStats {
		stats[j].Time = max(stats[j].Time, s.Time) // the parts ran side by side
		stats[j].Visited += s.Visited
		if stats[j].Path == "" {
			stats[j].Path = s.Path
		}
	}
	out := make([][]Result, nq)
	if !merge {
		for j := range out {
			if base == nil {
				continue
			}
			out[j] = make([]Result, len(base[j]))
			for i, n := range base[j] {
				id, err := v.base.ID(n.Row)
				if err != nil {
					return nil, nil, err
				}
				out[j][i] = Result{ID: id, Distance: n.Distance}
			}
		}
		return out, stats, nil
	}
	type cand struct {
		id string
		d  float32 // squared
	}
	for j := range out {
		// The parts' answers carry rounded square roots; the squared distances, recomputed by the
		// same kernel for these few rows, order the merge exactly as one scan would.
		q := queries[j*dim : (j+1)*dim]
		k := kOf(j)
		var cs []cand
		if base != nil {
			rows := base[j]
			if wider && k > 0 {
				if rows, err = v.baseTies(q, rows, k, req, &stats[j]); err != nil {
					return nil, nil, err
				}
			}
			for _, n := range rows {
				id, err := v.base.ID(n.Row)
				if err != nil {
					return nil, nil, err
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
		if k > 0 {
			cs = cs[:min(k, len(cs))]
		}
		out[j] = make([]Result, len(cs))
		for i, c := range cs {
			out[j][i] = Result{ID: c.id, Distance: float32(math.Sqrt(float64(c.d)))}
		}
	}
	return out, stats, nil
}

// baseTies returns the base rows that the merge takes for query q, given rows: the base's k+1
// nearest live rows (or fewer), ties broken by row. They must include every row tied with the
// k-th, for the merge to order those by id. When the (k+1)-th is farther than the k-th, the first
// k are all it needs; when it is at the same squared distance, a range search out to the k-th's
// distance finds every row tied with it. That range is the k-th's reported distance exactly: a
// tied row has the same squared distance, hence the same rounded square root, and a range keeps
// every row whose reported distance is at most it (knn.Within). It may also return rows a little
// farther whose root rounds the same: the merge's cut at k drops them, the k nearer rows coming
// first. The range runs after the query's other parts, alone: its time, visits and page faults
// are added to st's.
func (v *View) baseTies(q []float32, rows []knn.Neighbor, k int, req prune.Request, st *prune.Stats) ([]knn.Neighbor, error) {
	if len(rows) <= k {
		return rows, nil
	}
	if kernel.L2Squared(q, v.base.Row(rows[k].Row)) != kernel.L2Squared(q, v.base.Row(rows[k-1].Row)) {
		return rows[:k], nil
	}
	r := prune.Request{MaxDistance: float64(rows[k-1].Distance), Exclude: v.del, Scan: req.Scan, Workers: req.Workers}
	res, rst, err := prune.Search(v.base.Vectors(), v.Dim(), v.pca, q, r)
	if err != nil {
		return nil, err
	}
	st.Time += rst.Time
	st.Visited += rst.Visited
	st.Faults = st.Faults.Add(rst.Faults)
	return res, nil
}
