package cluster

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
	"google.golang.org/grpc"

	"simsearch/embed"
	"simsearch/pil"
	"simsearch/prune"
	"simsearch/query"
)

// TestSearchRefusesNoBound checks that a query asking for neither a number of neighbours nor a
// distance, or a query vector that is not finite, is refused, as the local search refuses it,
// before anything is sent to the cluster.
func TestSearchRefusesNoBound(t *testing.T) {
	s := &Searcher{info: Info{Dim: 2}}
	for _, req := range []query.Request{
		{K: 0, MaxDistance: prune.NoLimit},
		{K: -1, MaxDistance: prune.NoLimit},
		{K: 3, KEach: []int{2, 0}, MaxDistance: prune.NoLimit},
		{K: -1, MaxDistance: 2},
		{K: 0, MaxDistance: math.NaN()},
		{K: 3, MaxDistance: -1},
	} {
		_, _, err := s.SearchContext(context.Background(), []float32{1, 2, 3, 4}, req)
		if err == nil || !strings.Contains(err.Error(), "k must be at least 1") && !strings.Contains(err.Error(), "maximum distance") {
			t.Errorf("%+v: %v, want a refusal of the k or the distance", req, err)
		}
	}
	// Queries the local search refuses: not finite.
	for _, q := range [][]float32{{1, float32(math.NaN())}, {float32(math.Inf(-1)), 0}} {
		if _, _, err := s.SearchContext(context.Background(), q, query.Request{K: 1, MaxDistance: prune.NoLimit}); err == nil || !strings.Contains(err.Error(), "query") {
			t.Errorf("query %v: %v, want it refused", q, err)
		}
	}
}

// fakeSearch is a stand-in for a Weaviate node's gRPC search: an exact search over a few objects
// by squared L2, within the request's distance when it gives one, as many as its limit, with
// each object's simsearch id. It records what it was asked (nil distance: none), so that the
// tests check what the client asks and how it reports the answers; the live cluster's answers
// are cmd/simsearch's TestWeaviateCluster's.
type fakeSearch struct {
	pb.UnimplementedWeaviateServer
	ids  []string
	vecs [][]float32

	mu     sync.Mutex
	asked  []*float64 // each request's distance
	limits []uint32   // and limit
}

