package query

import (
	"fmt"
	"sync"
)

// idTable maps ids to rows; it is built on first use, since only searches by id need it.
type idTable struct {
	once sync.Once
	rows map[string]int
	err  error
}

// Row returns the row that holds id (the first one, in an index that allows duplicate ids).
func (s *Searcher) Row(id string) (int, error) {
	t := &s.ids
	t.once.Do(func() {
		n := s.ix.Len()
		t.rows = make(map[string]int, n)
		for r := n - 1; r >= 0; r-- { // backwards, so that the first of duplicates wins
			name, err := s.ix.ID(r)
			if err != nil {
				t.err = err
				return
			}
			t.rows[name] = r
		}
	})
	if t.err != nil {
		return 0, t.err
	}
	r, ok := t.rows[id]
	if !ok {
		return 0, fmt.Errorf("%s holds no id %q", s.ix.Path(), id)
	}
	return r, nil
}

// IDs answers queries by the stored vectors of the given ids: no model, no image. Each answer is
// exactly what a query by that row's vector returns (the row itself first, at distance 0).
func (s *Searcher) IDs(ids []string, k int) ([]Answer, error) {
	dim := s.ix.Dim()
	queries := make([]float32, 0, len(ids)*dim)
	for _, id := range ids {
		r, err := s.Row(id)
		if err != nil {
			return nil, err
		}
		queries = append(queries, s.ix.Row(r)...)
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
