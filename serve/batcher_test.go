package serve

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
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
	b := newBatcher(rec, 8, 1000, prune.Auto)
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
	b := newBatcher(allK{ts.s}, 8, 1000, prune.Auto)
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

// vectorJob is a queued job for the vector of the bundled photo name.
func vectorJob(t *testing.T, ts *server, name string, k int, d *float64) *job {
	t.Helper()
	v, err := ts.s.Vector(name)
	if err != nil {
		t.Fatal(err)
	}
	return &job{ctx: context.Background(), vector: v, k: k, maxDistance: d, queued: time.Now(), reply: make(chan result, 1)}
}

// imageJob is a queued job for the bundled image at path, prepared as a request's upload is.
func imageJob(t *testing.T, ts *server, path string, k int) *job {
	t.Helper()
	input := make([]float32, ts.s.Model().InputLen())
	if err := ts.s.Model().PrepareFile(path, input); err != nil {
		t.Fatal(err)
	}
	return &job{ctx: context.Background(), input: input, k: k, queued: time.Now(), reply: make(chan result, 1)}
}

// alone is what the searcher answers for v by itself.
func alone(t *testing.T, ts *server, v []float32, req query.Request) []query.Hit {
	t.Helper()
	hits, _, err := ts.s.Search(v, req)
	if err != nil {
		t.Fatal(err)
	}
	return hits[0]
}

// TestBatchRangeKeepsRadius batches a plain top-k query with range queries (one without k, one
// with k and a smaller radius) and checks that the range queries reach the search with a finite
// distance, the largest they ask for, and each its own k (0: every row in range), while the
// top-k query is searched without one; each answer equals the query's alone.
func TestBatchRangeKeepsRadius(t *testing.T) {
	ts := start(t, Options{})
	rec := &recorder{Searcher: ts.s}
	b := newBatcher(rec, 8, 1000, prune.Auto)
	v, err := ts.s.Vector("coffee.png")
	if err != nil {
		t.Fatal(err)
	}
	all := alone(t, ts, v, query.Request{K: 8, MaxDistance: prune.NoLimit})
	far, near := all[4].Distance, all[2].Distance
	batch := []*job{
		vectorJob(t, ts, "coffee.png", 3, nil),
		vectorJob(t, ts, "coffee.png", 0, &far),
		vectorJob(t, ts, "coffee.png", 1, &near),
	}
	b.process(batch)
	if len(rec.reqs) != 2 {
		t.Fatalf("the batch's search requests: %+v; want two, the top-k and the range queries apart", rec.reqs)
	}
	if r := rec.reqs[0]; !slices.Equal(r.KEach, []int{3}) || r.MaxDistance != prune.NoLimit {
		t.Errorf("the top-k search: %+v; want KEach [3] and no distance limit", r)
	}
	if r := rec.reqs[1]; !slices.Equal(r.KEach, []int{0, 1}) || r.MaxDistance != far || r.Cap != 1000 {
		t.Errorf("the range search: %+v; want KEach [0 1], the distance %v and the cap 1000", r, far)
	}
	want := [][]query.Hit{
		alone(t, ts, v, query.Request{K: 3, MaxDistance: prune.NoLimit}),
		alone(t, ts, v, query.Request{MaxDistance: far}),
		alone(t, ts, v, query.Request{K: 1, MaxDistance: near}),
	}
	for i, j := range batch {
		r := <-j.reply
		if r.err != nil || !slices.Equal(r.hits, want[i]) || r.truncated {
			t.Errorf("job %d: %+v (%v), alone %+v", i, r.hits, r.err, want[i])
		}
		if _, waited := r.timings["search_wait"]; waited != (j.maxDistance != nil) {
			t.Errorf("job %d: timings %v: search_wait only for the range queries, which wait for the top-k search", i, r.timings)
		}
	}
	if len(want[1]) != 5 || len(want[2]) != 1 {
		t.Fatalf("the test's distances do not cut where it expects: %v", all)
	}
}

// TestBatchRangeCap checks that a range query without k answers at most the server's largest k,
// the nearest, and says when it cut: exactly that many within the distance is not a cut.
func TestBatchRangeCap(t *testing.T) {
	ts := start(t, Options{})
	b := newBatcher(ts.s, 8, 3, prune.Auto)
	v, err := ts.s.Vector("coffee.png")
	if err != nil {
		t.Fatal(err)
	}
	all := alone(t, ts, v, query.Request{K: 8, MaxDistance: prune.NoLimit})
	for _, tc := range []struct {
		d         float64
		want      []query.Hit
		truncated bool
	}{
		{1e9, all[:3], true},
		{all[4].Distance, all[:3], true},
		{all[2].Distance, all[:3], false},
		{all[1].Distance, all[:2], false},
	} {
		j := vectorJob(t, ts, "coffee.png", 0, &tc.d)
		b.process([]*job{j})
		r := <-j.reply
		if r.err != nil || !slices.Equal(r.hits, tc.want) || r.truncated != tc.truncated {
			t.Errorf("within %v, at most 3: %+v truncated %v (%v); want %+v truncated %v", tc.d, r.hits, r.truncated, r.err, tc.want, tc.truncated)
		}
	}
}

