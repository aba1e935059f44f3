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
	k      int
	ctx    context.Context // the request's
	queued time.Time
	reply  chan result

	// maxDistance, when set, drops the hits beyond it: the k nearest within it.
	maxDistance *float64
}

type result struct {
	hits    []query.Hit
	timings map[string]float64
	err     error
}

// batcher owns the model and the scan. Requests decode their images in their own goroutines (on
// every core) and queue the results; the batcher takes everything queued at once, runs one
// batched inference for the images and one search for all queries: pruned queries run one per
// core, and those that need a full scan share a single pass over the index's memory.
type batcher struct {
	s        Searcher
	jobs     chan *job
	maxBatch int
	batchCounts
	scan prune.Scan
}

func newBatcher(s Searcher, maxBatch int, scan prune.Scan) *batcher {
	return &batcher{s: s, jobs: make(chan *job, 4*maxBatch), maxBatch: maxBatch, scan: scan}
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

func (b *batcher) process(batch []*job) {
	b.count(len(batch))
	start := time.Now()
	dim := b.s.Dim()
	queries := make([]float32, 0, len(batch)*dim)
	var inputs []float32
	var images []int // positions in batch of the image jobs
	for i, j := range batch {
		if j.input != nil {
			inputs = append(inputs, j.input...)
			images = append(images, i)
		}
	}
	var vecs []float32
	var inference time.Duration
	if len(images) > 0 {
		t := time.Now()
		var err error
		vecs, err = b.s.Model().Run(inputs)
		inference = time.Since(t)
		if err != nil {
			for _, j := range batch {
				j.reply <- result{err: fmt.Errorf("inference: %w", err)}
			}
			return
		}
	}
	ks := make([]int, len(batch))
	limit := 0.0 // the largest distance a job asks for: every distance once one sets none
	next := 0
	for i, j := range batch {
		if next < len(images) && images[next] == i {
			queries = append(queries, vecs[next*dim:(next+1)*dim]...)
			next++
		} else {
			queries = append(queries, j.vector...)
		}
		ks[i] = j.k
		if j.maxDistance == nil {
			limit = prune.NoLimit
		} else {
			limit = max(limit, *j.maxDistance)
		}
	}
	ctx, cancel := batchContext(batch)
	defer cancel()
	// Each query with its own k: a pruned query asking for 1 neighbour visits the rows 1 needs,
	// not those the batch's largest k needs. The k nearest within limit of each query hold, as
	// their prefix, the job's nearest within its own distance.
	hits, scanned, err := b.s.SearchContext(ctx, queries, query.Request{K: slices.Max(ks), KEach: ks, MaxDistance: limit, Scan: b.scan})
	for i, j := range batch {
		r := result{err: err}
		if err == nil {
			r.hits = hits[i][:min(j.k, len(hits[i]))] // a Searcher may answer K for every query
			if j.maxDistance != nil {
				n := 0
				for n < len(r.hits) && r.hits[n].Distance <= *j.maxDistance {
					n++
				}
				r.hits = r.hits[:n]
			}
			r.timings = map[string]float64{
				"queue": ms(start.Sub(j.queued)),
				"batch": float64(len(batch)),
			}
			scanned[i].Record(r.timings)
			if j.input != nil {
				r.timings["inference"] = ms(inference)
			}
		}
		j.reply <- r
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
