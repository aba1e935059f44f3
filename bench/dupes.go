package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"simsearch/dupes"
	"simsearch/shard"
)

var dupesRounds = flag.Int("dupes-rounds", 3, "rounds of the all-pairs duplicate search and its numpy baseline (0 skips them)")

// dupesRun is one whole-process all-pairs run.
type dupesRun struct {
	wall   time.Duration
	cpu    time.Duration // user + system
	rssMB  float64
	pairs  map[[2]string]bool // each pair of ids once, in sorted order
	groups int                // the groups it printed (simsearch only)
}

// numpyRows bounds the rows the numpy baseline compares: its matrix products run at a few
// GFLOP/s with this machine's BLAS (measured: 9 CPU-seconds per pair of 4096-row blocks), so
// all 100,000 rows would take it about 50 CPU-minutes. Both contenders are measured on the first
// shard (and the copies planted of its rows) for the same-run ratio, and simsearch on the whole
// collection too.
const numpyRows = 10_000

const (
	// plantPerShard rows of each shard get a near-duplicate (every third a second one): the
	// bench's synthetic rows are far apart (no pair within D), so without them neither the
	// pairs nor their grouping would be measured or checked.
	plantPerShard = 40
	plantMin      = 0.3 // distance of a planted copy from its row: uniform in [plantMin, plantMax],
	plantMax      = 3.5 // within the default D = 4, away from it
	// Two copies of one row are at most plantTwoMax from it, so about √2 × plantTwoMax apart
	// (their noises are nearly orthogonal): within D too, away from it, and the three rows are
	// one group of three pairs.
	plantTwoMax = 2.5
)

// planted is a collection with near-duplicates planted: the bench's shards and one more shard of
// perturbed copies, as shards and as an index.
type planted struct {
	shards, index string
	rows          int
	pairs         [][2]string // (row, copy) as planted
}

// plantDupes writes, under dir, the bench's shards with a shard of near-duplicate copies of some
// of their rows after them (all), and the first shard with the copies of its own rows (first),
// and converts both.
func plantDupes(c config, dir, shards string) (all, first *planted, err error) {
	pairs, err := shard.List(shards)
	if err != nil {
		return nil, nil, err
	}
	all = &planted{shards: filepath.Join(dir, "planted-all"), index: filepath.Join(dir, "planted-all.simidx")}
	first = &planted{shards: filepath.Join(dir, "planted-first"), index: filepath.Join(dir, "planted-first.simidx")}
	for _, p := range []*planted{all, first} {
		if err := os.RemoveAll(p.shards); err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(p.shards, 0o755); err != nil {
			return nil, nil, err
		}
	}
	link := func(p *planted, src shard.Pair, num int) error {
		for _, f := range [][2]string{{src.IDs, shard.IDsSuffix}, {src.Features, shard.FeaturesSuffix}} {
			abs, err := filepath.Abs(f[0])
			if err != nil {
				return err
			}
			if err := os.Symlink(abs, filepath.Join(p.shards, fmt.Sprintf("%04d%s", num, f[1]))); err != nil {
				return err
			}
		}
		return nil
	}
	rng := rand.New(rand.NewPCG(2026, 12))
	var allIDs, firstIDs []string
	var allRows, firstRows []float32
	dim := 0
	for s, p := range pairs {
		ids, _, err := shard.ReadIDs(p.IDs)
		if err != nil {
			return nil, nil, err
		}
		rows, d, err := shard.ReadVectors(p.Features)
		if err != nil {
			return nil, nil, err
		}
		dim = d
		all.rows += len(ids)
		if err := link(all, p, s); err != nil {
			return nil, nil, err
		}
		if s == 0 {
			first.rows += len(ids)
			if err := link(first, p, 0); err != nil {
				return nil, nil, err
			}
		}
		for i, r := range rng.Perm(len(ids))[:min(plantPerShard, len(ids))] {
			copies, tmax := 1, plantMax
			if i%3 == 0 {
				copies, tmax = 2, plantTwoMax
			}
			for copyNum := range copies {
				id := fmt.Sprintf("planted-%d-%d-%s", copyNum, s, ids[r])
				// A perturbation of norm t: Gaussian noise scaled to it exactly.
				noise := make([]float64, dim)
				var norm float64
				for j := range noise {
					noise[j] = rng.NormFloat64()
					norm += noise[j] * noise[j]
				}
				t := plantMin + (tmax-plantMin)*rng.Float64()
				row := make([]float32, dim)
				for j := range row {
					row[j] = rows[r*dim+j] + float32(noise[j]*t/math.Sqrt(norm))
				}
				allIDs, allRows = append(allIDs, id), append(allRows, row...)
				all.pairs = append(all.pairs, [2]string{ids[r], id})
				if s == 0 {
					firstIDs, firstRows = append(firstIDs, id), append(firstRows, row...)
					first.pairs = append(first.pairs, [2]string{ids[r], id})
				}
			}
		}
	}
	if err := shard.Write(all.shards, len(pairs), allIDs, allRows, dim); err != nil {
		return nil, nil, err
	}
	if err := shard.Write(first.shards, 1, firstIDs, firstRows, dim); err != nil {
		return nil, nil, err
	}
	all.rows, first.rows = all.rows+len(allIDs), first.rows+len(firstIDs)
	for _, p := range []*planted{all, first} {
		if out, err := exec.Command(c.bin, "convert", "--force", p.shards, "-o", p.index).CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("convert %s: %v: %s", p.shards, err, out)
		}
	}
	return all, first, nil
}

