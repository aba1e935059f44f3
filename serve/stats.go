package serve

import "sync/atomic"

// Stats counts what the batcher has done since the server was made, so that an operator (and a
// test) can see how much concurrent requests were grouped.
type Stats struct {
	Batches int64 // batches run: inferences plus scans
	Queries int64 // queries those batches held
	Largest int64 // queries in the largest batch
}

// Stats returns the counts so far. It is safe to call while the server runs.
func (srv *Server) Stats() Stats {
	b := srv.b
	return Stats{Batches: b.batches.Load(), Queries: b.queries.Load(), Largest: b.largest.Load()}
}

// batchCounts are the batcher's counters behind Stats.
type batchCounts struct {
	batches, queries, largest atomic.Int64
}

// count records a batch of n queries.
func (c *batchCounts) count(n int) {
	c.batches.Add(1)
	c.queries.Add(int64(n))
	for {
		l := c.largest.Load()
		if int64(n) <= l || c.largest.CompareAndSwap(l, int64(n)) {
			return
		}
	}
}
