package serve

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"simsearch/prune"
	"simsearch/query"
)

// recorder is a Searcher that remembers the requests it was given.
type recorder struct {
	*query.Searcher
	mu   sync.Mutex
	reqs []query.Request
}

func (r *recorder) SearchContext(ctx context.Context, queries []float32, req query.Request) ([][]query.Hit, []query.Scanned, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return r.Searcher.SearchContext(ctx, queries, req)
}

// allK is a Searcher that answers every query of a batch with the batch's K, as one that does not
// read Request.KEach would.
type allK struct{ *query.Searcher }

func (a allK) SearchContext(ctx context.Context, queries []float32, req query.Request) ([][]query.Hit, []query.Scanned, error) {
	req.KEach = nil
	return a.Searcher.SearchContext(ctx, queries, req)
}

// TestBatchKEach puts vector queries asking for 1, 3 and 6 neighbours in one batch and checks
// that the search was asked for each one's own k (not the batch's largest for all), and that
// each answer is what the query alone gets.
func TestBatchKEach(t *testing.T) {
	ts := start(t, Options{})
	rec := &recorder{Searcher: ts.s}
	b := newBatcher(rec, 8, prune.Auto)
	ks := []int{1, 6, 3}
	var batch []*job
	for i, k := range ks {
		v, err := embedFile(ts.s.Model(), filepath.Join(images, []string{"rocket.jpg", "coffee.png", "storm.jpg"}[i]))
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &job{ctx: context.Background(), vector: v, k: k, queued: time.Now(), reply: make(chan result, 1)})
	}
	b.process(batch)
	if len(rec.reqs) != 1 || !slices.Equal(rec.reqs[0].KEach, ks) || rec.reqs[0].K != 6 {
		t.Fatalf("the batch's search requests: %+v; want one with KEach %v and K 6", rec.reqs, ks)
	}
	for i, j := range batch {
		r := <-j.reply
		if r.err != nil {
			t.Fatal(r.err)
		}
		alone, _, err := ts.s.Search(j.vector, query.Request{K: j.k, MaxDistance: prune.NoLimit})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.hits, alone[0]) || len(r.hits) != ks[i] {
			t.Errorf("query %d (k %d): %+v, alone %+v", i, j.k, r.hits, alone[0])
		}
	}
}

// TestBatchCutsToK checks that each job of a batch gets its own k nearest even from a Searcher
// that answers every query with the batch's largest k.
func TestBatchCutsToK(t *testing.T) {
	ts := start(t, Options{})
	b := newBatcher(allK{ts.s}, 8, prune.Auto)
	var batch []*job
	for i, k := range []int{1, 6, 3} {
		v, err := embedFile(ts.s.Model(), filepath.Join(images, []string{"rocket.jpg", "coffee.png", "storm.jpg"}[i]))
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &job{ctx: context.Background(), vector: v, k: k, queued: time.Now(), reply: make(chan result, 1)})
	}
	b.process(batch)
	for i, j := range batch {
		r := <-j.reply
		if r.err != nil {
			t.Fatal(r.err)
		}
		if len(r.hits) != j.k {
			t.Errorf("query %d (k %d): %d results", i, j.k, len(r.hits))
		}
	}
}
