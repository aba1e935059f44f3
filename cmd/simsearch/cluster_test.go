package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
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
	"simsearch/embed"
	"simsearch/index"
	"simsearch/prune"
	"simsearch/query"
	"simsearch/serve"
	"simsearch/shard"
)

const clusterScript = "../../scripts/weaviate-cluster.sh"

// TestWeaviateCluster runs the cluster end to end: three Weaviate nodes on loopback, a 20,000
// vector index pushed with 3 shards and 2 replicas, exact (flat) results equal to the local
// exact search (exact duplicates included), HNSW recall@10 against it, resumed and incremental
// pushes (a living collection's change log included), range queries, the page's server over the
// cluster, a node killed with SIGKILL under searchers already open, then restarted, and at last
// both replicas of a shard down. It needs the server binary: `make test-weaviate` builds it and
// sets SIMSEARCH_WEAVIATE (and SIMSEARCH_WEAVIATE_DIR, where the nodes live, so that it can stop
// them whatever becomes of the test).
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
	ixPath, qPath, dups := clusterFixture(t, real)
	ix, err := index.Open(ixPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	queries, dim, err := shard.ReadVectors(qPath)
	if err != nil || dim != ix.Dim() {
		t.Fatalf("queries: dim %d, %v", dim, err)
	}

	dir := os.Getenv("SIMSEARCH_WEAVIATE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	base, err := cluster.FreeBase(3, 20000+os.Getpid()%1000*3)
	if err != nil {
		t.Fatal(err)
	}
	cl := &testCluster{t: t, bin: bin, dir: dir, base: base, n: 3}
	cl.run("start", "3", dir, strconv.Itoa(base))
	t.Cleanup(func() { cl.run("stop", dir) })
	nodes := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", base, base+1, base+2)
	exactURL, hnswURL := "weaviate://"+nodes+"/Exact", "weaviate://"+nodes+"/Hnsw"
	ctx := context.Background()
	t0 := time.Now()
	phase := func(what string) { t.Logf("%.0f s: %s", time.Since(t0).Seconds(), what) }

	// Exact collection, through the command line: first an older version of the index, then the
	// index itself, of which only the difference may be sent.
	older := olderIndex(t, ix, 50)
	pushJSON(t, "push", "--index", older, "--to", exactURL, "--shards", "3", "--replicas", "2", "--exact", "--json")
	st := pushJSON(t, "push", "--index", ixPath, "--to", exactURL, "--exact", "--json")
	if st["sent"] != 100 || st["deleted"] != 50 || st["unchanged"] != float64(ix.Len()-100) {
		t.Errorf("push after the index changed: %v, want 100 sent (50 new, 50 changed), 50 deleted, %d unchanged", st, ix.Len()-100)
	}

	// The living collection: rows added and removed are in the change log until a compaction,
	// and push sends the collection's current state, not its base.
	added := []string{filepath.Join(images, "garden.jpg"), filepath.Join(images, "rocket.jpg")}
	removed := []string{"aqua/crop00000", "blinds/crop00004", "astronaut/crop00003"}
	mustRun(t, append([]string{"add", "--index", ixPath, "--no-compact"}, added...)...)
	mustRun(t, append([]string{"remove", "--index", ixPath, "--no-compact"}, removed...)...)
	if _, err := os.Stat(collection.LogPath(ixPath)); err != nil {
		t.Fatalf("add and remove left no change log: %v", err)
	}
	live := ix.Len() + len(added) - len(removed)
	st = pushJSON(t, "push", "--index", ixPath, "--to", exactURL, "--exact", "--json")
	if st["rows"] != float64(live) || st["sent"] != float64(len(added)) || st["deleted"] != float64(len(removed)) || st["unchanged"] != float64(ix.Len()-len(removed)) {
		t.Errorf("push after add and remove: %v, want %d rows, %d sent, %d deleted", st, live, len(added), len(removed))
	}
	// Compared with the collection's current state from here on (query.Open applies the log).
	margin := 20
	local := localExact(t, ixPath, queries, 10+margin)
	local100 := localExact(t, ixPath, queries, 100)
	phase("exact collection pushed")

	// Errors a person can act on.
	if _, errs, code := simsearch(t, "push", "--index", ixPath, "--to", exactURL); code == 0 || !strings.Contains(errs, "flat vector index, not hnsw") {
		t.Errorf("push with another index type: exit %d, %q", code, errs)
	}
	other := otherDimIndex(t, 8)
	if _, errs, code := simsearch(t, "push", "--index", other, "--to", exactURL, "--exact"); code == 0 || !strings.Contains(errs, "1280-dim vectors but") {
		t.Errorf("push of 8-dim vectors to a 1280-dim collection: exit %d, %q", code, errs)
	}
	otherDir := t.TempDir()
	if err := shard.Write(otherDir, 0, []string{"q"}, make([]float32, 8), 8); err != nil {
		t.Fatal(err)
	}
	otherQ := filepath.Join(otherDir, "0000"+shard.FeaturesSuffix)
	if _, errs, code := simsearch(t, "query", "--engine", exactURL, "--vector", otherQ); code == 0 || !strings.Contains(errs, "vectors of dim 8, but") || !strings.Contains(errs, "holds dim 1280") {
		t.Errorf("query --engine with 8-dim vectors: exit %d, %q", code, errs)
	}
	if _, errs, code := simsearch(t, "query", "--engine", "weaviate://"+nodes+"/Nope", "--vector", qPath); code == 0 || !strings.Contains(errs, "no such collection") || !strings.Contains(errs, "simsearch push --index INDEX --to") {
		t.Errorf("query --engine of a missing collection: exit %d, %q", code, errs)
	}

	// The same output as the local exact search, through the command line: by vectors (from
	// standard input too), by ids, and by an image whose EXIF orientation the index records
	// to apply (decoded as recorded, not as the last command left the decoder).
	want := parseBlocks(t, mustRun(t, "query", "--index", ixPath, "--vector", qPath, "-k", "30"))
	sameBlocks(t, "query --engine (flat)", want, parseBlocks(t, mustRun(t, "query", "--engine", exactURL, "--vector", qPath)), 10, dups)
	stdinQ := parseBlocks(t, withStdin(t, qPath, func() string { return mustRun(t, "query", "--engine", exactURL, "--vector", "-") }))
	if len(stdinQ) != len(want) || len(stdinQ) > 0 && stdinQ[0].query != "-[0]" {
		t.Errorf("query --engine --vector -: %d answers, the first named %q; want %d, \"-[0]\"", len(stdinQ), stdinQ[0].query, len(want))
	}
	sameBlocks(t, "query --engine --vector - (flat)", want, stdinQ, 10, dups)
	byID := []string{local[20][0].ID, local[30][0].ID}
	sameBlocks(t, "query --engine --id (flat)", parseBlocks(t, mustRun(t, append([]string{"query", "--index", ixPath, "--id", "-k", "30"}, byID...)...)),
		parseBlocks(t, mustRun(t, append([]string{"query", "--engine", exactURL, "--id"}, byID...)...)), 10, dups)
	rotated := filepath.Join(images, "dune_exif_rotated.jpg")
	wantImg := mustRun(t, "query", "--index", ixPath, "-k", "30", rotated)
	decodeAsRecorded(index.Meta{}) // what a command before might have left
	sameBlocks(t, "query --engine IMAGE (EXIF transposed)", parseBlocks(t, wantImg), parseBlocks(t, mustRun(t, "query", "--engine", exactURL, rotated)), 10, dups)
	gotStdin := withStdin(t, rotated, func() string { return mustRun(t, "query", "--engine", exactURL, "-") })
	sameBlocks(t, "query --engine - (an image on standard input)", parseBlocks(t, wantImg), parseBlocks(t, gotStdin), 10, dups)
	checkEngineTimings(t, mustRun(t, "query", "--engine", exactURL, "--vector", qPath, "--json", "--timings"), "scan", "connect")
	checkEngineTimings(t, mustRun(t, "query", "--engine", exactURL, rotated, "--json", "--timings"),
		"connect", "model_load", "ort_init", "model_read", "session", "decode", "inference", "scan", "decode_faults_minor", "inference_faults_minor", "scan_faults_minor")
	phase("command line checked")

	// A collection of 3 shards with one replica each, for a shard with no live node.
	singleURL := "weaviate://" + nodes + "/Single"
	pushJSON(t, "push", "--index", subsetIndex(t, ix, 3000), "--to", singleURL, "--shards", "3", "--replicas", "1", "--exact", "--json")

	// HNSW collection, through the package: a push interrupted after 6,000 vectors resumes.
	target, err := cluster.ParseURL(hnswURL)
	if err != nil {
		t.Fatal(err)
	}
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
	if hst.Unchanged < 6000 || hst.Sent+hst.Unchanged != live || hst.Deleted != 0 {
		t.Errorf("resumed push: %+v, want ≥ 6000 unchanged and the rest sent", hst)
	}
	phase("HNSW collection pushed")

	exact, hnsw := openSearcher(t, exactURL), openSearcher(t, hnswURL)
	for _, s := range []*cluster.Searcher{exact, hnsw} {
		if n := s.Len(); n != live {
			t.Errorf("%s holds %d objects, want %d", s.Client().Target(), n, live)
		}
		if !s.Meta().ExifTranspose || s.Meta().Model == nil {
			t.Errorf("%s records %+v, want the model and EXIF transpose of %s", s.Client().Target(), s.Meta(), ixPath)
		}
	}
	// check requires the flat collection's answers to be the local exact search's, and HNSW's
	// recall@10 to be at least 0.99 when minRecall says so (0 reports it only).
	check := func(when string, exact, hnsw *cluster.Searcher, minRecall float64) {
		t.Helper()
		sameTopK(t, when+", flat", local, search(t, exact, queries, 10), 10, dups)
		r := recall(local, search(t, hnsw, queries, 10), 10)
		t.Logf("%s: HNSW recall@10 against the local exact search: %.4f (%d queries; %d of the %d vectors are real embeddings)", when, r, len(local), real, live)
		if r < 1 {
			t.Logf("%s: HNSW missed %s", when, strings.Join(misses(local, search(t, hnsw, queries, 10), 10, dups), "; "))
		}
		if r < minRecall {
			t.Errorf("%s: HNSW recall@10 %.4f < %.2f", when, r, minRecall)
		}
	}
	check("all nodes up", exact, hnsw, 0.99)
	r100 := recall(local100, search(t, hnsw, queries, 100), 100)
	t.Logf("all nodes up: HNSW recall@100: %.4f", r100)
	sameTopK(t, "k = 100, flat", local100, search(t, exact, queries, 100), 100, dups)

	// Range queries: every object within the distance, or an error past the cap of 1,000.
	checkRanges(t, ixPath, exact, queries)
	gone, cancelGone := context.WithCancel(ctx)
	cancelGone()
	if _, _, err := exact.SearchContext(gone, queries[:dim], query.Request{K: 10, MaxDistance: prune.NoLimit}); !errors.Is(err, context.Canceled) {
		t.Errorf("a search whose request is gone: %v, want context.Canceled", err)
	}

	// The page's server over the cluster, from a searcher of its own.
	srvSearcher := openSearcher(t, exactURL)
	srvURL := serveEngine(t, srvSearcher)
	checkEngineServer(t, srvURL, "all nodes up", queries[:dim], local[0], ixPath, local[25][0].ID, dups)
	phase("searches checked")

	// kill -9 the first node, the one the URLs name first and the open searchers use: they go
	// on through the next, and every shard still has a replica.
	if exact.Client().Node().REST != fmt.Sprintf("127.0.0.1:%d", base) {
		t.Fatalf("the searcher uses %v, want node0", exact.Client().Node())
	}
	cl.kill(0)
	check("node0 killed, searchers opened before", exact, hnsw, 0.99)
	if exact.Client().Node().REST == fmt.Sprintf("127.0.0.1:%d", base) {
		t.Error("the searcher still uses the killed node")
	}
	checkEngineServer(t, srvURL, "node0 killed", queries[:dim], local[0], ixPath, local[25][0].ID, dups)
	fresh, freshH := openSearcher(t, exactURL), openSearcher(t, hnswURL)
	if fresh.Client().Node().REST == fmt.Sprintf("127.0.0.1:%d", base) {
		t.Fatal("connected to the killed node")
	}
	check("node0 killed, searchers opened after", fresh, freshH, 0.99)
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
	check("node0 down, detected", exact, hnsw, 0.99)

	// A collection whose shards have one replica each now misses node0's: every way of asking
	// says that answers are partial.
	single := openSearcher(t, singleURL)
	checkPartial(t, "a shard on node0 alone", single, singleURL, qPath, queries[:dim])
	phase("node0 killed")

	// The node comes back with the same configuration and rejoins; it answers completely.
	cl.run("start", "3", dir, strconv.Itoa(base))
	node0 := fmt.Sprintf("weaviate://127.0.0.1:%d/", base)
	exact0, hnsw0 := openSearcher(t, node0+"Exact"), openSearcher(t, node0+"Hnsw")
	if w := exact0.Client().HealthWarning(ctx); w != "" {
		t.Errorf("after the restart: %s", w)
	}
	// Through the restarted node its flat collection answers exactly (its data are whole), but
	// its HNSW graph, rebuilt by Weaviate from its commit logs after the kill -9, misses a few
	// neighbours: recall@10 0.9875-1.0 in nine runs, the same objects from run to run, and no
	// better at ef 320 than at 160, so not a matter of search breadth. The healthy replicas
	// (node1, below) answer in full. Weaviate's, reported here and in the README, not asserted.
	check("node0 restarted", exact0, hnsw0, 0)
	node1 := openSearcher(t, fmt.Sprintf("weaviate://127.0.0.1:%d/Hnsw", base+1))
	if r := recall(local, search(t, node1, queries, 10), 10); r < 0.99 {
		t.Errorf("node0 restarted, asking node1: HNSW recall@10 %.4f < 0.99", r)
	} else {
		t.Logf("node0 restarted, asking node1: HNSW recall@10 %.4f", r)
	}
	phase("node0 restarted")

	// Two nodes down: the shard whose replicas both lived on them is gone, and every way of
	// asking says that answers are partial.
	cl.kill(0)
	cl.kill(1)
	checkPartial(t, "node0 and node1 down", exact, exactURL, qPath, queries[:dim])
	phase("two nodes killed")
}

// checkPartial checks that with a shard of s's collection (at url) on no live node, the health
// check, the command line and a server over s each say that answers are partial.
func checkPartial(t *testing.T, when string, s *cluster.Searcher, url, qPath string, v []float32) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for {
		w := s.Client().HealthWarning(ctx)
		if strings.Contains(w, "partial") {
			t.Logf("%s: %s", when, w)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s for 90 s, the health warning is still %q", when, w)
		}
		time.Sleep(time.Second)
	}
	for err := s.Changed(); err == nil || !strings.Contains(err.Error(), "partial"); err = s.Changed() {
		if time.Now().After(deadline) { // Changed keeps an answer for 2 s
			t.Fatalf("%s: Changed: %v, want a partial warning", when, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, errs, code := simsearch(t, "query", "--engine", url, "--vector", qPath)
	if !strings.Contains(errs, "partial") {
		t.Errorf("%s: query --engine: exit %d, stderr %q; want it to say results are partial", when, code, errs)
	}
	t.Logf("%s: query --engine: exit %d, stderr %q", when, code, errs)
	srvURL := serveEngine(t, s)
	status, body := postVector(t, srvURL, v, 10)
	if !(status == http.StatusOK && strings.Contains(body.Warning, "partial") || status != http.StatusOK && strings.Contains(body.Error, "partial")) {
		t.Errorf("%s: the server: %d %+v; want the results with a partial warning, or an error saying so", when, status, body)
	}
	t.Logf("%s: the server answers %d with %d results, warning %q, error %q", when, status, len(body.Results), body.Warning, body.Error)
}

// clusterFixture is realFixture's 20,000 vectors with exact duplicates (the same photo twice):
// for 8 of the queries, a neighbour near the k-th (for 4 of them the 10th, the others the 5th)
// gets two copies under other ids, one sorting before it and one after. Ties are broken by id,
// the smallest first, so the cluster must return all of a tie's members to keep the same ones.
// The index records that its images were decoded with their EXIF orientation applied. dups maps
// each id of a duplicate group to all its members.
func clusterFixture(t *testing.T, real int) (ixPath, qPath string, dups map[string][]string) {
	t.Helper()
	basePath, qPath := realFixture(t, 20000, real, 40)
	ix, err := index.Open(basePath)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	queries, _, err := shard.ReadVectors(qPath)
	if err != nil {
		t.Fatal(err)
	}
	local := localExact(t, basePath, queries, 10)
	row := map[string]int{}
	for r := range ix.Len() {
		id, _ := ix.ID(r)
		row[id] = r
	}
	ixPath = filepath.Join(t.TempDir(), "crops-dups.simidx")
	w, err := index.Create(ixPath, ix.Dim(), false)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := ix.Meta()
	if err != nil {
		t.Fatal(err)
	}
	meta.ExifTranspose = true
	w.SetMeta(meta)
	if err := w.Append(idsOf(t, ix), ix.Vectors()); err != nil {
		t.Fatal(err)
	}
	dups = map[string][]string{}
	for q := range 8 {
		rank := 9
		if q >= 4 {
			rank = 4
		}
		orig := local[q][rank].ID
		if dups[orig] != nil {
			continue
		}
		group := []string{fmt.Sprintf("0dup/%d", q), orig, orig + "~dup"}
		for _, id := range []string{group[0], group[2]} {
			if err := w.Append([]string{id}, ix.Row(row[orig])); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range group {
			dups[id] = group
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return ixPath, qPath, dups
}

func idsOf(t *testing.T, ix *index.Index) []string {
	t.Helper()
	ids := make([]string, ix.Len())
	for r := range ids {
		id, err := ix.ID(r)
		if err != nil {
			t.Fatal(err)
		}
		ids[r] = id
	}
	return ids
}

// subsetIndex writes the first n rows of ix, with its metadata.
func subsetIndex(t *testing.T, ix *index.Index, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "subset.simidx")
	w, err := index.Create(path, ix.Dim(), false)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := ix.Meta()
	if err != nil {
		t.Fatal(err)
	}
	w.SetMeta(meta)
	if err := w.Append(idsOf(t, ix)[:n], ix.Vectors()[:n*ix.Dim()]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

// otherDimIndex writes a small index of dim-float vectors.
func otherDimIndex(t *testing.T, dim int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "small.simidx")
	w, err := index.Create(path, dim, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]string{"a", "b"}, make([]float32, 2*dim)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

// withStdin runs fn with standard input read from the file at path.
func withStdin(t *testing.T, path string, fn func() string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	return fn()
}

// checkRanges compares range queries (every object within a distance) with the local exact
// search, and checks that a range holding more than the cluster's cap is an error, not a
// truncated answer.
func checkRanges(t *testing.T, ixPath string, s *cluster.Searcher, queries []float32) {
	t.Helper()
	ls, err := query.Open(ixPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	dim := s.Dim()
	for _, q := range []int{0, 11} {
		v := queries[q*dim : (q+1)*dim]
		near, _, err := ls.Search(v, query.Request{K: 41, MaxDistance: prune.NoLimit})
		if err != nil {
			t.Fatal(err)
		}
		// Halfway between the 40th and 41st distances: no object on the boundary.
		d := (near[0][39].Distance + near[0][40].Distance) / 2
		want, _, err := ls.Search(v, query.Request{MaxDistance: d})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Search(v, query.Request{MaxDistance: d})
		if err != nil {
			t.Fatalf("range query within %g: %v", d, err)
		}
		if len(got[0]) != len(want[0]) || len(got[0]) != 40 {
			t.Errorf("query %d within %g: %d results, want %d (the local exact search's: %d)", q, d, len(got[0]), 40, len(want[0]))
		}
		sameTopK(t, fmt.Sprintf("query %d within %g", q, d), near, got, len(want[0]), nil)

		far := near[0][40].Distance * 100
		if _, _, err := s.Search(v, query.Request{MaxDistance: far}); err == nil || !strings.Contains(err.Error(), "more than 1000 objects within distance") {
			t.Errorf("range query within %g (every object): %v, want an error about the cap", far, err)
		}
	}
}

// checkEngineTimings checks query --engine --json --timings output: the first answer has the
// phases in want, every answer has its search as scan (no search, no index_wait), and the
// answers after the first count their scan in their total.
func checkEngineTimings(t *testing.T, out string, want ...string) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var a struct {
			Timings map[string]float64 `json:"timings_ms"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatal(err)
		}
		tm := a.Timings
		_, search := tm["search"]
		_, wait := tm["index_wait"]
		if tm["scan"] <= 0 || search || wait || (i > 0 && tm["total"] < tm["scan"]) {
			t.Errorf("query --engine --timings, answer %d: %v; want its scan counted in its total, no search or index_wait", i, tm)
		}
		for _, k := range want {
			if _, ok := tm[k]; i == 0 && !ok {
				t.Errorf("query --engine --timings: the first answer has no %s: %v", k, tm)
			}
		}
	}
}

// serveEngine serves the collection s searches as `simsearch serve --engine` does, for the test's
// lifetime, and returns its URL.
func serveEngine(t *testing.T, s *cluster.Searcher) string {
	t.Helper()
	if _, err := s.LoadModel(query.ModelRequest{Path: model, CacheDir: embed.DefaultCacheDir()}); err != nil {
		t.Fatal(err)
	}
	srv, err := serve.New(s, serve.Options{ThumbDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		s.Close()
	})
	return "http://" + ln.Addr().String()
}

// engineAnswer is the server's JSON answer.
type engineAnswer struct {
	Results []query.Hit        `json:"results"`
	Timings map[string]float64 `json:"timings_ms"`
	Warning string             `json:"warning"`
	Error   string             `json:"error"`
	Views   []string           `json:"views"`
}

func getJSON(t *testing.T, url string) (int, engineAnswer) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a engineAnswer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		t.Fatalf("%s: %d, not JSON: %v", url, res.StatusCode, err)
	}
	return res.StatusCode, a
}

func postVector(t *testing.T, url string, v []float32, k int) (int, engineAnswer) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"vector": v})
	res, err := http.Post(fmt.Sprintf("%s/search/vector?k=%d", url, k), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a engineAnswer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		t.Fatalf("/search/vector: %d, not JSON: %v", res.StatusCode, err)
	}
	return res.StatusCode, a
}

// checkEngineServer checks a server of a cluster's collection: the views it says it has (no
// duplicates or map, which read every vector), a vector search equal to the local one (want,
// its nearest k+margin), and "more like this" for id equal to the local search by its vector.
func checkEngineServer(t *testing.T, url, when string, v []float32, want []query.Hit, ixPath, id string, dups map[string][]string) {
	t.Helper()
	if code, a := getJSON(t, url+"/capabilities"); code != http.StatusOK || !slices.Equal(a.Views, []string{"search"}) {
		t.Errorf("%s: /capabilities: %d %v, want the search view alone", when, code, a.Views)
	}
	for _, path := range []string{"/dupes", "/map"} {
		if res, err := http.Get(url + path); err != nil || res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s: %v %v, want 404 from a cluster's server", when, path, res.Status, err)
		}
	}
	code, a := postVector(t, url, v, 10)
	if code != http.StatusOK || a.Warning != "" {
		t.Fatalf("%s: /search/vector: %d %+v", when, code, a)
	}
	if _, wait := a.Timings["index_wait"]; wait || a.Timings["scan"] <= 0 {
		t.Errorf("%s: /search/vector: timings_ms %v; want the cluster's answer as scan, no index_wait", when, a.Timings)
	}
	sameTopK(t, when+": /search/vector", [][]query.Hit{want}, [][]query.Hit{a.Results}, 10, dups)

	ls, err := query.Open(ixPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	lv, err := ls.Vector(id)
	if err != nil {
		t.Fatal(err)
	}
	byVec, _, err := ls.Search(lv, query.Request{K: 30, MaxDistance: prune.NoLimit})
	if err != nil {
		t.Fatal(err)
	}
	code, a = getJSON(t, url+"/search/id/"+id+"?k=10")
	if code != http.StatusOK || len(a.Results) == 0 || a.Results[0].Distance != 0 {
		t.Fatalf("%s: /search/id/%s: %d %+v, want the photo itself first", when, id, code, a)
	}
	sameTopK(t, when+": /search/id (more like this)", byVec, [][]query.Hit{a.Results}, 10, dups)
	if code, _ := getJSON(t, url+"/search/id/no/such/photo.jpg"); code != http.StatusNotFound {
		t.Errorf("%s: /search/id of an id not in the collection: %d, want 404", when, code)
	}
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
	meta, err := ix.Meta()
	if err != nil {
		t.Fatal(err)
	}
	w.SetMeta(meta) // the same model and decoding: a collection refuses others
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

// sameTopK checks that got holds, for each query, the top k of the local exact search, of which
// want holds the nearest k or more (more lets a near tie at the k-th place be checked): the
// same distance at each rank (within distTol); each id once, a true neighbour at its distance;
// every id of the local top k, except ones that tie (within distTol) with the k-th, which the
// cluster may rank either way; and of an exact duplicate group (dups: the same vector under
// several ids, at exactly the same distance on both sides) the members of smallest id, as the
// local search keeps them.
func sameTopK(t *testing.T, what string, want, got [][]query.Hit, k int, dups map[string][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d answers, want %d", what, len(got), len(want))
	}
	for q := range want {
		w, g := want[q], got[q]
		top := w[:min(k, len(w))]
		if len(g) != len(top) {
			t.Errorf("%s: query %d: %d results, want %d", what, q, len(g), len(top))
			continue
		}
		dist := map[string]float64{}
		for _, h := range w {
			dist[h.ID] = h.Distance
		}
		in := map[string]bool{}
		for i, h := range g {
			if in[h.ID] {
				t.Errorf("%s: query %d: %s twice", what, q, h.ID)
			}
			in[h.ID] = true
			if math.Abs(h.Distance-top[i].Distance) > distTol(top[i].Distance) {
				t.Errorf("%s: query %d rank %d: %s at %.6f, want %s at %.6f", what, q, i, h.ID, h.Distance, top[i].ID, top[i].Distance)
			}
			if d, ok := dist[h.ID]; !ok || math.Abs(d-h.Distance) > distTol(d) {
				t.Errorf("%s: query %d rank %d: %s at %.6f is not among the %d nearest at that distance (local: %v, %.6f)", what, q, i, h.ID, h.Distance, len(w), ok, d)
			}
		}
		last := top[len(top)-1].Distance
		for _, h := range top {
			if !in[h.ID] && math.Abs(h.Distance-last) > distTol(last) {
				t.Errorf("%s: query %d: %s (at %.6f) is missing", what, q, h.ID, h.Distance)
			}
		}
		for _, h := range g {
			for _, x := range dups[h.ID] {
				if x < h.ID && !in[x] {
					t.Errorf("%s: query %d: %s kept over %s, its exact duplicate of smaller id", what, q, h.ID, x)
				}
			}
		}
	}
}

// sameBlocks compares printed answers as sameTopK does, the want blocks holding k or more
// results.
func sameBlocks(t *testing.T, what string, want, got []block, k int, dups map[string][]string) {
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
		if want[i].query != got[i].query && got[i].query != "-" && !strings.HasPrefix(got[i].query, "-[") {
			t.Errorf("%s: block %d is %q, want %q", what, i, got[i].query, want[i].query)
		}
	}
	sameTopK(t, what, toHits(want), toHits(got), k, dups)
}

// misses lists the ids of the exact top k that approx did not find, with their query, rank and
// distance, and whether they have exact duplicates.
func misses(exact, approx [][]query.Hit, k int, dups map[string][]string) []string {
	var out []string
	for q := range exact {
		for i, h := range exact[q][:min(k, len(exact[q]))] {
			if !slices.ContainsFunc(approx[q], func(a query.Hit) bool { return a.ID == h.ID }) {
				out = append(out, fmt.Sprintf("query %d rank %d: %s at %.4f (duplicates: %v)", q, i, h.ID, h.Distance, dups[h.ID]))
			}
		}
	}
	return out
}

// recall is the mean fraction of the exact top k (the first k of exact) that approx found.
func recall(exact, approx [][]query.Hit, k int) float64 {
	found, total := 0, 0
	for q := range exact {
		for _, h := range exact[q][:min(k, len(exact[q]))] {
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
		{[]string{"query", "--engine", "weaviate://" + closed + "/Photos", "--scan", "full", "--vector", "q.npy"}, "--scan applies to --index only"},
		{[]string{"query", "--engine", "weaviate://" + closed + "/Photos", "--scan", "pruned", "--id", "a.jpg"}, "--scan applies to --index only"},
		{[]string{"serve", "--engine", "weaviate://" + closed + "/Photos", "--scan", "auto"}, "--scan applies to --index only"},
		{[]string{"serve", "--engine", "weaviate://" + closed + "/Photos", "--poll", "1s"}, "--poll applies to --index only"},
		{[]string{"push", "--index", "x.simidx", "--to", "weaviate://" + closed + "/P", "--shards", "0"}, "--shards must be at least 1"},
	} {
		_, errs, code := simsearch(t, tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("simsearch %s: exit %d, stderr %q; want an error with %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}

// TestEngineTimings checks how --timings prints a cluster's answers (no cluster needed: the
// answers are made from a search's figures as engineAnswers makes them): the cluster's time is
// scan, as a local search's is, there is no index_wait, and the second answer's total (its own
// phases: the first's is the whole command's) counts it.
func TestEngineTimings(t *testing.T) {
	hits := [][]query.Hit{{{ID: "a", Distance: 0}}, {{ID: "b", Distance: 1}}}
	scanned := []query.Scanned{
		{Stats: prune.Stats{Path: "weaviate", Time: 3 * time.Millisecond}, Remote: true},
		{Stats: prune.Stats{Path: "weaviate", Time: 5 * time.Millisecond}, Remote: true},
	}
	answers := answersOf(hits, scanned, func(i, _ int) string { return fmt.Sprintf("q[%d]", i) })
	var out, errs bytes.Buffer
	if err := printAnswers(&out, &errs, answers, map[string]float64{"connect": 2}, time.Now(), formatJSON, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), out.String())
	}
	for i, line := range lines {
		var a struct {
			Timings map[string]float64 `json:"timings_ms"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatal(err)
		}
		_, wait := a.Timings["index_wait"]
		_, search := a.Timings["search"]
		if want := []float64{3, 5}[i]; a.Timings["scan"] != want || wait || search {
			t.Errorf("answer %d: timings %v; want scan %v, no index_wait or search", i, a.Timings, want)
		}
		if i == 1 && a.Timings["total"] != 5 {
			t.Errorf("answer 2: total %v, want its scan 5", a.Timings["total"])
		}
		if _, ok := a.Timings["connect"]; ok != (i == 0) {
			t.Errorf("answer %d: timings %v; connect belongs to the first answer alone", i, a.Timings)
		}
	}
}
