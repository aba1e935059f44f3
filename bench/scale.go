package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"simsearch/cluster"
	"simsearch/index"
	"simsearch/kernel"
	"simsearch/prune"
	"simsearch/query"
)

// scaleConfig configures the cluster benchmark (make bench-scale).
type scaleConfig struct {
	rows     int    // vectors pushed
	nodes    int    // Weaviate nodes
	weaviate string // the server binary
	out      string // markdown to write
	queries  int    // single queries per contender per round
}

// runScale starts a Weaviate cluster on loopback, pushes a generated collection into it (HNSW
// and flat, 3 shards × 2 replicas), and measures push throughput and query latency through the
// cluster beside the local exact scan of the same index, taking turns round by round.
func runScale(c config, sc scaleConfig, logf func(string, ...any)) error {
	for _, f := range []string{c.bin, sc.weaviate} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s: build it first (make build weaviate): %w", f, err)
		}
	}
	d, err := makeDataset(c.data, sc.rows, c.dim, min(c.shardRows, sc.rows), logf)
	if err != nil {
		return err
	}
	work, idx, err := convertInWork(c, d, "scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	base, err := cluster.FreeBase(sc.nodes, 18080)
	if err != nil {
		return err
	}
	script := filepath.Join("scripts", "weaviate-cluster.sh")
	clusterDir := filepath.Join(work, "cluster")
	cmd := exec.Command(script, "start", strconv.Itoa(sc.nodes), clusterDir, strconv.Itoa(base))
	cmd.Env = append(os.Environ(), "WEAVIATE_BIN="+sc.weaviate)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("starting the cluster: %w", err)
	}
	defer func() {
		stop := exec.Command(script, "stop", clusterDir)
		stop.Stderr = os.Stderr
		stop.Run()
	}()
	var hosts []string
	for i := range sc.nodes {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", base+i))
	}
	url := "weaviate://" + strings.Join(hosts, ",") + "/"
	replicas := min(2, sc.nodes)

	// Push throughput: each collection once from empty, then once more with nothing to send.
	type pushFigure struct {
		name string
		took time.Duration
		rate float64
		rss  int64 // the push process's peak resident set, bytes
	}
	var pushes []pushFigure
	for _, p := range []struct{ name, coll, flag string }{
		{"push, HNSW collection, from empty", "BenchHnsw", ""},
		{"push, flat (exact) collection, from empty", "BenchFlat", "--exact"},
		{"push again, nothing changed (lists ids and digests, sends nothing)", "BenchHnsw", ""},
	} {
		args := []string{"push", "--index", idx, "--to", url + p.coll, "--shards", strconv.Itoa(sc.nodes), "--replicas", strconv.Itoa(replicas), "--json"}
		if p.flag != "" {
			args = append(args, p.flag)
		}
		logf("%s", p.name)
		m, err := runMeasured(exec.Command(c.bin, args...))
		if err != nil {
			return err
		}
		var st struct {
			Rows int `json:"rows"`
		}
		json.Unmarshal(m.stdout, &st)
		took, rss := m.wall, int64(m.rssMB*(1<<20))
		pushes = append(pushes, pushFigure{p.name, took, float64(st.Rows) / took.Seconds(), rss})
	}

	// Query latency, one query at a time, in process: the local exact scan and the cluster.
	local, err := query.Open(idx)
	if err != nil {
		return err
	}
	defer local.Close()
	local.Warm()
	ctx := context.Background()
	open := func(coll string) (*cluster.Searcher, error) {
		t, err := cluster.ParseURL(url + coll)
		if err != nil {
			return nil, err
		}
		return cluster.Open(ctx, t)
	}
	hnsw, err := open("BenchHnsw")
	if err != nil {
		return err
	}
	flat, err := open("BenchFlat")
	if err != nil {
		return err
	}
	ix, err := index.Open(idx)
	if err != nil {
		return err
	}
	defer ix.Close()
	rng := rand.New(rand.NewPCG(14, 1))
	qs := make([][]float32, sc.queries)
	for i := range qs {
		row := ix.Row(rng.IntN(ix.Len()))
		qs[i] = make([]float32, len(row))
		for j, v := range row {
			qs[i][j] = v + float32(rng.NormFloat64()*0.05)
		}
	}
	type searcher interface {
		Search([]float32, query.Request) ([][]query.Hit, []query.Scanned, error)
	}
	perQuery := func(s searcher) (time.Duration, map[string]float64, error) {
		start := time.Now()
		for _, q := range qs {
			if _, _, err := s.Search(q, query.Request{K: 10, MaxDistance: prune.NoLimit}); err != nil {
				return 0, nil, err
			}
		}
		return time.Since(start) / time.Duration(len(qs)), nil, nil
	}
	qfile := d.query()
	ms := []measurement{
		{"local exact scan, in process (one query)", func() (time.Duration, map[string]float64, error) { return perQuery(local) }},
		{"cluster HNSW, in process (one query: gRPC round trip, dynamic ef: 160 at k = 10)", func() (time.Duration, map[string]float64, error) { return perQuery(hnsw) }},
		{"cluster flat (exact), in process (one query)", func() (time.Duration, map[string]float64, error) { return perQuery(flat) }},
		{"simsearch query --index --vector (whole process)", func() (time.Duration, map[string]float64, error) {
			return timeCommand(exec.Command(c.bin, "query", "--index", idx, "--vector", qfile))
		}},
		{"simsearch query --engine (HNSW) --vector (whole process)", func() (time.Duration, map[string]float64, error) {
			return timeCommand(exec.Command(c.bin, "query", "--engine", url+"BenchHnsw", "--vector", qfile))
		}},
	}
	samples := make([]*sample, len(ms))
	for i, m := range ms {
		samples[i] = &sample{name: m.name}
	}
	for r := range c.rounds {
		logf("round %d/%d", r+1, c.rounds)
		for i := range ms {
			j := (i + r) % len(ms)
			t, _, err := ms[j].run()
			if err != nil {
				return err
			}
			samples[j].times = append(samples[j].times, t)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# simsearch through a Weaviate cluster (make bench-scale)\n\n")
	fmt.Fprintf(&b, "%d generated vectors × %d floats; %d Weaviate %s nodes on this machine's loopback (%d shards × %d replicas); %s; %s.\n",
		sc.rows, c.dim, sc.nodes, weaviateVersion(sc.weaviate), sc.nodes, replicas, machine(kernel.Name(), kernel.Reason()), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "All nodes share this machine's %d cores with simsearch: a real cluster puts each on its own.\n\n", runtime.NumCPU())
	fmt.Fprintf(&b, "| push (simsearch push, gRPC batches of 256) | time | vectors/s | push's peak RSS |\n|---|---:|---:|---:|\n")
	for _, p := range pushes {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f MB |\n", p.name, dur(p.took), p.rate, float64(p.rss)/1e6)
	}
	fmt.Fprintf(&b, "\n| query, k = 10 (median of %d rounds; in-process rows: mean of %d queries) | median | vs the local scan |\n|---|---:|---:|\n", c.rounds, sc.queries)
	for i, s := range samples {
		vs := "1×"
		if i > 0 && i < 3 {
			vs = fmt.Sprintf("%.2f× the local scan's time", paired(s, samples[0]))
		} else if i == 4 {
			vs = fmt.Sprintf("%.2f× the local process's time", paired(s, samples[3]))
		} else if i == 3 {
			vs = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", s.name, dur(s.median()), vs)
	}
	hnswRate := pushes[0].rate
	fmt.Fprintf(&b, "\n## Limits, measured here\n\n")
	fmt.Fprintf(&b, "- Push compares the collection with what the cluster holds by keeping, per live row, its object's UUID, a digest of its vector and its place in id order: 36 bytes a row (3.6 GB for 100 million rows), besides the mapped index, a bit per row and 16 bytes per object to delete. The cluster's listing is read a page at a time. The peak RSS above is the whole push process, the mapped index pages it read included.\n")
	fmt.Fprintf(&b, "- At the %.0f vectors/s measured above into HNSW (3 nodes sharing this machine's %d cores, each vector indexed twice for 2 replicas), 100 million vectors would take %.0f days and 500 million %.0f: hundreds of millions are impractical on this machine. The rate is Weaviate's graph building; a real cluster gives each node its own cores (and a flat collection pushes faster, %.0f/s here, but answers each query by scanning every vector of each shard).\n",
		hnswRate, runtime.NumCPU(), 1e8/hnswRate/86400, 5e8/hnswRate/86400, pushes[1].rate)
	if err := os.WriteFile(sc.out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	logf("wrote %s", sc.out)
	fmt.Print(b.String())
	return nil
}

// weaviateVersion is the module version recorded in the server binary.
func weaviateVersion(bin string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return "(unknown version)"
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/weaviate/weaviate" {
			return f[2]
		}
	}
	return "(unknown version)"
}
