package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"simsearch/index"
	"simsearch/knn"
	"simsearch/prune"
	"simsearch/shard"
)

// pruneBench measures the pruned exact search (issue 11) beside the full scan, in the same
// rounds: on the bench's synthetic rows, on real embeddings of edited photos (bench/realish), and
// on those mixed with the synthetic rows; and runs hnswlib and FAISS's flat index once on the
// same data for their time, build time and recall.
type pruneBench struct {
	bin, idx, query string // the bench binary, index and query file, for the whole-process run
	sets            []*pruneSet
	ann             map[string]string // set name -> ann.py's JSON, or why it is missing
	note            string
}

// pruneSet is one collection with its queries.
type pruneSet struct {
	name    string
	ix      *index.Index
	sec     *prune.Section
	queries []float32
	shards  string
	qfile   string
}

// newPruneBench opens the collections: the bench index, and the real-ish ones when
// bench/realish's output is under dataDir/realish (make bench generates it).
func newPruneBench(c config, work, idx string, bench *index.Index, d *dataset, logf func(string, ...any)) (*pruneBench, error) {
	pb := &pruneBench{bin: c.bin, idx: idx, query: d.query(), ann: map[string]string{}}
	q, _, err := shard.ReadVectors(d.query())
	if err != nil {
		return nil, err
	}
	if err := pb.add("bench (synthetic)", bench, q, d.shards(), d.query()); err != nil {
		return nil, err
	}
	real := filepath.Join(c.data, "realish")
	rq := filepath.Join(real, "queries.npy")
	if _, err := os.Stat(rq); err != nil {
		pb.note = fmt.Sprintf("no real-ish embeddings under %s (go run ./bench/realish -o %s): measured on synthetic rows only", real, real)
		logf("%s", pb.note)
		return pb, nil
	}
	queries, _, err := shard.ReadVectors(rq)
	if err != nil {
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
	link := func(src string, n int, suffix string) error {
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		return os.Symlink(abs, filepath.Join(mixed, fmt.Sprintf("%04d%s", n, suffix)))
	}
	realPairs, err := shard.List(filepath.Join(real, "shards"))
	if err != nil {
		return nil, err
	}
	for i, p := range append(realPairs, pairs...) {
		if err := link(p.IDs, i, shard.IDsSuffix); err != nil {
			return nil, err
		}
		if err := link(p.Features, i, shard.FeaturesSuffix); err != nil {
			return nil, err
		}
	}
	for _, s := range []struct{ name, shards string }{
		{"real-ish (edited photos, MobileNetV2)", filepath.Join(real, "shards")},
		{"real-ish + synthetic", mixed},
	} {
		idx := filepath.Join(work, strings.Fields(s.name)[0]+fmt.Sprint(len(pb.sets))+".simidx")
		if out, err := exec.Command(c.bin, "convert", s.shards, "-o", idx).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("convert %s: %v: %s", s.shards, err, out)
		}
		ix, err := index.Open(idx)
		if err != nil {
			return nil, err
		}
		if err := pb.add(s.name, ix, queries, s.shards, rq); err != nil {
			return nil, err
		}
	}
	return pb, nil
}

func (pb *pruneBench) add(name string, ix *index.Index, queries []float32, shards, qfile string) error {
	sec, err := prune.FromIndex(ix)
	if err != nil {
		return err
	}
	if sec == nil {
		return fmt.Errorf("%s: convert wrote no PCA section", ix.Path())
	}
	ix.Prefault(2)
	pb.sets = append(pb.sets, &pruneSet{name: name, ix: ix, sec: sec, queries: queries, shards: shards, qfile: qfile})
	return nil
}

// measurements times, per set and per round, every query one at a time: the full scan and the
// automatic (pruned) path, reporting the mean per query; and checks they agree.
func (pb *pruneBench) measurements() []measurement {
	ms := []measurement{faultsMeasurement(pb.bin, pb.idx, pb.query)}
	for _, s := range pb.sets {
		dim := s.ix.Dim()
		nq := len(s.queries) / dim
		// each runs f on every query; f returns the rows it visited and its own time (the check
		// against the full scan stays out of it).
		each := func(f func(q []float32) (float64, time.Duration, error)) (time.Duration, map[string]float64, error) {
			var visited float64
			var total time.Duration
			for j := range nq {
				v, t, err := f(s.queries[j*dim : (j+1)*dim])
				if err != nil {
					return 0, nil, err
				}
				visited += v
				total += t
			}
			return total / time.Duration(nq), map[string]float64{"visited": visited / float64(nq)}, nil
		}
		ms = append(ms,
			measurement{fmt.Sprintf("exact top-10, full scan, in process, %s (%d rows, mean of %d queries)", s.name, s.ix.Len(), nq), func() (time.Duration, map[string]float64, error) {
				return each(func(q []float32) (float64, time.Duration, error) {
					start := time.Now()
					_, err := knn.Search(s.ix.Vectors(), dim, q, 10, knn.Options{})
					return float64(s.ix.Len()), time.Since(start), err
				})
			}},
			measurement{fmt.Sprintf("exact top-10, pruned (--scan auto), in process, %s", s.name), func() (time.Duration, map[string]float64, error) {
				return each(func(q []float32) (float64, time.Duration, error) {
					start := time.Now()
					got, st, err := prune.Search(s.ix.Vectors(), dim, s.sec, q, prune.Request{K: 10, MaxDistance: prune.NoLimit})
					t := time.Since(start)
					if err != nil {
						return 0, 0, err
					}
					want, err := knn.Search(s.ix.Vectors(), dim, q, 10, knn.Options{})
					if err != nil {
						return 0, 0, err
					}
					for i := range want {
						if got[i] != want[i] {
							return 0, 0, fmt.Errorf("%s: the pruned search differs from the full scan at rank %d", s.name, i)
						}
					}
					return float64(st.Visited), t, nil
				})
			}},
		)
	}
	return ms
}

