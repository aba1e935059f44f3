package kernel

import (
	"fmt"
	"strings"
	"time"
)

// The default kernel is chosen by measurement because what a CPU advertises does not say what it
// runs fastest: a Zen 4 core executes AVX-512 as two 256-bit halves, no faster than AVX2, and
// some Intel cores lower their clock for 512-bit work. The measurement times each assembly kernel
// on a small block that stays in L1, so that it compares the instructions, not the memory, and
// keeps the cost to tens of microseconds, once per process (BenchmarkChoose reports it).
const (
	probeDim    = 1024 // floats per row: 4 KB
	probeRows   = 4    // rows per block: 16 KB, plus the query, fits any L1 data cache
	probeCalls  = 8    // kernel calls per timed trial: long enough for the clock's resolution
	probeTrials = 5    // trials per kernel, interleaved; the fastest counts
	// A wider kernel must beat the narrower one by this fraction to be preferred: within the
	// noise of a measurement this short they are equal, and full scans are bound by memory
	// anyway, where the narrower one costs no clock throttling.
	widerMargin = 0.05
)

// choose selects the default kernel: the only assembly kernel the CPU supports, or the fastest of
// several by measure and pick; the generic one when there is none.
func choose() {
	var cands []impl
	for _, k := range impls {
		if k.name != "generic" {
			cands = append(cands, k)
		}
	}
	switch len(cands) {
	case 0:
		current, reason = impls[0], "no assembly kernel for this CPU or build"
		return
	case 1:
		current, reason = cands[0], "the only assembly kernel this CPU supports"
		return
	}
	start := time.Now()
	times := measure(cands)
	spent := time.Since(start)
	best := pick(times)
	current = cands[best]
	var figs []string
	for i, k := range cands {
		figs = append(figs, fmt.Sprintf("%s %v", k.name, times[i]))
	}
	reason = fmt.Sprintf("measured at first use (%d×%d floats, %d calls: %s; took %v)",
		probeRows, probeDim, probeCalls, strings.Join(figs, ", "), spent.Round(time.Microsecond))
}

// measure returns, for each kernel, the fastest of probeTrials timings of probeCalls calls on the
// same in-cache block. Trials alternate between kernels so that a slow spell of a shared machine
// hits them alike.
func measure(cands []impl) []time.Duration {
	q := make([]float32, probeDim)
	rows := make([]float32, probeRows*probeDim)
	for i := range rows {
		rows[i] = float32(i%7) * 0.25
	}
	out := make([]float32, probeRows)
	for _, k := range cands {
		k.block(q, rows, out) // warm-up: caches, and the wider registers' power-up
	}
	times := make([]time.Duration, len(cands))
	for t := range probeTrials {
		for i, k := range cands {
			start := time.Now()
			for range probeCalls {
				k.block(q, rows, out)
			}
			if d := time.Since(start); t == 0 || d < times[i] {
				times[i] = d
			}
		}
	}
	return times
}

// pick returns the index of the kernel to use given their times, narrowest kernel first: the
// fastest, except that a wider kernel must be faster than the best narrower one by widerMargin.
func pick(times []time.Duration) int {
	best := 0
	for i, t := range times[1:] {
		if float64(t) < float64(times[best])*(1-widerMargin) {
			best = i + 1
		}
	}
	return best
}
