package serve

import (
	"context"
	"fmt"
	"slices"
	"time"

	"simsearch/prune"
	"simsearch/query"
)

// job is one query waiting for the batcher: an image's model input (or a vector, when input is
// nil) and where to send the answer.
type job struct {
	input  []float32 // prepared model input, or nil for a vector query
	vector []float32
	// k is the number of nearest asked for; 0, with maxDistance, asks for every row within it
	// (up to the server's largest k, beyond which the answer is cut and marked truncated).
	k      int
	ctx    context.Context // the request's
	queued time.Time
	reply  chan result

	// maxDistance, when set, drops the hits beyond it: the k nearest within it.
	maxDistance *float64
}

type result struct {
	hits []query.Hit
	// truncated says that a range query without k found more rows within its distance than
	// the server's largest k: hits holds that many, the nearest.
	truncated bool
	timings   map[string]float64
	err       error
}

// batcher owns the model and the scan. Requests decode their images in their own goroutines (on
// every core) and queue the results; the batcher takes everything queued at once, runs one
// batched inference for the images and searches the batch's top-k queries together and its
// range queries together: pruned queries run one per core, and those that need a full scan
// share a single pass over the index's memory.
type batcher struct {
	s        Searcher
	jobs     chan *job
	maxBatch int
	maxK     int // the most rows a range query without k is answered with
	batchCounts
	scan prune.Scan
}

func newBatcher(s Searcher, maxBatch, maxK int, scan prune.Scan) *batcher {
	return &batcher{s: s, jobs: make(chan *job, 4*maxBatch), maxBatch: maxBatch, maxK: maxK, scan: scan}
}

// submit queues j and waits for its answer or for ctx to end.
func (b *batcher) submit(ctx context.Context, j *job) result {
	j.ctx, j.queued = ctx, time.Now()
	j.reply = make(chan result, 1)
	select {
	case b.jobs <- j:
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
	select {
	case r := <-j.reply:
		return r
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
}

// run serves batches until ctx ends.
func (b *batcher) run(ctx context.Context) {
	for {
		var batch []*job
		select {
		case j := <-b.jobs:
			batch = append(batch, j)
		case <-ctx.Done():
			return
		}
	more:
		for len(batch) < b.maxBatch {
			select {
			case j := <-b.jobs:
				batch = append(batch, j)
			default:
				break more
			}
		}
		b.process(batch)
	}
}

// pending is a job of a batch with its query vector, ready to search, and its timings so far.
type pending struct {
	*job
	q       []float32
	timings map[string]float64
}

// process answers a batch. A job's failure is its own: an inference that fails fails the batch's
// images, and its vector queries are still searched; a job whose request ended while it waited
// is answered with that, and not searched.
func (b *batcher) process(batch []*job) {
	b.count(len(batch))
	start := time.Now()
	var live []*pending
	var inputs []float32
	images := 0
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.reply <- result{err: err}
			continue
		}
		live = append(live, &pending{job: j, q: j.vector, timings: map[string]float64{
			"queue": ms(start.Sub(j.queued)),
			"batch": float64(len(batch)),
		}})
		if j.input != nil {
			inputs = append(inputs, j.input...)
			images++
		}
	}
	if images > 0 {
		t := time.Now()
		vecs, err := b.s.Model().Run(inputs)
		inference := time.Since(t)
		dim := b.s.Dim()
		ready := live[:0]
		next := 0
		for _, p := range live {
			switch {
			case p.input == nil: // a vector query: it waited for the images' inference
				p.timings["inference_wait"] = ms(inference)
			case err != nil:
				p.reply <- result{err: fmt.Errorf("inference: %w", err)}
				continue
			default: // one inference ran the batch's images: no part of it is this one's
				p.q = vecs[next*dim : (next+1)*dim]
				next++
				p.timings["inference"] = ms(inference)
				p.timings["inference_images"] = float64(images)
			}
			ready = append(ready, p)
		}
		live = ready
	}
	// The top-k queries and the range queries are two searches: together, the top-k ones
	// would lose the range's pruning (a distance bounds what a query visits; NoLimit, which
	// they need, bounds nothing), and the range ones without k would be k-nearest searches.
	var top, ranges []*pending
	for _, p := range live {
		if p.maxDistance == nil {
			top = append(top, p)
		} else {
			ranges = append(ranges, p)
		}
	}
	var searched time.Duration // the searches before this one, which it waited for
	for _, g := range [][]*pending{top, ranges} {
		if len(g) == 0 {
			continue
		}
		t := time.Now()
		b.search(g, searched)
		searched += time.Since(t)
	}
}

// search answers a group of a batch's jobs, all top-k or all range queries, with one search,
// each with its own k, within the largest distance any of them asks for: the k nearest within
// that hold, as their prefix, the job's nearest within its own distance. waited is how long the
// group waited for the batch's other search (search_wait).
func (b *batcher) search(g []*pending, waited time.Duration) {
	queries := make([]float32, 0, len(g)*b.s.Dim())
	ks := make([]int, len(g))
	jobs := make([]*job, len(g))
	limit := prune.NoLimit
	if g[0].maxDistance != nil {
		limit = 0
	}
	for i, p := range g {
		queries = append(queries, p.q...)
		ks[i], jobs[i] = p.k, p.job
		if p.maxDistance != nil {
			limit = max(limit, *p.maxDistance)
		}
	}
	ctx, cancel := batchContext(jobs)
	defer cancel()
	// Each query with its own k: a pruned query asking for 1 neighbour visits the rows 1 needs,
	// not those the batch's largest k needs; a range query without k (0) takes every row within
	// the distance, and is cut at maxK after (a cluster then returns maxK+1 at most: Cap).
	hits, scanned, err := b.s.SearchContext(ctx, queries, query.Request{K: slices.Max(ks), KEach: ks, MaxDistance: limit, Scan: b.scan, Cap: b.maxK})
	for i, p := range g {
		if err != nil {
			p.reply <- result{err: err}
			continue
		}
		r := result{hits: hits[i], timings: p.timings}
		if p.maxDistance != nil {
			n := 0
			for n < len(r.hits) && r.hits[n].Distance <= *p.maxDistance {
				n++
			}
			r.hits = r.hits[:n]
		}
		switch {
		case p.k > 0:
			r.hits = r.hits[:min(p.k, len(r.hits))] // a Searcher may answer K for every query
		case len(r.hits) > b.maxK:
			r.hits, r.truncated = r.hits[:b.maxK], true
		}
		scanned[i].Record(r.timings)
		if waited > 0 {
			r.timings["search_wait"] = ms(waited)
		}
		p.reply <- r
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