// withDupes measures `simsearch dupes` on the benchmark's collection with near-duplicates
// planted, beside a numpy blocked-matrix baseline on its first shard (and the copies of its
// rows), taking turns, and appends a section to the report. On the rows numpy compares, both
// must find the same pairs; on the whole collection simsearch must find every planted pair.
func withDupes(c config, idx, shards, python, report string, logf func(string, ...any)) (string, error) {
	if *dupesRounds <= 0 {
		return report, nil
	}
	if c.shardRows > numpyRows {
		return report, fmt.Errorf("shards of %d rows: the numpy baseline compares at most %d (numpyRows)", c.shardRows, numpyRows)
	}
	d := fmt.Sprint(dupes.DefaultMaxDistance)
	all, first, err := plantDupes(c, filepath.Dir(idx), shards)
	if err != nil {
		return report, err
	}
	ours := func(index string) (dupesRun, error) {
		return dupesProcess(exec.Command(c.bin, "dupes", "--index", index, "--max-distance", d, "--json"), jsonPairs)
	}
	var whole, oursSub, theirs []dupesRun
	for r := 0; r < *dupesRounds; r++ {
		logf("duplicates: round %d/%d", r+1, *dupesRounds)
		for j := 0; j < 3; j++ {
			var run dupesRun
			var err error
			switch (j + r) % 3 {
			case 0:
				run, err = ours(all.index)
				whole = append(whole, run)
			case 1:
				run, err = ours(first.index)
				oursSub = append(oursSub, run)
			case 2:
				if python == "" {
					continue
				}
				run, err = dupesProcess(exec.Command(python, "bench/dupes_numpy.py", first.shards, d), numpyPairs)
				theirs = append(theirs, run)
			}
			if err != nil {
				return report, err
			}
		}
	}
	// Every run of a contender finds the same pairs; simsearch finds every planted pair, and on
	// the rows numpy compares the same pairs as numpy.
	for _, runs := range [][]dupesRun{whole, oursSub, theirs} {
		for _, run := range runs[min(1, len(runs)):] {
			if !maps.Equal(run.pairs, runs[0].pairs) {
				return report, fmt.Errorf("duplicates: two runs found %d and %d pairs", len(runs[0].pairs), len(run.pairs))
			}
		}
	}
	for _, p := range []*planted{all, first} {
		found := whole[0].pairs
		if p == first {
			found = oursSub[0].pairs
		}
		for _, pr := range p.pairs {
			if !found[sortedPair(pr[0], pr[1])] {
				return report, fmt.Errorf("duplicates: %s: the planted pair %s ~ %s is not found", p.index, pr[0], pr[1])
			}
		}
	}
	if len(theirs) > 0 && !maps.Equal(theirs[0].pairs, oursSub[0].pairs) {
		return report, fmt.Errorf("duplicates: on %d rows simsearch found %d pairs within %s, numpy %d, %d of them the same",
			first.rows, len(oursSub[0].pairs), d, len(theirs[0].pairs), common(oursSub[0].pairs, theirs[0].pairs))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## All pairs within a distance (`simsearch dupes`)\n\n")
	fmt.Fprintf(&b, "Every pair within %s (the default) in the bench's rows with %d near-duplicate copies planted (%d rows per shard, every third with two; each copy %g to %g from its row: see plantDupes in bench/dupes.go), %d rounds taking turns; whole processes: wall time and CPU time (user + system; on this shared machine CPU time is the steadier figure), peak RSS from GNU time (`/usr/bin/time -f %%M`). The numpy baseline runs on the first shard and the copies of its rows only (%d rows; see numpyRows in bench/dupes.go), beside simsearch on the same rows: both found the same pairs, and simsearch every planted pair (%d groups on the whole collection).\n\n",
		d, len(all.pairs), plantPerShard, plantMin, plantMax, *dupesRounds, first.rows, whole[0].groups)
	fmt.Fprintf(&b, "| contender | rows | pairs found | wall (median) | CPU (median) | peak RSS |\n|---|---:|---:|---:|---:|---:|\n")
	row := func(name string, rows int, runs []dupesRun) {
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f s | %.2f s | %.0f MB |\n", name, rows, len(runs[0].pairs),
			medianRun(runs, func(r dupesRun) float64 { return r.wall.Seconds() }),
			medianRun(runs, func(r dupesRun) float64 { return r.cpu.Seconds() }),
			medianRun(runs, func(r dupesRun) float64 { return r.rssMB }))
	}
	row("`simsearch dupes` (blocked all-pairs on the SIMD kernels, norm and prefix bounds)", all.rows, whole)
	row("`simsearch dupes`, first shard", first.rows, oursSub)
	if len(theirs) > 0 {
		row("numpy blocked matrix product (4096-row blocks, upper triangle), first shard", first.rows, theirs)
		var ratios []float64
		for i := range min(len(oursSub), len(theirs)) {
			ratios = append(ratios, theirs[i].cpu.Seconds()/oursSub[i].cpu.Seconds())
		}
		fmt.Fprintf(&b, "\nOn the same %d rows simsearch uses %.1f× less CPU time than numpy (median of per-round ratios).", first.rows, medianF(ratios))
	}
	fmt.Fprintf(&b, " Goal: ≤ 60 s on 2 cores and < 1 GB at 100k × 1280.\n")
	return report + b.String(), nil
}

