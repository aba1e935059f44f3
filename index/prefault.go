package index

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"simsearch/internal/fault"
)

// Prefault maps every page of the vectors section into the process ahead of a scan, split across
// workers goroutines, so that a scan does not pay a page fault per 64 KiB of first touch. It asks
// the kernel to populate the page tables (MADV_POPULATE_READ, Linux 5.14+) and falls back to
// touching one byte per page. It reads from the page cache (or disk), so run it concurrently with
// other start-up work; it is safe to call concurrently with scans.
func (ix *Index) Prefault(workers int) {
	if len(ix.vectors) == 0 {
		return
	}
	b := ix.m[ix.h.vecOff : ix.h.vecOff+ix.h.vecLen]
	workers = max(1, workers)
	page := unix.Getpagesize()
	var wg sync.WaitGroup
	for w := range workers {
		// Part boundaries on page boundaries: the section starts page-aligned.
		lo := len(b) * w / workers / page * page
		hi := len(b) * (w + 1) / workers / page * page
		if w == workers-1 {
			hi = len(b)
		}
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func(part []byte) {
			defer wg.Done()
			if unix.Madvise(part, unix.MADV_POPULATE_READ) == nil {
				return
			}
			// A file truncated under the mapping makes these reads fault: the prefault then
			// stops early, and the next search reports the change (Changed).
			fault.Guard(func() {
				var sum uint32
				for i := 0; i < len(part); i += page {
					sum += uint32(part[i])
				}
				prefaultSink.Add(sum) // keeps the reads from being optimised away
			})
		}(b[lo:hi])
	}
	wg.Wait()
}

var prefaultSink atomic.Uint32
