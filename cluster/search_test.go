package cluster

import (
	"context"
	"math"
	"strings"
	"testing"

	"simsearch/prune"
	"simsearch/query"
)

// TestSearchRefusesNoBound checks that a query asking for neither a number of neighbours nor a
// distance is refused, as the local search refuses it, before anything is sent to the cluster.
func TestSearchRefusesNoBound(t *testing.T) {
	s := &Searcher{info: Info{Dim: 2}}
	for _, req := range []query.Request{
		{K: 0, MaxDistance: prune.NoLimit},
		{K: -1, MaxDistance: prune.NoLimit},
		{K: 3, KEach: []int{2, 0}, MaxDistance: prune.NoLimit},
		{K: -1, MaxDistance: 2},
		{K: 0, MaxDistance: math.NaN()},
		{K: 3, MaxDistance: -1},
	} {
		_, _, err := s.SearchContext(context.Background(), []float32{1, 2, 3, 4}, req)
		if err == nil || !strings.Contains(err.Error(), "k must be at least 1") && !strings.Contains(err.Error(), "maximum distance") {
			t.Errorf("%+v: %v, want a refusal of the k or the distance", req, err)
		}
	}
}
