package query

import (
	"errors"
	"fmt"

	"simsearch/internal/fault"
)

// ErrNoID is returned (wrapped) by a Vector for an id the collection does not hold, by this
// package's Searcher and by a cluster's alike.
var ErrNoID = errors.New("no such id")

// noIDError names the collection and the id; it is ErrNoID to errors.Is.
type noIDError struct{ where, id string }

func (e noIDError) Error() string      { return fmt.Sprintf("%s holds no id %q", e.where, e.id) }
func (noIDError) Is(target error) bool { return target == ErrNoID }

// Vector returns a copy of the vector stored for id in the collection's current view (a copy: a
// Reopen may unmap the index it came from). As Search does, it refuses an index file modified in
// place, and a truncation racing with the read is an error (fault.ErrFault), not SIGBUS.
func (s *Searcher) Vector(id string) ([]float32, error) {
	v := s.c.Acquire()
	defer v.Release()
	if err := v.Changed(); err != nil {
		return nil, err
	}
	var (
		vec []float32
		ok  bool
		err error
	)
	if ferr := fault.Guard(func() { vec, ok, err = v.Vector(id) }); ferr != nil {
		return nil, fmt.Errorf("%s: %w", v.Path(), ferr)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, noIDError{v.Path(), id}
	}
	return vec, nil
}

// IDs answers queries by the stored vectors of the given ids: no model, no image. Each answer is
// exactly what a query by that row's vector returns (the row itself first, at distance 0).
func (s *Searcher) IDs(ids []string, find Request) ([]Answer, error) {
	var queries []float32
	for _, id := range ids {
		v, err := s.Vector(id)
		if err != nil {
			return nil, err
		}
		queries = append(queries, v...)
	}
	hits, scanned, err := s.Search(queries, find)
	if err != nil {
		return nil, err
	}
	answers := make([]Answer, len(ids))
	for i, id := range ids {
		answers[i] = Answer{Query: id, Results: hits[i], Timings: map[string]float64{}}
		scanned[i].Record(answers[i].Timings)
	}
	return answers, nil
}