// TestBatchFailuresStayTheirs checks that a batch's failures are only their jobs': an image whose
// inference fails fails alone (the vector queries beside it are answered, and say how long they
// waited for that inference), and a job whose request ended before the batch ran is answered
// with that and not searched.
func TestBatchFailuresStayTheirs(t *testing.T) {
	ts := start(t, Options{})
	rec := &recorder{Searcher: ts.s}
	b := newBatcher(rec, 8, 1000, prune.Auto)
	bad := imageJob(t, ts, filepath.Join(images, "rocket.jpg"), 3)
	bad.input = bad.input[:len(bad.input)-1] // not a whole image: the model refuses it
	gone, leave := context.WithCancel(context.Background())
	leave()
	left := vectorJob(t, ts, "storm.jpg", 3, nil)
	left.ctx = gone
	d := 1e9
	batch := []*job{bad, vectorJob(t, ts, "coffee.png", 2, nil), left, vectorJob(t, ts, "rocket.jpg", 0, &d)}
	b.process(batch)
	if r := <-bad.reply; r.err == nil || !strings.Contains(r.err.Error(), "inference") {
		t.Errorf("the image whose inference failed: %+v, want an inference error", r)
	}
	if r := <-left.reply; !errors.Is(r.err, context.Canceled) {
		t.Errorf("the job whose request ended: %+v, want context.Canceled", r)
	}
	searched := 0
	for _, r := range rec.reqs {
		searched += len(r.KEach)
	}
	if searched != 2 {
		t.Errorf("searched %d queries (%+v), want the 2 live vector queries", searched, rec.reqs)
	}
	for _, j := range []*job{batch[1], batch[3]} {
		r := <-j.reply
		req := query.Request{K: j.k, MaxDistance: prune.NoLimit}
		if j.maxDistance != nil {
			req.MaxDistance = *j.maxDistance
		}
		if want := alone(t, ts, j.vector, req); r.err != nil || !slices.Equal(r.hits, want) {
			t.Errorf("a vector query beside the failed image: %+v (%v), alone %+v", r.hits, r.err, want)
		}
		if _, ok := r.timings["inference_wait"]; !ok {
			t.Errorf("a vector query beside an image: timings %v, want inference_wait", r.timings)
		}
	}
}

// TestBatchInferenceTimings checks how a batch's one inference is reported: by each image as
// inference with the number of images it ran (inference_images), by each vector query beside
// them as the time it waited for it (inference_wait); a batch of vectors alone has neither.
func TestBatchInferenceTimings(t *testing.T) {
	ts := start(t, Options{})
	b := newBatcher(ts.s, 8, 1000, prune.Auto)
	batch := []*job{
		imageJob(t, ts, filepath.Join(images, "rocket.jpg"), 1),
		vectorJob(t, ts, "coffee.png", 1, nil),
		imageJob(t, ts, filepath.Join(images, "storm.jpg"), 1),
	}
	b.process(batch)
	var rs []result
	for _, j := range batch {
		r := <-j.reply
		if r.err != nil {
			t.Fatal(r.err)
		}
		rs = append(rs, r)
	}
	for _, i := range []int{0, 2} {
		if tm := rs[i].timings; tm["inference_images"] != 2 || tm["inference"] <= 0 || tm["inference"] != rs[1].timings["inference_wait"] {
			t.Errorf("image %d: timings %v; want the batch's inference (which the vector query waited: %v) over inference_images 2", i, tm, rs[1].timings)
		}
	}
	if _, ok := rs[1].timings["inference"]; ok {
		t.Errorf("the vector query: timings %v, with an inference of its own", rs[1].timings)
	}
	j := vectorJob(t, ts, "coffee.png", 1, nil)
	b.process([]*job{j})
	r := <-j.reply
	_, wait := r.timings["inference_wait"]
	_, images := r.timings["inference_images"]
	if r.err != nil || wait || images {
		t.Errorf("a vector query alone: %+v, want no inference figures", r)
	}
}
