package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"simsearch/index"
	"simsearch/kernel"
	"simsearch/knn"
	"simsearch/prune"
	"simsearch/shard"
)

// pruneBench measures the pruned exact search (issue 11) beside the full scan: in process, the
// two in turn query by query, on the bench's synthetic rows, on real embeddings of edited photos
// (bench/realish), on those mixed with the synthetic rows, and on data built to defeat pruning
// (all-equal rows, one tight cluster); as whole processes (query --vector, query IMAGE, the
// seed's numpy loop) on the synthetic index and on the mixed one; and runs hnswlib and FAISS's
// flat index once on the same rows for their time, build time and recall.
type pruneBench struct {
	c             config
	python        string // "" when numpy is missing
	defaultKernel string // the kernel every in-process measurement here runs with
	sets          []*pruneSet
	ann           map[string]string // set name -> ann.py's JSON, or why it is missing
	note          string
}

// pruneSet is one collection with its queries.
type pruneSet struct {
	name    string
	short   string // for measurement names
	data    []float32
	dim     int
	sec     *prune.Section
	queries []float32 // the in-process queries, one after another
	// For the whole-process runs and the approximate indexes (empty for in-memory sets).
	idx, query1, shards, qfile string
	wholeProcess               bool // measured as whole processes too
}

// inProcessQueries is how many queries each in-process measurement asks of a synthetic set.
const inProcessQueries = 32

// newPruneBench prepares the collections: the bench index (idx, already open as bench), the
// real-ish ones when bench/realish's output is under c.data/realish (make bench generates it),
// converted into work, and the adversarial sets, made in memory. emb is the query image's
// embedding (a .npy), to check the whole-process answers on the mixed index.
func newPruneBench(c config, python, defaultKernel, work, idx string, bench *index.Index, d *dataset, emb string, logf func(string, ...any)) (*pruneBench, error) {
	pb := &pruneBench{c: c, python: python, defaultKernel: defaultKernel, ann: map[string]string{}}
	rng := rand.New(rand.NewPCG(11, 2026))
	syn := &pruneSet{name: "bench (synthetic)", short: "synthetic", idx: idx, query1: d.query(), shards: d.shards(), wholeProcess: true}
	syn.queries = nearRows(bench.Vectors(), bench.Dim(), inProcessQueries, 0.05, rng)
	syn.qfile = filepath.Join(work, "synthetic-queries")
	ids := make([]string, inProcessQueries)
	for i := range ids {
		ids[i] = fmt.Sprintf("query%d", i)
	}
	if err := writeQueries(syn.qfile, ids, syn.queries, bench.Dim()); err != nil {
		return nil, err
	}
	syn.qfile = filepath.Join(syn.qfile, "0000"+shard.FeaturesSuffix)
	if err := pb.add(syn, bench.Vectors(), bench.Dim(), bench); err != nil {
		return nil, err
	}
	if err := pb.adversarial(bench.Len(), bench.Dim(), rng); err != nil {
		return nil, err
	}

	real := filepath.Join(c.data, "realish")
	rq := filepath.Join(real, "queries.npy")
	if _, err := os.Stat(rq); err != nil {
		pb.note = fmt.Sprintf("no real-ish embeddings under %s (go run ./bench/realish -o %s): measured on synthetic rows only", real, real)
		logf("%s", pb.note)
		return pb, nil
	}
	queries, dim, err := shard.ReadVectors(rq)
	if err != nil {
		return nil, err
	}
	// A one-query file for the whole-process runs: the first real-ish query.
	one := filepath.Join(work, "realish-query")
	if err := writeQueries(one, []string{"query"}, queries[:dim], dim); err != nil {
		return nil, err
	}
	// The mixed collection: the real rows as shard 0, the synthetic ones after them.
	mixed := filepath.Join(work, "mixed")
	if err := os.MkdirAll(mixed, 0o755); err != nil {
		return nil, err
	}
	pairs, err := shard.List(d.shards())
	if err != nil {
		return nil, err
	}
	realPairs, err := shard.List(filepath.Join(real, "shards"))
	if err != nil {
		return nil, err
	}
	link := func(src string, n int, suffix string) error {
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		return os.Symlink(abs, filepath.Join(mixed, fmt.Sprintf("%04d%s", n, suffix)))
	}
	for i, p := range append(realPairs, pairs...) {
		if err := link(p.IDs, i, shard.IDsSuffix); err != nil {
			return nil, err
		}
		if err := link(p.Features, i, shard.FeaturesSuffix); err != nil {
			return nil, err
		}
	}
	for _, s := range []*pruneSet{
		{name: "real-ish (edited photos, MobileNetV2)", short: "real-ish", shards: filepath.Join(real, "shards")},
		{name: "real-ish + synthetic", short: "mixed", shards: mixed, wholeProcess: true},
	} {
		s.idx = filepath.Join(work, s.short+".simidx")
		s.query1, s.qfile, s.queries = filepath.Join(one, "0000"+shard.FeaturesSuffix), rq, queries
		if out, err := exec.Command(c.bin, "convert", s.shards, "-o", s.idx).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("convert %s: %v: %s", s.shards, err, out)
		}
		ix, err := index.Open(s.idx)
		if err != nil {
			return nil, err
		}
		if err := pb.add(s, ix.Vectors(), ix.Dim(), ix); err != nil {
			return nil, err
		}
		if s.wholeProcess {
			if err := checkAnswers(c, python, s.shards, s.idx, s.query1, emb); err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
		}
	}
	return pb, nil
}

