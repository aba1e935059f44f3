package serve

import (
	"context"
	"sync/atomic"
)

// batchContext is the context of one search for a batch of jobs: it ends once every job's
// request has ended (its client left or its time ran out), since until then someone waits for
// the answer. The returned function releases it.
func batchContext(batch []*job) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, 0, len(batch))
	for _, j := range batch {
		stops = append(stops, context.AfterFunc(j.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
