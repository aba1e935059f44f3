package query

import (
	"fmt"
	"slices"
	"sync"

	"simsearch/index"
)

// idTable maps the ids of one index to its rows. It is built on first use, since only searches
// by id need it, and again after a Reopen swapped the index.
type idTable struct {
	mu   sync.Mutex
	ix   *index.Index // the index rows describes
	rows map[string]int
}

// row returns the row of ix that holds id (the first one, in an index that allows duplicates).
func (t *idTable) row(ix *index.Index, id string) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ix != ix {
		n := ix.Len()
		rows := make(map[string]int, n)
		for r := n - 1; r >= 0; r-- { // backwards, so that the first of duplicates wins
			name, err := ix.ID(r)
			if err != nil {
				return 0, err
			}
			rows[name] = r
		}
		t.ix, t.rows = ix, rows
	}
	r, ok := t.rows[id]
	if !ok {
		return 0, fmt.Errorf("%s holds no id %q", ix.Path(), id)
	}
	return r, nil
}

// Vector returns a copy of the vector stored for id (a copy: a Reopen may unmap the index it
// came from).
func (s *Searcher) Vector(id string) ([]float32, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.ids.row(s.ix, id)
	if err != nil {
		return nil, err
	}
	return slices.Clone(s.ix.Row(r)), nil
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