// writeQueries writes query vectors as a seed-layout shard 0 in a new folder dir.
func writeQueries(dir string, ids []string, queries []float32, dim int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return shard.Write(dir, 0, ids, queries, dim)
}

// nearRows returns n queries: rows of data, evenly spaced, each moved by Gaussian noise.
func nearRows(data []float32, dim, n int, noise float64, rng *rand.Rand) []float32 {
	rows := len(data) / dim
	var qs []float32
	for j := range n {
		r := (j*rows/n + rows/(2*n)) % rows
		for c := range dim {
			qs = append(qs, data[r*dim+c]+float32(rng.NormFloat64()*noise))
		}
	}
	return qs
}

// adversarial adds the sets where pruning cannot help beside the isotropic synthetic rows: n
// equal rows, and n rows in one tight cluster (made in memory, with their sections).
func (pb *pruneBench) adversarial(n, dim int, rng *rand.Rand) error {
	row := make([]float32, dim)
	for i := range row {
		row[i] = float32(rng.NormFloat64())
	}
	equal := make([]float32, 0, n*dim)
	for range n {
		equal = append(equal, row...)
	}
	cluster := make([]float32, n*dim)
	for i := range cluster {
		cluster[i] = row[i%dim] + float32(rng.NormFloat64()*1e-3)
	}
	for _, s := range []struct {
		name, short string
		data        []float32
		noise       float64
	}{{"all-equal rows (adversarial)", "all-equal", equal, 0.05}, {"one tight cluster (adversarial)", "one-cluster", cluster, 1e-3}} {
		set := &pruneSet{name: s.name, short: s.short, queries: nearRows(s.data, dim, inProcessQueries, s.noise, rng)}
		if err := pb.add(set, s.data, dim, nil); err != nil {
			return err
		}
	}
	return nil
}

// add builds (in memory) or reads (from ix) the set's PCA section.
func (pb *pruneBench) add(s *pruneSet, data []float32, dim int, ix *index.Index) error {
	s.data, s.dim = data, dim
	var err error
	if ix == nil {
		s.sec, err = prune.Build(data, dim, prune.DefaultRank)
	} else if s.sec, err = prune.FromIndex(ix); err == nil && s.sec == nil {
		err = fmt.Errorf("%s: convert wrote no PCA section", ix.Path())
	}
	if err != nil {
		return err
	}
	if ix != nil {
		ix.Prefault(2)
	}
	pb.sets = append(pb.sets, s)
	return nil
}

// set returns the set of that short name, or nil.
func (pb *pruneBench) set(short string) *pruneSet {
	for _, s := range pb.sets {
		if s.short == short {
			return s
		}
	}
	return nil
}

// Measurement names, shared by the measurements and the report.
func alternatingName(s *pruneSet) string {
	return fmt.Sprintf("exact top-10 in process, full scan and --scan auto in turn, %s (%d rows, %d queries)", s.name, len(s.data)/s.dim, len(s.queries)/s.dim)
}
func vectorName(s *pruneSet) string {
	return "simsearch query --vector, " + s.short + " index (whole process, index mapped cold)"
}
func imageName(s *pruneSet) string {
	return "simsearch query IMAGE, " + s.short + " index (whole process: model load, decode, inference, scan)"
}
func numpyName(s *pruneSet) string {
	return "the seed's numpy loop, " + s.short + " shards (whole process, python3 + numpy)"
}

