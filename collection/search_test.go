package collection

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"simsearch/prune"
)

// bruteWithin is bruteForce's answer (k 0: every row) cut to the rows whose reported distance is
// at most maxDistance.
func bruteWithin(rows map[string][]float32, q []float32, k int, maxDistance float64) []Result {
	all := bruteForce(rows, q, len(rows))
	var out []Result
	for _, r := range all {
		if float64(r.Distance) > maxDistance || (k > 0 && len(out) == k) {
			break
		}
		out = append(out, r)
	}
	return out
}

var scans = []prune.Scan{prune.Auto, prune.Full, prune.Pruned}

// TestSearchKEach checks that an updated collection cuts each query's answer at its own k: a
// range query (k 0) among queries that ask for one neighbour gets every row within the distance,
// and a batch whose K is 0 gets each query's k.
func TestSearchKEach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.simidx")
	mustWriter(t, path, &NewBase{Dim: testDim}).Close()
	var rows []Row
	for i := range 5 {
		v := make([]float32, testDim)
		v[0] = float32(i) * 0.1
		rows = append(rows, Row{ID: fmt.Sprintf("r%d", i), Vector: v, State: FileState{Size: int64(i + 1)}})
	}
	commitRows(t, path, rows)
	want := wantOf(rows)
	v, err := Open(path)
	must(t, err)
	defer v.Release()
	q := make([]float32, 2*testDim) // two queries at the origin
	for _, c := range []struct {
		req   prune.Request
		wantK []int // per query, 0: every row within the distance
	}{
		{prune.Request{K: 1, KEach: []int{0, 1}, MaxDistance: 1}, []int{0, 1}},
		{prune.Request{KEach: []int{3, 1}, MaxDistance: prune.NoLimit}, []int{3, 1}},
		{prune.Request{K: 4, KEach: []int{2, 4}, MaxDistance: 0.25}, []int{2, 4}},
	} {
		for _, scan := range scans {
			c.req.Scan = scan
			res, _, err := v.Search(q, c.req)
			must(t, err)
			for j, k := range c.wantK {
				if exp := bruteWithin(want, q[:testDim], k, c.req.MaxDistance); !slices.Equal(res[j], exp) {
					t.Errorf("%+v, query %d: %v, want %v", c.req, j, res[j], exp)
				}
			}
		}
	}
	if _, _, err := v.Search(q, prune.Request{KEach: []int{1}, MaxDistance: 1}); err == nil {
		t.Error("one k for two queries was accepted")
	}
}
