// Package parallel splits a range of rows across goroutines.
package parallel

import "sync"

// Ranges calls f(w, lo, hi) for w in [0, workers) on goroutines of their own, with [lo, hi) the
// w-th of workers nearly equal parts of [0, n), and returns when all have returned.
func Ranges(n, workers int, f func(w, lo, hi int)) {
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w, lo, hi)
		}()
	}
	wg.Wait()
}