// measurements returns, per set, the in-process measurement that answers every query with the
// full scan and the automatic path in turn, and for the sets with an index file the
// whole-process ones.
func (pb *pruneBench) measurements() []measurement {
	var ms []measurement
	for _, s := range pb.sets {
		if s.wholeProcess {
			ms = append(ms,
				measurement{vectorName(s), func() (time.Duration, map[string]float64, error) {
					return timeTimings(exec.Command(pb.c.bin, "query", "--index", s.idx, "--vector", s.query1, "--json", "--timings"))
				}},
				measurement{imageName(s), func() (time.Duration, map[string]float64, error) {
					return timeTimings(exec.Command(pb.c.bin, "query", "--index", s.idx, "--model", pb.c.model, "--allow-model-mismatch", "--json", "--timings", pb.c.image))
				}},
			)
			if pb.python != "" {
				ms = append(ms, measurement{numpyName(s), func() (time.Duration, map[string]float64, error) {
					return timeCommand(seedCommand(pb.python, s.shards, s.query1))
				}})
			}
		}
		ms = append(ms, measurement{alternatingName(s), func() (time.Duration, map[string]float64, error) { return pb.alternate(s) }})
	}
	return ms
}

// alternate answers every query of s with the full scan and with --scan auto, in turn (the order
// swapping from query to query), with the default kernel, and checks that they agree. It returns
// the median auto time per query and, as phases, the median full-scan time (full_ms), the median
// auto time (auto_ms), the medians of the per-query ratios full/auto (ratio) and auto/full
// (auto_over_full), the median rows visited and the fraction of queries auto answered by pruning.
func (pb *pruneBench) alternate(s *pruneSet) (time.Duration, map[string]float64, error) {
	if err := kernel.Use(pb.defaultKernel); err != nil {
		return 0, nil, err
	}
	nq := len(s.queries) / s.dim
	var full, auto, ratios, inverse, visited []float64
	pruned := 0
	for j := range nq {
		q := s.queries[j*s.dim : (j+1)*s.dim]
		var want, got []knn.Neighbor
		var st prune.Stats
		var tf, ta time.Duration
		for o := range 2 {
			var err error
			start := time.Now()
			if (o+j)%2 == 0 {
				want, err = knn.Search(s.data, s.dim, q, 10, knn.Options{})
				tf = time.Since(start)
			} else {
				got, st, err = prune.Search(s.data, s.dim, s.sec, q, prune.Request{K: 10, MaxDistance: prune.NoLimit})
				ta = time.Since(start)
			}
			if err != nil {
				return 0, nil, err
			}
		}
		if !slices.Equal(got, want) {
			return 0, nil, fmt.Errorf("%s: query %d: --scan auto answers %v, the full scan %v", s.name, j, got, want)
		}
		full, auto = append(full, msF(tf)), append(auto, msF(ta))
		ratios, inverse = append(ratios, float64(tf)/float64(ta)), append(inverse, float64(ta)/float64(tf))
		visited = append(visited, float64(st.Visited))
		if st.Path == "pruned" {
			pruned++
		}
	}
	ph := map[string]float64{"full_ms": medianF(full), "auto_ms": medianF(auto), "ratio": medianF(ratios), "auto_over_full": medianF(inverse),
		"visited": medianF(visited), "pruned": float64(pruned) / float64(nq)}
	return time.Duration(medianF(auto) * 1e6), ph, nil
}

func msF(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// runANN runs bench/ann.py on every set with shards (once: hnswlib's build takes tens of seconds).
func (pb *pruneBench) runANN(logf func(string, ...any)) {
	for _, s := range pb.sets {
		if s.shards == "" {
			continue
		}
		if pb.python == "" {
			pb.ann[s.name] = "skipped: no python3 with numpy"
			continue
		}
		logf("hnswlib and FAISS on %s", s.name)
		var out, errb bytes.Buffer
		cmd := exec.Command(pb.python, "bench/ann.py", s.shards, s.qfile)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			pb.ann[s.name] = fmt.Sprintf("failed: %v: %s", err, strings.TrimSpace(errb.String()))
			continue
		}
		pb.ann[s.name] = strings.TrimSpace(out.String())
	}
}

