// Command bench measures simsearch against the npy baseline, side by side in one run, and writes
// the results as a markdown table (bench/RESULTS.md by default). Run it with `make bench`, or
// `make bench-smoke` for a small version that finishes in seconds.
//
// Contenders take turns: each round runs every measurement once, in an order that rotates from
// round to round, so that a slow spell of this shared, noisy machine hits them all alike. The
// table reports medians over rounds and ratios computed from figures of the same run.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"simsearch/index"
	"simsearch/internal/memread"
	"simsearch/kernel"
	"simsearch/knn"
	"simsearch/shard"
)

type config struct {
	rows, dim, shardRows int
	rounds               int
	loadRequests         int           // requests per server load run
	loadTime             time.Duration // time bound of a server load run
	data                 string        // cache of generated datasets
	out                  string        // results markdown
	bin                  string        // the simsearch binary
	model, image         string
	python               string // a python3 with numpy, or "" to skip the numpy baseline
}

func main() {
	var c config
	smoke := flag.Bool("smoke", false, "a small run (2,000 vectors, 2 rounds) that checks the harness")
	flag.IntVar(&c.rows, "rows", 100_000, "vectors in the collection")
	flag.IntVar(&c.dim, "dim", 1280, "floats per vector")
	flag.IntVar(&c.shardRows, "shard-rows", 10_000, "vectors per shard")
	flag.IntVar(&c.rounds, "rounds", 7, "rounds of measurements (medians are over rounds)")
	flag.IntVar(&c.loadRequests, "load-requests", 400, "requests per server load run (8 clients)")
	flag.DurationVar(&c.loadTime, "load-time", 30*time.Second, "time bound of a server load run")
	flag.StringVar(&c.data, "data", "bench/data", "directory for the generated datasets (kept between runs)")
	flag.StringVar(&c.out, "out", "bench/RESULTS.md", "markdown file to write")
	flag.StringVar(&c.bin, "bin", "bin/simsearch", "simsearch binary to run as a whole process")
	flag.StringVar(&c.model, "model", "testdata/model/mobilenet_v2_feature_vector.onnx", "ONNX model for image queries")
	flag.StringVar(&c.image, "image", "testdata/images/elephants.jpg", "query image")
	flag.StringVar(&c.python, "python", "/usr/bin/python3", "python3 with numpy for the seed's own loop ('' to skip)")
	living := flag.Bool("collection", false, "measure the living collection instead (update, add, remove): writes bench/COLLECTION.md")
	var sc scaleConfig
	scale := flag.Bool("scale", false, "the Weaviate cluster benchmark instead (make bench-scale; writes -scale-out)")
	flag.IntVar(&sc.rows, "scale-rows", 20_000, "vectors pushed to the cluster")
	flag.IntVar(&sc.nodes, "scale-nodes", 3, "Weaviate nodes")
	flag.IntVar(&sc.queries, "scale-queries", 20, "single queries per in-process measurement")
	flag.StringVar(&sc.weaviate, "weaviate", "bin/weaviate-server", "Weaviate server binary (make weaviate)")
	flag.StringVar(&sc.out, "scale-out", "bench/SCALE.md", "markdown file the cluster benchmark writes")
	flag.Parse()
	if *smoke {
		c.rows, c.shardRows, c.rounds, c.loadRequests = 2000, 1000, 2, 24
	}
	if *living {
		logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...) }
		files, rss, out := 100_000, []int{250, 1000, 10_000}, "bench/COLLECTION.md"
		if *smoke {
			files, rss, out = 2000, []int{20}, filepath.Join(c.data, "collection-smoke.md")
		}
		if err := collectionBench(c, files, rss, out, logf); err != nil {
			logf("%v", err)
			os.Exit(1)
		}
		return
	}
	bench := run
	if *scale {
		bench = func(c config, logf func(string, ...any)) error { return runScale(c, sc, logf) }
	}
	if err := bench(c, func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...) }); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// sample collects one measurement's durations (and named phases) over rounds.
type sample struct {
	name   string
	times  []time.Duration
	phases map[string][]float64
	note   string
}

func (s *sample) median() time.Duration {
	t := slices.Clone(s.times)
	slices.Sort(t)
	return t[len(t)/2]
}