func sortedPair(a, b string) [2]string { return [2]string{min(a, b), max(a, b)} }

// common counts the pairs in both sets.
func common(a, b map[[2]string]bool) int {
	n := 0
	for p := range a {
		if b[p] {
			n++
		}
	}
	return n
}

func medianRun(runs []dupesRun, f func(dupesRun) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// dupesProcess runs cmd (under GNU time, for its peak RSS), times it and reads the pairs it
// printed.
func dupesProcess(cmd *exec.Cmd, read func([]byte) (map[[2]string]bool, int, error)) (dupesRun, error) {
	m, err := runMeasured(cmd)
	if err != nil {
		return dupesRun{}, err
	}
	run := dupesRun{wall: m.wall, cpu: m.cpu, rssMB: m.rssMB}
	if run.pairs, run.groups, err = read(m.stdout); err != nil {
		return run, fmt.Errorf("%s printed %.200q: %w", strings.Join(cmd.Args, " "), m.stdout, err)
	}
	return run, nil
}

// jsonPairs reads the pairs and counts the groups `simsearch dupes --json` printed.
func jsonPairs(out []byte) (map[[2]string]bool, int, error) {
	pairs := map[[2]string]bool{}
	groups := 0
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var g dupes.NamedGroup
		if err := dec.Decode(&g); err != nil {
			return nil, 0, err
		}
		for _, p := range g.Pairs {
			pairs[sortedPair(p.A, p.B)] = true
		}
		groups++
	}
	return pairs, groups, nil
}

// numpyPairs reads the pairs bench/dupes_numpy.py printed: a line "PAIRS ROWS", then one pair
// of ids per line.
func numpyPairs(out []byte) (map[[2]string]bool, int, error) {
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	var n, rows int
	if _, err := fmt.Sscan(lines[0], &n, &rows); err != nil {
		return nil, 0, err
	}
	pairs := map[[2]string]bool{}
	for _, l := range lines[1:] {
		a, b, ok := strings.Cut(l, "\t")
		if !ok {
			return nil, 0, fmt.Errorf("pair line %q", l)
		}
		pairs[sortedPair(a, b)] = true
	}
	if len(pairs) != n {
		return nil, 0, fmt.Errorf("%d pairs announced, %d listed", n, len(pairs))
	}
	return pairs, 0, nil
}