// report runs hnswlib and FAISS, then renders the comparison as a markdown section.
func (pb *pruneBench) report(samples []*sample, logf func(string, ...any)) string {
	pb.runANN(logf)
	find := findSample(samples)
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Pruned exact search (PCA section)\n\n")
	if pb.note != "" {
		fmt.Fprintf(&b, "%s.\n\n", pb.note)
	}
	fmt.Fprintf(&b, "One query at a time, top-10, in process (page cache warm), kernel %s. Each round answers every query of the set with the full scan and with `--scan auto` in turn "+
		"(the order swapping from query to query), checks that the answers are identical, and takes per-query medians; the table gives the median over rounds. "+
		"× faster is the median of per-query ratios. hnswlib (M 16, ef_construction 200, ef 64) and FAISS IndexFlatL2 run once, from Python, on the same rows and queries (median per query).\n\n", pb.defaultKernel)
	fmt.Fprintf(&b, "| collection | full scan | auto | × faster | rows visited | answered by pruning | hnswlib query / recall@10 / build | FAISS flat query / recall@10 / build |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range pb.sets {
		m := find(alternatingName(s))
		if m == nil {
			continue
		}
		hn, fa := "—", "—"
		type figures struct {
			Build  float64 `json:"build_s"`
			Query  float64 `json:"query_ms"`
			Recall float64 `json:"recall10"`
		}
		var ann struct {
			HNSW  *figures `json:"hnswlib"`
			Faiss *figures `json:"faiss_flat"`
		}
		if err := json.Unmarshal([]byte(pb.ann[s.name]), &ann); err == nil && ann.HNSW != nil && ann.Faiss != nil {
			hn = fmt.Sprintf("%.2f ms / %.3f / %.1f s", ann.HNSW.Query, ann.HNSW.Recall, ann.HNSW.Build)
			fa = fmt.Sprintf("%.2f ms / %.3f / %.2f s", ann.Faiss.Query, ann.Faiss.Recall, ann.Faiss.Build)
		} else if msg := pb.ann[s.name]; msg != "" {
			hn = msg
		}
		fmt.Fprintf(&b, "| %s, %d rows | %s | %s | %.1f | %.0f | %.0f%% | %s | %s |\n", s.name, len(s.data)/s.dim,
			durMS(medianF(m.phases["full_ms"])), durMS(medianF(m.phases["auto_ms"])), medianF(m.phases["ratio"]),
			medianF(m.phases["visited"]), 100*medianF(m.phases["pruned"]), hn, fa)
	}

	fmt.Fprintf(&b, "\nWhole processes, one query, page cache warm, process cold (medians over rounds; `--json --timings`; the real-ish query is the first of bench/realish's):\n\n")
	fmt.Fprintf(&b, "| index | query --vector | its scan | its scan's page faults (minor) | whole process's faults | query IMAGE | its model load (ORT init / session) | its scan | numpy loop |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range pb.sets {
		v, img, np := find(vectorName(s)), find(imageName(s)), find(numpyName(s))
		if v == nil || img == nil {
			continue
		}
		npt := "—"
		if np != nil {
			npt = dur(np.median())
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f | %s | %s (%s / %s) | %s | %s |\n", s.short, dur(v.median()), durMS(medianF(v.phases["scan"])),
			medianF(v.phases["scan_faults_minor"]), medianF(v.phases["process_faults_minor"]), dur(img.median()),
			durMS(medianF(img.phases["model_load"])), durMS(medianF(img.phases["ort_init"])), durMS(medianF(img.phases["session"])),
			durMS(medianF(img.phases["scan"])), npt)
	}
	return b.String()
}

// durMS formats a figure in ms as dur does a duration.
func durMS(ms float64) string { return dur(time.Duration(ms * 1e6)) }

// findSample returns a lookup of samples by name prefix.
func findSample(samples []*sample) func(prefix string) *sample {
	return func(prefix string) *sample {
		for _, s := range samples {
			if strings.HasPrefix(s.name, prefix) {
				return s
			}
		}
		return nil
	}
}

// timeTimings times a simsearch query run with --json --timings and returns the timings it
// printed (the first answer's).
func timeTimings(cmd *exec.Cmd) (time.Duration, map[string]float64, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	t, _, err := timeCommand(cmd)
	if err != nil {
		return 0, nil, err
	}
	var a struct {
		Timings map[string]float64 `json:"timings_ms"`
	}
	if err := json.NewDecoder(&out).Decode(&a); err != nil {
		return 0, nil, fmt.Errorf("%s printed no JSON answer: %w", strings.Join(cmd.Args, " "), err)
	}
	return t, a.Timings, nil
}