func medianF(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// measurement runs once and returns its duration and optional phase timings in ms.
type measurement struct {
	name string
	run  func() (time.Duration, map[string]float64, error)
}

// convertInWork makes a working folder under the data folder (the caller removes it) and converts
// the dataset's shards into an index there with the simsearch binary.
func convertInWork(c config, d *dataset, prefix string) (work, idx string, err error) {
	if work, err = os.MkdirTemp(c.data, prefix); err != nil {
		return "", "", err
	}
	idx = filepath.Join(work, "bench.simidx")
	if out, err := exec.Command(c.bin, "convert", d.shards(), "-o", idx).CombinedOutput(); err != nil {
		os.RemoveAll(work)
		return "", "", fmt.Errorf("convert: %v: %s", err, out)
	}
	return work, idx, nil
}

func run(c config, logf func(string, ...any)) error {
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("%s: build it first (make build): %w", c.bin, err)
	}
	d, err := makeDataset(c.data, c.rows, c.dim, c.shardRows, logf)
	if err != nil {
		return err
	}
	work, idx, err := convertInWork(c, d, "run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	ix, err := index.Open(idx)
	if err != nil {
		return err
	}
	defer ix.Close()
	ix.Prefault(runtime.GOMAXPROCS(0))
	q, _, err := shard.ReadVectors(d.query())
	if err != nil {
		return err
	}

	python := c.python
	if python != "" {
		if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
			logf("no numpy for %s: the seed's numpy loop is skipped", python)
			python = ""
		}
	}
	// The kernel chosen at start-up: the measurements of one kernel select theirs and restore it,
	// the others run with it.
	defaultKernel, defaultReason := kernel.Name(), kernel.Reason()
	defer kernel.Use(defaultKernel)
	// Every contender must give the same answers before it is timed: a benchmark of wrong answers
	// is worthless.
	emb, err := imageEmbedding(c.bin, c.model, c.image, work)
	if err != nil {
		return fmt.Errorf("the query image's embedding: %w", err)
	}
	if err := checkAnswers(c, python, d.shards(), idx, d.query(), emb); err != nil {
		return err
	}
	pb, err := newPruneBench(c, python, defaultKernel, work, idx, ix, d, emb, logf)
	if err != nil {
		return err
	}
	logf("answers agree (top 10, distances within %g relative): %s, on every index measured whole", distTolerance, checked(python))

	ms := []measurement{
		{"npy baseline: the seed's algorithm in Go (npyio loads every shard, per query)", func() (time.Duration, map[string]float64, error) {
			start := time.Now()
			_, err := npyBaseline(d.shards(), q, 10)
			return time.Since(start), nil, err
		}},
	}
	for _, k := range kernel.Available() {
		ms = append(ms, measurement{readName(k), func() (time.Duration, map[string]float64, error) {
			start := time.Now()
			_, err := memread.Read(ix.Vectors(), runtime.GOMAXPROCS(0), k)
			return time.Since(start), nil, err
		}})
	}
	for _, k := range kernel.Available() {
		ms = append(ms, measurement{"exact top-10 scan, in process, kernel " + k, func() (time.Duration, map[string]float64, error) {
			if err := kernel.Use(k); err != nil {
				return 0, nil, err
			}
			defer kernel.Use(defaultKernel)
			start := time.Now()
			_, err := knn.Search(ix.Vectors(), ix.Dim(), q, 10, knn.Options{})
			return time.Since(start), nil, err
		}})
	}
	ms = append(ms,
		measurement{"simsearch convert (whole process, fsync included)", func() (time.Duration, map[string]float64, error) {
			out := filepath.Join(work, "convert.simidx")
			if err := settle(out); err != nil {
				return 0, nil, err
			}
			return timeCommand(exec.Command(c.bin, "convert", d.shards(), "-o", out))
		}},
		measurement{"cp of the same shard files", func() (time.Duration, map[string]float64, error) {
			dst := filepath.Join(work, "cp")
			if err := settle(dst); err != nil {
				return 0, nil, err
			}
			return timeCommand(exec.Command("cp", "-r", d.shards(), dst))
		}},
		measurement{"cp of the same shard files, then sync them", func() (time.Duration, map[string]float64, error) {
			dst := filepath.Join(work, "cpsync")
			if err := settle(dst); err != nil {
				return 0, nil, err
			}
			t1, _, err := timeCommand(exec.Command("cp", "-r", d.shards(), dst))
			if err != nil {
				return 0, nil, err
			}
			files, _ := filepath.Glob(filepath.Join(dst, "*"))
			t2, _, err := timeCommand(exec.Command("sync", files...))
			return t1 + t2, nil, err
		}},
	)
	ms = append(ms, pb.measurements()...)

	samples := make([]*sample, len(ms))
	for i, m := range ms {
		samples[i] = &sample{name: m.name, phases: map[string][]float64{}}
	}
	// A warm-up round, not counted: page cache, binaries, the model file.
	for _, m := range ms {
		if _, _, err := m.run(); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	for r := 0; r < c.rounds; r++ {
		logf("round %d/%d", r+1, c.rounds)
		for j := range ms {
			i := (j + r) % len(ms)
			t, ph, err := ms[i].run()
			if err != nil {
				return fmt.Errorf("%s: %w", ms[i].name, err)
			}
			samples[i].times = append(samples[i].times, t)
			for k, v := range ph {
				samples[i].phases[k] = append(samples[i].phases[k], v)
			}
		}
	}
	var loads []loadResult
	for _, s := range pb.sets {
		if !s.wholeProcess {
			continue
		}
		logf("server load on the %s index: 8 clients, %d requests per run", s.short, c.loadRequests)
		l, err := serverLoad(c, s.idx, s.query1, 8, c.loadRequests, c.loadTime)
		if err != nil {
			return fmt.Errorf("server load on the %s index: %w", s.short, err)
		}
		for i := range l {
			l[i].index = s.short
		}
		loads = append(loads, l...)
	}
	report := render(c, d, samples, loads, pb, defaultKernel, defaultReason) + pb.report(samples, logf)
	if report, err = withDupes(c, idx, d.shards(), python, report, logf); err != nil {
		return err
	}
	if err := os.WriteFile(c.out, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Print(report)
	return nil
}

// readName names the plain memory read with the loads of kernel k (see package memread), which
// the goals pair with the scan by that kernel.
func readName(k string) string {
	return "memory read of the same bytes with kernel " + k + "'s loads (in process, all cores)"
}

// settle removes a previous output and flushes every dirty page, untimed, so that a writing
// measurement starts from the same state as the others: neither deleting the last round's file
// nor the writeback of another contender's data falls into its time.
func settle(path string) error {
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	return exec.Command("sync").Run()
}

// timeCommand runs cmd and returns its wall-clock time; a failure includes its stderr.
func timeCommand(cmd *exec.Cmd) (time.Duration, map[string]float64, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	t := time.Since(start)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	return t, nil, nil
}

// seedCommand runs the seed's numpy loop (bench/seed_search.py) on the shards for the vector in
// the query npy file.
func seedCommand(python, shards, query string) *exec.Cmd {
	cmd := exec.Command(python, "bench/seed_search.py", shards, query)
	// The machine's OpenBLAS overrides slow a current numpy; the seed ran without them.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, "OPENBLAS_CORETYPE=") || strings.HasPrefix(e, "OPENBLAS_L2_SIZE=")
	})
	return cmd
}