// runANN runs bench/ann.py on every set (once: hnswlib's build takes tens of seconds).
func (pb *pruneBench) runANN(python string, logf func(string, ...any)) {
	for _, s := range pb.sets {
		if python == "" {
			pb.ann[s.name] = "skipped: no python3 with numpy"
			continue
		}
		logf("hnswlib and FAISS on %s", s.name)
		var out, errb bytes.Buffer
		cmd := exec.Command(python, "bench/ann.py", s.shards, s.qfile)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			pb.ann[s.name] = fmt.Sprintf("failed: %v: %s", err, strings.TrimSpace(errb.String()))
			continue
		}
		pb.ann[s.name] = strings.TrimSpace(out.String())
	}
}

// report runs hnswlib and FAISS, then renders the comparison as a markdown section.
func (pb *pruneBench) report(samples []*sample, python string, logf func(string, ...any)) string {
	pb.runANN(python, logf)
	find := func(prefix string) *sample {
		for _, s := range samples {
			if strings.HasPrefix(s.name, prefix) {
				return s
			}
		}
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Pruned exact search (PCA section)\n\n")
	if pb.note != "" {
		fmt.Fprintf(&b, "%s.\n\n", pb.note)
	}
	fmt.Fprintf(&b, "One query at a time, top-10, in process (page cache warm); the pruned path returns the full scan's answer (checked every round). "+
		"Ratio: median over rounds of full-scan time / pruned time in the same round. hnswlib (M 16, ef_construction 200, ef 64) and FAISS IndexFlatL2 run once, from Python, on the same rows and queries.\n\n")
	fmt.Fprintf(&b, "| collection | full scan | pruned (auto) | rows visited | × faster | hnswlib query / recall@10 / build | FAISS flat query / recall@10 |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range pb.sets {
		full := find(fmt.Sprintf("exact top-10, full scan, in process, %s ", s.name))
		pr := find(fmt.Sprintf("exact top-10, pruned (--scan auto), in process, %s", s.name))
		if full == nil || pr == nil {
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
			fa = fmt.Sprintf("%.2f ms / %.3f", ann.Faiss.Query, ann.Faiss.Recall)
		} else if msg := pb.ann[s.name]; msg != "" {
			hn = msg
		}
		fmt.Fprintf(&b, "| %s, %d rows | %s | %s | %.0f | %.1f | %s | %s |\n", s.name, s.ix.Len(), dur(full.median()), dur(pr.median()),
			medianF(pr.phases["visited"]), paired(full, pr), hn, fa)
	}
	if v := find("simsearch query --vector, page faults"); v != nil && len(v.phases) > 0 {
		fmt.Fprintf(&b, "\nPage faults of a one-shot `simsearch query --vector --timings` (medians): whole process %.0f minor / %.0f major; the search itself %.0f minor / %.0f major (the index is %.0f MB, %.0f pages).\n",
			medianF(v.phases["process_faults_minor"]), medianF(v.phases["process_faults_major"]), medianF(v.phases["faults_minor"]), medianF(v.phases["faults_major"]),
			float64(pb.sets[0].ix.Len()*pb.sets[0].ix.Dim()*4)/1e6, float64(pb.sets[0].ix.Len()*pb.sets[0].ix.Dim()*4)/4096)
	}
	return b.String()
}

// faultsMeasurement runs a one-shot query with --timings for its page-fault counts.
func faultsMeasurement(bin, idx, query string) measurement {
	return measurement{"simsearch query --vector, page faults (whole process, --json --timings)", func() (time.Duration, map[string]float64, error) {
		return timeTimings(exec.Command(bin, "query", "--index", idx, "--vector", query, "--json", "--timings"))
	}}
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
