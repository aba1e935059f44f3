package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"simsearch/dupes"
)

var dupesRounds = flag.Int("dupes-rounds", 1, "rounds of the all-pairs duplicate search and its numpy baseline (0 skips them)")

// dupesRun is one whole-process all-pairs run.
type dupesRun struct {
	wall  time.Duration
	rssMB float64
	pairs int
}

// withDupes measures `simsearch dupes` on the benchmark's index beside a numpy blocked-matrix
// baseline on the same shards, taking turns, and appends a section to the report. Both must
// find the same number of pairs.
func withDupes(c config, idx, shards, python, report string, logf func(string, ...any)) (string, error) {
	if *dupesRounds <= 0 {
		return report, nil
	}
	d := fmt.Sprint(dupes.DefaultMaxDistance)
	var ours, theirs []dupesRun
	for r := 0; r < *dupesRounds; r++ {
		logf("duplicates: round %d/%d", r+1, *dupesRounds)
		for j := 0; j < 2; j++ {
			if (j+r)%2 == 0 {
				run, err := dupesProcess(exec.Command(c.bin, "dupes", "--index", idx, "--max-distance", d, "--json"), countJSONPairs)
				if err != nil {
					return report, err
				}
				ours = append(ours, run)
			} else if python != "" {
				run, err := dupesProcess(exec.Command(python, "bench/dupes_numpy.py", shards, d), firstField)
				if err != nil {
					return report, err
				}
				theirs = append(theirs, run)
			}
		}
	}
	for _, t := range theirs {
		if t.pairs != ours[0].pairs {
			return report, fmt.Errorf("duplicates: simsearch found %d pairs within %s, numpy %d", ours[0].pairs, d, t.pairs)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## All pairs within a distance (`simsearch dupes`)\n\n")
	fmt.Fprintf(&b, "%d × %d vectors, every pair within %s (the default), %d rounds taking turns; whole processes, peak RSS from getrusage. %d pairs found.\n\n",
		c.rows, c.dim, d, *dupesRounds, ours[0].pairs)
	fmt.Fprintf(&b, "| contender | median | peak RSS |\n|---|---:|---:|\n")
	row := func(name string, runs []dupesRun) {
		fmt.Fprintf(&b, "| %s | %.2f s | %.0f MB |\n", name, medianRun(runs, func(r dupesRun) float64 { return r.wall.Seconds() }), medianRun(runs, func(r dupesRun) float64 { return r.rssMB }))
	}
	row("`simsearch dupes` (blocked all-pairs on the SIMD kernels, norm and prefix bounds)", ours)
	if len(theirs) > 0 {
		row("numpy blocked matrix product (4096-row blocks, upper triangle)", theirs)
		var ratios []float64
		for i := range min(len(ours), len(theirs)) {
			ratios = append(ratios, theirs[i].wall.Seconds()/ours[i].wall.Seconds())
		}
		fmt.Fprintf(&b, "\nsimsearch is %.1f× faster than numpy (median of per-round ratios). Goal: ≤ 60 s and < 1 GB at 100k × 1280.\n", medianF(ratios))
	}
	return report + b.String(), nil
}

func medianRun(runs []dupesRun, f func(dupesRun) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// dupesProcess runs cmd, times it, reads its peak RSS and counts the pairs it printed.
func dupesProcess(cmd *exec.Cmd, count func([]byte) (int, error)) (dupesRun, error) {
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return dupesRun{}, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	run := dupesRun{wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		run.rssMB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	n, err := count(out.Bytes())
	if err != nil {
		return run, fmt.Errorf("%s printed %q: %w", cmd.Args[0], out.String(), err)
	}
	run.pairs = n
	return run, nil
}

func countJSONPairs(out []byte) (int, error) {
	n := 0
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var g dupes.NamedGroup
		if err := dec.Decode(&g); err != nil {
			return 0, err
		}
		n += len(g.Pairs)
	}
	return n, nil
}

func firstField(out []byte) (int, error) {
	var n int
	_, err := fmt.Sscan(string(out), &n)
	return n, err
}
