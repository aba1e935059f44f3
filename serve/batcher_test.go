package serve

import (
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

func (r *recorder) Search(queries []float32, req query.Request) ([][]query.Hit, []query.Scanned, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return r.Searcher.Search(queries, req)
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
		batch = append(batch, &job{vector: v, k: k, queued: time.Now(), reply: make(chan result, 1)})
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
