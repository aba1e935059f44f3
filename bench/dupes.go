package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"simsearch/dupes"
	"simsearch/shard"
)

var dupesRounds = flag.Int("dupes-rounds", 1, "rounds of the all-pairs duplicate search and its numpy baseline (0 skips them)")

// dupesRun is one whole-process all-pairs run.
type dupesRun struct {
	wall  time.Duration
	cpu   time.Duration // user + system
	rssMB float64
	pairs int
}

// numpyRows bounds the rows the numpy baseline compares: its matrix products run at a few
// GFLOP/s with this machine's BLAS (measured: 9 CPU-seconds per pair of 4096-row blocks), so
// all 100,000 rows would take it about 50 CPU-minutes. Both contenders are measured on the first
// shard for the same-run ratio, and simsearch on the whole collection too.
const numpyRows = 10_000

// withDupes measures `simsearch dupes` on the benchmark's index beside a numpy blocked-matrix
// baseline on the same shards, taking turns, and appends a section to the report. Both must
// find the same number of pairs.
func withDupes(c config, idx, shards, python, report string, logf func(string, ...any)) (string, error) {
	if *dupesRounds <= 0 {
		return report, nil
	}
	d := fmt.Sprint(dupes.DefaultMaxDistance)
	// The first shard alone, as shards and as an index, for the side-by-side runs.
	sub := filepath.Join(filepath.Dir(idx), "dupes-subset")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return report, err
	}
	for _, f := range []string{"0000" + shard.IDsSuffix, "0000" + shard.FeaturesSuffix} {
		abs, err := filepath.Abs(filepath.Join(shards, f))
		if err != nil {
			return report, err
		}
		if err := os.Symlink(abs, filepath.Join(sub, f)); err != nil && !os.IsExist(err) {
			return report, err
		}
	}
	subIdx := filepath.Join(filepath.Dir(idx), "dupes-subset.simidx")
	if out, err := exec.Command(c.bin, "convert", "--force", sub, "-o", subIdx).CombinedOutput(); err != nil {
		return report, fmt.Errorf("convert the first shard: %v: %s", err, out)
	}
	subRows := min(c.rows, c.shardRows, numpyRows)
	ours := func(index string) (dupesRun, error) {
		return dupesProcess(exec.Command(c.bin, "dupes", "--index", index, "--max-distance", d, "--json"), countJSONPairs)
	}
	var whole, oursSub, theirs []dupesRun
	for r := 0; r < *dupesRounds; r++ {
		logf("duplicates: round %d/%d", r+1, *dupesRounds)
		for j := 0; j < 3; j++ {
			var run dupesRun
			var err error
			switch (j + r) % 3 {
			case 0:
				run, err = ours(idx)
				whole = append(whole, run)
			case 1:
				run, err = ours(subIdx)
				oursSub = append(oursSub, run)
			case 2:
				if python == "" {
					continue
				}
				run, err = dupesProcess(exec.Command(python, "bench/dupes_numpy.py", sub, d), firstField)
				theirs = append(theirs, run)
			}
			if err != nil {
				return report, err
			}
		}
	}
	for _, t := range theirs {
		if t.pairs != oursSub[0].pairs {
			return report, fmt.Errorf("duplicates: on %d rows simsearch found %d pairs within %s, numpy %d", subRows, oursSub[0].pairs, d, t.pairs)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## All pairs within a distance (`simsearch dupes`)\n\n")
	fmt.Fprintf(&b, "Every pair within %s (the default), %d rounds taking turns; whole processes: wall time and CPU time (user + system; on this shared machine CPU time is the steadier figure), peak RSS from GNU time (`/usr/bin/time -f %%M`). The numpy baseline runs on the first %d rows only (see numpyRows in bench/dupes.go), beside simsearch on the same rows.\n\n",
		d, *dupesRounds, subRows)
	fmt.Fprintf(&b, "| contender | rows | pairs found | wall (median) | CPU (median) | peak RSS |\n|---|---:|---:|---:|---:|---:|\n")
	row := func(name string, rows int, runs []dupesRun) {
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f s | %.2f s | %.0f MB |\n", name, rows, runs[0].pairs,
			medianRun(runs, func(r dupesRun) float64 { return r.wall.Seconds() }),
			medianRun(runs, func(r dupesRun) float64 { return r.cpu.Seconds() }),
			medianRun(runs, func(r dupesRun) float64 { return r.rssMB }))
	}
	row("`simsearch dupes` (blocked all-pairs on the SIMD kernels, norm and prefix bounds)", c.rows, whole)
	row("`simsearch dupes`, first shard", subRows, oursSub)
	if len(theirs) > 0 {
		row("numpy blocked matrix product (4096-row blocks, upper triangle), first shard", subRows, theirs)
		var ratios []float64
		for i := range min(len(oursSub), len(theirs)) {
			ratios = append(ratios, theirs[i].cpu.Seconds()/oursSub[i].cpu.Seconds())
		}
		fmt.Fprintf(&b, "\nOn the same %d rows simsearch uses %.1f× less CPU time than numpy (median of per-round ratios).", subRows, medianF(ratios))
	}
	fmt.Fprintf(&b, " Goal: ≤ 60 s on 2 cores and < 1 GB at 100k × 1280.\n")
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

// gnuTime runs a command and reports its peak RSS. The rusage this process gets for its own
// children would not do: a child started from this (large) process inherits its peak RSS at exec
// (Linux keeps the high-water mark of the image exec replaces), so every child would seem to use
// at least what the bench holds. GNU time's child is forked from time itself, which is small.
const gnuTime = "/usr/bin/time"

// dupesProcess runs cmd (under GNU time, for its peak RSS), times it and counts the pairs it
// printed.
func dupesProcess(cmd *exec.Cmd, count func([]byte) (int, error)) (dupesRun, error) {
	rss, err := os.CreateTemp("", "simsearch-bench-rss-*")
	if err != nil {
		return dupesRun{}, err
	}
	rss.Close()
	defer os.Remove(rss.Name())
	cmd = exec.Command(gnuTime, append([]string{"-f", "%M", "-o", rss.Name(), "--"}, cmd.Args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return dupesRun{}, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	run := dupesRun{wall: time.Since(start), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	b, err := os.ReadFile(rss.Name())
	if err != nil {
		return run, err
	}
	kb, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return run, fmt.Errorf("%s -f %%M wrote %q: %w", gnuTime, b, err)
	}
	run.rssMB = kb / 1024
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
