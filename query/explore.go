package query

import (
	"fmt"
	"slices"
	"sync"

	"simsearch/collection"
	"simsearch/dupes"
)

// idTable maps the ids of one view of the collection to their vectors. It is built on first use,
// since only searches by id need it, and again when the collection has moved to a newer view.
// It holds a reference to its view, so that the vectors stay mapped.
type idTable struct {
	mu   sync.Mutex
	v    *collection.View
	vecs map[string][]float32
}

// release drops the table's view.
func (t *idTable) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.v != nil {
		t.v.Release()
		t.v, t.vecs = nil, nil
	}
}

// liveRows returns every live row of v, in id order: ids and vectors (valid while v is held).
func liveRows(v *collection.View) ([]string, [][]float32, error) {
	ids := make([]string, 0, v.Len())
	vecs := make([][]float32, 0, v.Len())
	err := v.Each(func(id string, _ collection.FileState, vec []float32) error {
		ids, vecs = append(ids, id), append(vecs, vec)
		return nil
	})
	return ids, vecs, err
}

// Vector returns a copy of the vector stored for id (a copy: the view it came from may be
// released once the collection moves on).
func (s *Searcher) Vector(id string) ([]float32, error) {
	cur := s.c.Acquire()
	t := &s.ids
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.v == cur {
		cur.Release() // the table holds a reference already
	} else {
		ids, vecs, err := liveRows(cur)
		if err != nil {
			cur.Release()
			return nil, err
		}
		m := make(map[string][]float32, len(ids))
		for i, id := range ids {
			if _, dup := m[id]; !dup { // an index that allows duplicate ids: the first wins
				m[id] = vecs[i]
			}
		}
		if t.v != nil {
			t.v.Release()
		}
		t.v, t.vecs = cur, m
	}
	vec, ok := t.vecs[id]
	if !ok {
		return nil, fmt.Errorf("%s holds no id %q", t.v.Path(), id)
	}
	return slices.Clone(vec), nil
}

// IDs answers queries by the stored vectors of the given ids: no model, no image. Each answer is
// exactly what a query by that row's vector returns (the row itself first, at distance 0).
func (s *Searcher) IDs(ids []string, k int) ([]Answer, error) {
	var queries []float32
	for _, id := range ids {
		v, err := s.Vector(id)
		if err != nil {
			return nil, err
		}
		queries = append(queries, v...)
	}
	hits, wait, scan, err := s.Search(queries, k)
	if err != nil {
		return nil, err
	}
	answers := make([]Answer, len(ids))
	for i, id := range ids {
		answers[i] = Answer{Query: id, Results: hits[i], Timings: map[string]float64{"index_wait": ms(wait), "scan": ms(scan)}}
	}
	return answers, nil
}

// Dupes finds the groups of near-duplicates among the collection's live rows (see package
// dupes), on the view current when it starts: a refresh meanwhile neither waits for it nor
// unmaps its rows.
func (s *Searcher) Dupes(opt dupes.Options) ([]dupes.NamedGroup, dupes.Stats, error) {
	v := s.c.Acquire()
	defer v.Release()
	ids, vecs, err := liveRows(v)
	if err != nil {
		return nil, dupes.Stats{}, err
	}
	groups, st, err := dupes.FindRows(len(ids), v.Dim(), func(i int) []float32 { return vecs[i] }, opt)
	if err != nil {
		return nil, st, fmt.Errorf("%s: %w", v.Path(), err)
	}
	named, err := dupes.Name(groups, func(r int) (string, error) { return ids[r], nil })
	return named, st, err
}

// Sample returns m live rows spread evenly through the collection in id order (all of them if
// it holds fewer): their ids, a copy of their vectors, and the collection's size.
func (s *Searcher) Sample(m int) ([]string, []float32, int, error) {
	v := s.c.Acquire()
	defer v.Release()
	ids, vecs, err := liveRows(v)
	if err != nil {
		return nil, nil, 0, err
	}
	n := len(ids)
	m = min(n, m)
	out := make([]string, m)
	data := make([]float32, 0, m*v.Dim())
	for i := range m {
		r := i * n / m // evenly: the same sample every time
		out[i] = ids[r]
		data = append(data, vecs[r]...)
	}
	return out, data, n, nil
}