// checked names the contenders checkAnswers compares: the numpy loop only with a python.
func checked(python string) string {
	if python == "" {
		return "npy baseline, query --vector, query IMAGE"
	}
	return "npy baseline, numpy loop, query --vector, query IMAGE"
}

// checkAnswers checks, before anything is timed, that every contender returns the same top 10
// over the shards and the index made of them: `simsearch query --vector` and the numpy loop
// against the npy baseline for the vector in queryFile, and `simsearch query IMAGE` against the
// npy baseline and the numpy loop searching for the image's embedding emb (written by `simsearch
// extract`). python is "" when numpy is missing.
func checkAnswers(c config, python, shards, idx, queryFile, emb string) error {
	q, _, err := shard.ReadVectors(queryFile)
	if err != nil {
		return err
	}
	want, err := npyBaseline(shards, q, 10)
	if err != nil {
		return err
	}
	got, err := queryHits(c.bin, "--index", idx, "--vector", queryFile)
	if err != nil {
		return err
	}
	if err := agree("simsearch query --vector", got, "the npy baseline", want); err != nil {
		return err
	}
	if python != "" {
		np, err := numpyHits(seedCommand(python, shards, queryFile))
		if err != nil {
			return err
		}
		if err := agree("the numpy loop", np, "the npy baseline", want); err != nil {
			return err
		}
	}

	eq, _, err := shard.ReadVectors(emb)
	if err != nil {
		return err
	}
	want, err = npyBaseline(shards, eq, 10)
	if err != nil {
		return err
	}
	got, err = queryHits(c.bin, "--index", idx, "--model", c.model, "--allow-model-mismatch", c.image)
	if err != nil {
		return err
	}
	if err := agree("simsearch query IMAGE", got, "the npy baseline on its embedding", want); err != nil {
		return err
	}
	if python != "" {
		np, err := numpyHits(seedCommand(python, shards, emb))
		if err != nil {
			return err
		}
		if err := agree("simsearch query IMAGE", got, "the numpy loop on its embedding", np); err != nil {
			return err
		}
	}
	return nil
}