func (f *fakeSearch) Search(_ context.Context, req *pb.SearchRequest) (*pb.SearchReply, error) {
	nv := req.GetNearVector()
	if nv == nil || len(nv.GetVectors()) != 1 {
		return nil, fmt.Errorf("want one near vector, got %v", nv)
	}
	b := nv.GetVectors()[0].GetVectorBytes()
	q := make([]float32, len(b)/4)
	for i := range q {
		q[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	f.mu.Lock()
	f.asked, f.limits = append(f.asked, nv.Distance), append(f.limits, req.GetLimit())
	f.mu.Unlock()
	var hits []hit
	for i, v := range f.vecs {
		var sq float32
		for d := range v {
			sq += (v[d] - q[d]) * (v[d] - q[d])
		}
		if nv.Distance == nil || float64(sq) <= *nv.Distance {
			hits = append(hits, hit{f.ids[i], sq})
		}
	}
	// Weaviate orders objects at the same distance as it likes, and cuts at the limit among
	// them: the fake puts the largest ids first, the worst case for a client that keeps the
	// smallest.
	slices.SortFunc(hits, func(a, b hit) int {
		if c := cmp.Compare(a.sq, b.sq); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	hits = hits[:min(len(hits), int(req.GetLimit()))]
	reply := &pb.SearchReply{}
	for _, h := range hits {
		reply.Results = append(reply.Results, &pb.SearchResult{
			Properties: &pb.PropertiesResult{NonRefProps: &pb.Properties{Fields: map[string]*pb.Value{propID: {Kind: &pb.Value_TextValue{TextValue: h.id}}}}},
			Metadata:   &pb.MetadataResult{Distance: h.sq, DistancePresent: true},
		})
	}
	return reply, nil
}

// fakeSearcher is a Searcher of a one-node stand-in cluster (fakeNodes for its REST side, a
// fakeSearch for its gRPC side) holding the given objects.
func fakeSearcher(t *testing.T, ids []string, vecs [][]float32) (*Searcher, *fakeSearch) {
	t.Helper()
	f := &fakeSearch{ids: ids, vecs: vecs}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterWeaviateServer(gs, f)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	tg := fakeNodes(t, 1)
	tg.Nodes[0].GRPC = ln.Addr().String()
	c, err := Connect(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	return &Searcher{c: c, info: Info{Dim: len(vecs[0])}, timeout: time.Minute}, f
}

// TestSearchKEachRange checks that a batch's range query without k (KEach 0) is asked as a range,
// the cluster filtering by its squared distance, while a query with k beside it is asked for its
// k nearest plus a margin with no distance; both answers are the exact ones.
func TestSearchKEachRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	var ids []string
	var vecs [][]float32
	for i := range 60 {
		ids = append(ids, fmt.Sprintf("p%02d", i))
		vecs = append(vecs, []float32{float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())})
	}
	s, f := fakeSearcher(t, ids, vecs)
	q := []float32{0.1, -0.2, 0.3, 1, 1, 1}
	const d = 1.2
	hits, scanned, err := s.SearchContext(context.Background(), q, query.Request{K: 4, KEach: []int{0, 4}, MaxDistance: d})
	if err != nil {
		t.Fatal(err)
	}
	var sawRange, sawTop bool
	for _, a := range f.asked {
		switch {
		case a != nil && *a == float64(float32(d*d)):
			sawRange = true
		case a == nil:
			sawTop = true
		}
	}
	if len(f.asked) != 2 || !sawRange || !sawTop {
		t.Errorf("asked the cluster with distances %v; want one range (the squared %v) and one top-k (none)", f.asked, d)
	}
	for j, k := range []int{0, 4} {
		var want []query.Hit
		var all []hit
		for i, v := range vecs {
			var sq float32
			for c := range v {
				sq += (v[c] - q[3*j+c]) * (v[c] - q[3*j+c])
			}
			all = append(all, hit{ids[i], sq})
		}
		sortHits(all)
		for _, h := range all {
			if euclidean(h.sq) <= d && (k == 0 || len(want) < k) {
				want = append(want, query.Hit{ID: h.id, Distance: euclidean(h.sq)})
			}
		}
		if !slices.Equal(hits[j], want) || len(want) == 0 {
			t.Errorf("query %d (k %d within %v): %v, want %v", j, k, d, hits[j], want)
		}
		tm := map[string]float64{}
		scanned[j].Record(tm)
		if _, ok := tm["index_wait"]; ok || tm["scan"] <= 0 {
			t.Errorf("query %d: timings %v; want the cluster's time as scan, and no index_wait", j, tm)
		}
	}
}

// TestImagesTimings checks what --timings reports for image queries through a cluster: the
// same names as a local index's (decode, inference, scan: the cluster's answer), each with its
// page faults, and no index_wait (there are no index pages here); an unreadable image fails
// alone.
func TestImagesTimings(t *testing.T) {
	const images = "../testdata/images"
	m, _, err := embed.OpenModel(embed.Default("../testdata/model/mobilenet_v2_feature_vector.onnx"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var vecs [][]float32
	for _, name := range []string{"rocket.jpg", "coffee.png", "storm.jpg"} {
		img, err := pil.Open(filepath.Join(images, name))
		if err != nil {
			t.Fatal(err)
		}
		v, err := m.Embed(img)
		if err != nil {
			t.Fatal(err)
		}
		ids, vecs = append(ids, name), append(vecs, v)
	}
	m.Close()
	s, _ := fakeSearcher(t, ids, vecs)
	if _, err := s.LoadModel(query.ModelRequest{Path: "../testdata/model/mobilenet_v2_feature_vector.onnx"}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	paths := []string{filepath.Join(images, "coffee.png"), filepath.Join(images, "no-such.jpg"), filepath.Join(images, "rocket.jpg")}
	answers, err := s.Images(paths, query.Request{K: 2, MaxDistance: prune.NoLimit})
	if err != nil {
		t.Fatal(err)
	}
	if answers[1].Err == nil {
		t.Errorf("an image that does not exist: %+v, want its error", answers[1])
	}
	for _, i := range []int{0, 2} {
		a := answers[i]
		if a.Err != nil || len(a.Results) != 2 || a.Results[0].ID != filepath.Base(paths[i]) {
			t.Errorf("%s: %+v, want itself first of 2", paths[i], a)
		}
		for _, k := range []string{"decode", "inference", "scan", "decode_faults_minor", "inference_faults_minor", "scan_faults_minor"} {
			if _, ok := a.Timings[k]; !ok {
				t.Errorf("%s: timings %v, no %s", paths[i], a.Timings, k)
			}
		}
		for _, k := range []string{"search", "index_wait"} {
			if _, ok := a.Timings[k]; ok {
				t.Errorf("%s: timings %v, with %s", paths[i], a.Timings, k)
			}
		}
	}
}

// TestSearchRangeCap checks a range query with a cap (a server's largest k): the cluster is asked
// for one result more than the cap, and a range holding more comes back as those, the nearest,
// not as an error.
func TestSearchRangeCap(t *testing.T) {
	var ids []string
	var vecs [][]float32
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("p%02d", i))
		vecs = append(vecs, []float32{float32(i), 0})
	}
	s, f := fakeSearcher(t, ids, vecs)
	hits, _, err := s.Search([]float32{0, 0}, query.Request{MaxDistance: 100, Cap: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.limits) != 1 || f.limits[0] != 6 {
		t.Errorf("asked the cluster for %v results, want 6 (the cap and one more)", f.limits)
	}
	if len(hits[0]) != 6 || hits[0][5].ID != "p05" {
		t.Errorf("within 100, cap 5: %v; want the 6 nearest", hits[0])
	}
}

// TestSearchTiesAtK checks that the objects kept at the k-th place are those of smallest id, as
// the local search keeps them, though the cluster returns tied objects in any order and cuts
// among them: 30 copies of one vector tie behind the 2 nearest objects, more than the margin
// a first search asks for past k, so the client asks again with a larger limit.
func TestSearchTiesAtK(t *testing.T) {
	ids := []string{"near0", "near1"}
	vecs := [][]float32{{0, 0.1}, {0, 0.2}}
	for i := range 30 {
		ids, vecs = append(ids, fmt.Sprintf("tie%02d", i)), append(vecs, []float32{1, 1})
	}
	ids, vecs = append(ids, "far"), append(vecs, []float32{5, 5})
	s, f := fakeSearcher(t, ids, vecs)
	hits, _, err := s.Search([]float32{0, 0}, query.Request{K: 5, MaxDistance: prune.NoLimit})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hits[0] {
		got = append(got, h.ID)
	}
	if want := []string{"near0", "near1", "tie00", "tie01", "tie02"}; !slices.Equal(got, want) {
		t.Errorf("top 5: %v, want %v", got, want)
	}
	if len(f.limits) < 2 || int(f.limits[0]) != 5+tieMargin(5) {
		t.Errorf("limits asked: %v; want %d, then a larger one", f.limits, 5+tieMargin(5))
	}
}
