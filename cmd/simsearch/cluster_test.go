package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"simsearch/cluster"
	"simsearch/collection"
	"simsearch/index"
	"simsearch/prune"
	"simsearch/query"
	"simsearch/shard"
)

const clusterScript = "../../scripts/weaviate-cluster.sh"

// TestWeaviateCluster runs the cluster end to end: three Weaviate nodes on loopback, a 20,000
// vector index pushed with 3 shards and 2 replicas, exact (flat) results equal to the local
// exact search, HNSW recall@10 against it, resumed and incremental pushes, and a node killed
// with SIGKILL, then restarted. It needs the server binary: `make test-weaviate` builds it and
// sets SIMSEARCH_WEAVIATE.
func TestWeaviateCluster(t *testing.T) {
	bin := os.Getenv("SIMSEARCH_WEAVIATE")
	if bin == "" {
		t.Skip("SIMSEARCH_WEAVIATE is not set: the Weaviate cluster test runs with `make test-weaviate`")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("SIMSEARCH_WEAVIATE=%s: %v", bin, err)
	}
	real := 2000
	if s := os.Getenv("SIMSEARCH_REAL_EMBEDDINGS"); s != "" {
		real, _ = strconv.Atoi(s)
	}
	ixPath, qPath := realFixture(t, 20000, real, 40)
	ix, err := index.Open(ixPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	queries, dim, err := shard.ReadVectors(qPath)
	if err != nil || dim != ix.Dim() {
		t.Fatalf("queries: dim %d, %v", dim, err)
	}
	local := localExact(t, ixPath, queries, 10)

	dir := t.TempDir()
	base, err := cluster.FreeBase(3, 20000+os.Getpid()%1000*3)
	if err != nil {
		t.Fatal(err)
	}
	cl := &testCluster{t: t, bin: bin, dir: dir, base: base, n: 3}
	cl.run("start", "3", dir, strconv.Itoa(base))
	t.Cleanup(func() { cl.run("stop", dir) })
	nodes := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", base, base+1, base+2)
	exactURL, hnswURL := "weaviate://"+nodes+"/Exact", "weaviate://"+nodes+"/Hnsw"

	// Exact collection, through the command line: first an older version of the index, then the
	// index itself, of which only the difference may be sent.
	older := olderIndex(t, ix, 50)
	pushJSON(t, "push", "--index", older, "--to", exactURL, "--shards", "3", "--replicas", "2", "--exact", "--json")
	st := pushJSON(t, "push", "--index", ixPath, "--to", exactURL, "--exact", "--json")
	if st["sent"] != 100 || st["deleted"] != 50 || st["unchanged"] != 19900 {
		t.Errorf("push after the index changed: %v, want 100 sent (50 new, 50 changed), 50 deleted, 19900 unchanged", st)
	}
	if _, errs, code := simsearch(t, "push", "--index", ixPath, "--to", exactURL); code == 0 || !strings.Contains(errs, "flat vector index, not hnsw") {
		t.Errorf("push with another index type: exit %d, %q", code, errs)
	}

	// The same output as the local exact search, through the command line.
	want := mustRun(t, "query", "--index", ixPath, "--vector", qPath)
	got := mustRun(t, "query", "--engine", exactURL, "--vector", qPath)
	sameBlocks(t, "query --engine (flat)", parseBlocks(t, want), parseBlocks(t, got))

	// HNSW collection, through the package: a push interrupted after 6,000 vectors resumes.
	target, err := cluster.ParseURL(hnswURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := cluster.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	view, err := collection.Open(ixPath)
	if err != nil {
		t.Fatal(err)
	}
	defer view.Release()
	opt := cluster.PushOptions{Shards: 3, Replicas: 2}
	cctx, cancel := context.WithCancel(ctx)
	opt.Progress = func(done, total int) {
		if done >= 6000 {
			cancel()
		}
	}
	if _, err := c.Push(cctx, view, opt); err == nil {
		t.Fatal("the interrupted push succeeded")
	}
	opt.Progress = nil
	start := time.Now()
	hst, err := c.Push(ctx, view, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resumed push: %+v in %v", hst, time.Since(start))
	if hst.Unchanged < 6000 || hst.Sent+hst.Unchanged != ix.Len() || hst.Deleted != 0 {
		t.Errorf("resumed push: %+v, want ≥ 6000 unchanged and the rest sent", hst)
	}

	exact, hnsw := openSearcher(t, exactURL), openSearcher(t, hnswURL)
	for _, s := range []*cluster.Searcher{exact, hnsw} {
		if n := s.Len(); n != ix.Len() {
			t.Errorf("%s holds %d objects, want %d", s.Client().Target(), n, ix.Len())
		}
	}
	check := func(when string) {
		t.Helper()
		sameTopK(t, when+", flat", local, search(t, exact, queries, 10))
		r := recall(local, search(t, hnsw, queries, 10))
		t.Logf("%s: HNSW recall@10 against the local exact search: %.4f (%d queries; %d of the %d vectors are real embeddings)", when, r, len(local), real, ix.Len())
		if r < 0.99 {
			t.Errorf("%s: HNSW recall@10 %.4f < 0.99", when, r)
		}
	}
	check("all nodes up")

	// kill -9 the first node, the one the URLs name first: queries go to the next, and every
	// shard still has a replica.
	cl.kill(0)
	exact, hnsw = openSearcher(t, exactURL), openSearcher(t, hnswURL)
	if exact.Client().Node().REST == fmt.Sprintf("127.0.0.1:%d", base) {
		t.Fatal("connected to the killed node")
	}
	check("node0 killed")
	deadline := time.Now().Add(90 * time.Second)
	for {
		down, missing, err := exact.Client().Health(ctx)
		if err == nil && slices.Contains(down, "node0") {
			if missing > 0 {
				t.Errorf("with node0 down, %d shards have no live replica", missing)
			}
			if w := exact.Client().HealthWarning(ctx); !strings.Contains(w, "node0") || !strings.Contains(w, "complete") {
				t.Errorf("health warning with node0 down: %q", w)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node0 killed 90 s ago, health still says down=%v missing=%v err=%v", down, missing, err)
		}
		time.Sleep(time.Second)
	}
	check("node0 down, detected")

	// The node comes back with the same configuration and rejoins; it answers completely.
	cl.run("start", "3", dir, strconv.Itoa(base))
	node0 := fmt.Sprintf("weaviate://127.0.0.1:%d/", base)
	exact, hnsw = openSearcher(t, node0+"Exact"), openSearcher(t, node0+"Hnsw")
	if w := exact.Client().HealthWarning(ctx); w != "" {
		t.Errorf("after the restart: %s", w)
	}
	check("node0 restarted")
	node1 := openSearcher(t, fmt.Sprintf("weaviate://127.0.0.1:%d/Hnsw", base+1))
	t.Logf("node0 restarted, asking node1: HNSW recall@10 %.4f", recall(local, search(t, node1, queries, 10)))
}

// testCluster drives scripts/weaviate-cluster.sh.
type testCluster struct {
	t       *testing.T
	bin     string
	dir     string
	base, n int
}

func (c *testCluster) run(args ...string) {
	c.t.Helper()
	cmd := exec.Command(clusterScript, args...)
	cmd.Env = append(os.Environ(), "WEAVIATE_BIN="+c.bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("weaviate-cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c.t.Logf("weaviate-cluster.sh %s:\n%s", strings.Join(args, " "), out)
}

// kill sends SIGKILL to node i and waits until it is gone.
func (c *testCluster) kill(i int) {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node%d.pid", i)))
	if err != nil {
		c.t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	for syscall.Kill(pid, 0) == nil {
		time.Sleep(50 * time.Millisecond)
	}
}

func pushJSON(t *testing.T, args ...string) map[string]float64 {
	t.Helper()
	out := mustRun(t, args...)
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("push --json printed %q: %v", out, err)
	}
	st := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			st[k] = f
		}
	}
	t.Logf("push: %s", strings.TrimSpace(out))
	return st
}

// olderIndex writes a version of ix that lacks its first k rows, has the next k rows' vectors
// changed, and k rows that ix does not have: what ix looked like before a living collection's
// updates.
func olderIndex(t *testing.T, ix *index.Index, k int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "older.simidx")
	w, err := index.Create(path, ix.Dim(), false)
	if err != nil {
		t.Fatal(err)
	}
	for r := k; r < ix.Len(); r++ {
		id, _ := ix.ID(r)
		v := slices.Clone(ix.Row(r))
		if r < 2*k {
			v[0] += 0.5
		}
		if err := w.Append([]string{id}, v); err != nil {
			t.Fatal(err)
		}
	}
	for i := range k {
		v := slices.Clone(ix.Row(i))
		v[1] += 1
		if err := w.Append([]string{fmt.Sprintf("gone/%d", i)}, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

func openSearcher(t *testing.T, url string) *cluster.Searcher {
	t.Helper()
	target, err := cluster.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cluster.Open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func localExact(t *testing.T, path string, queries []float32, k int) [][]query.Hit {
	t.Helper()
	s, err := query.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hits, _, err := s.Search(queries, query.Request{K: k, MaxDistance: prune.NoLimit})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func search(t *testing.T, s *cluster.Searcher, queries []float32, k int) [][]query.Hit {
	t.Helper()
	hits, _, err := s.Search(queries, query.Request{K: k, MaxDistance: prune.NoLimit})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// distTol is how far the cluster's distances may be from simsearch's: both are float32 sums of
// the same terms, added in different orders.
func distTol(d float64) float64 { return 1e-4 * max(1, d) }

// sameTopK checks that got is want: the same ids at each rank, except that ids whose distances
// tie (within distTol) may come in either order, and at the k-th place either of the tied ids.
func sameTopK(t *testing.T, what string, want, got [][]query.Hit) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d answers, want %d", what, len(got), len(want))
	}
	for q := range want {
		w, g := want[q], got[q]
		if len(g) != len(w) {
			t.Errorf("%s: query %d: %d results, want %d", what, q, len(g), len(w))
			continue
		}
		for i := range w {
			if math.Abs(g[i].Distance-w[i].Distance) > distTol(w[i].Distance) {
				t.Errorf("%s: query %d rank %d: %s at %.6f, want %s at %.6f", what, q, i, g[i].ID, g[i].Distance, w[i].ID, w[i].Distance)
				continue
			}
			if g[i].ID != w[i].ID && !tiedWith(w, g[i].ID, w[i].Distance) && math.Abs(w[i].Distance-w[len(w)-1].Distance) > distTol(w[i].Distance) {
				t.Errorf("%s: query %d rank %d: %s, want %s (distance %.6f)", what, q, i, g[i].ID, w[i].ID, w[i].Distance)
			}
		}
	}
}

// tiedWith says whether id is in hits at distance d (within distTol).
func tiedWith(hits []query.Hit, id string, d float64) bool {
	for _, h := range hits {
		if h.ID == id && math.Abs(h.Distance-d) <= distTol(d) {
			return true
		}
	}
	return false
}

// sameBlocks compares printed answers as sameTopK does.
func sameBlocks(t *testing.T, what string, want, got []block) {
	t.Helper()
	toHits := func(bs []block) [][]query.Hit {
		out := make([][]query.Hit, len(bs))
		for i, b := range bs {
			for j := range b.ids {
				out[i] = append(out[i], query.Hit{ID: b.ids[j], Distance: b.dists[j]})
			}
		}
		return out
	}
	for i := range min(len(want), len(got)) {
		if want[i].query != got[i].query {
			t.Errorf("%s: block %d is %q, want %q", what, i, got[i].query, want[i].query)
		}
	}
	sameTopK(t, what, toHits(want), toHits(got))
}

// recall is the mean fraction of the exact top-k that approx found.
func recall(exact, approx [][]query.Hit) float64 {
	found, total := 0, 0
	for q := range exact {
		for _, h := range exact[q] {
			total++
			if slices.ContainsFunc(approx[q], func(a query.Hit) bool { return a.ID == h.ID }) {
				found++
			}
		}
	}
	return float64(found) / float64(total)
}

// TestEngineErrors checks the errors that need no cluster: they say what to do.
func TestEngineErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // a port nothing listens on once closed
	ln.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"query", "--engine", "weaviate://" + closed + "/Photos?grpc=1", "--vector", "q.npy"}, "cannot reach the Weaviate cluster"},
		{[]string{"query", "--engine", "http://" + closed + "/Photos", "--vector", "q.npy"}, "the scheme must be weaviate://"},
		{[]string{"query", "--engine", "weaviate://" + closed + "/Photos", "--index", "x.simidx", "--vector", "q.npy"}, "give either --index INDEX or --engine"},
		{[]string{"query", "--vector", "q.npy"}, "give either --index INDEX or --engine"},
		{[]string{"serve", "--engine", "weaviate://" + closed + "/"}, "name one collection"},
		{[]string{"push", "--index", "x.simidx", "--to", "weaviate://" + closed + "/P", "--shards", "0"}, "--shards must be at least 1"},
	} {
		_, errs, code := simsearch(t, tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("simsearch %s: exit %d, stderr %q; want an error with %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}
