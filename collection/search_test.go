package collection

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"simsearch/index"
	"simsearch/kernel/kerneltest"
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

// TestTieAtKthPlaceUnsortedBase: a base not sorted by id (convert's output) holds "z" at row 0
// and "a" at row 1 with the same vector; once the log adds a row, the nearest one is "a", as a
// fresh build sorted by id answers, though the base alone ranks row 0 first.
func TestTieAtKthPlaceUnsortedBase(t *testing.T) {
	const dim = 4
	for _, rank := range []int{0, 2} {
		t.Run(fmt.Sprintf("rank%d", rank), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.simidx")
			rows := []Row{{ID: "z", Vector: []float32{1, 1, 1, 1}}, {ID: "a", Vector: []float32{1, 1, 1, 1}}, {ID: "m", Vector: []float32{5, 5, 5, 5}}}
			writeBase(t, path, dim, rows, index.Meta{}, rank, prune.Version)
			commitRows(t, path, []Row{{ID: "far", Vector: []float32{9, 9, 9, 9}}})
			v, err := Open(path)
			must(t, err)
			defer v.Release()
			if v.meta.SortedIDs || (rank > 0) != (v.pca != nil) {
				t.Fatalf("the base is not what the test needs: sorted %v, section %v", v.meta.SortedIDs, v.pca != nil)
			}
			kerneltest.Each(t, func(t *testing.T) {
				for _, scan := range scans {
					for _, req := range []prune.Request{
						{K: 1, MaxDistance: prune.NoLimit, Scan: scan},
						{K: 1, MaxDistance: 1, Scan: scan},
						{KEach: []int{1}, MaxDistance: prune.NoLimit, Scan: scan},
					} {
						res, _, err := v.Search([]float32{1, 1, 1, 1}, req)
						must(t, err)
						if len(res[0]) != 1 || res[0][0] != (Result{ID: "a"}) {
							t.Errorf("%+v: %v; a fresh build sorted by id answers [{a 0}]", req, res[0])
						}
					}
				}
			})
		})
	}
}

// TestTiesUnsortedBase checks searches of updated collections over bases not sorted by id whose
// rows tie everywhere (small integer components, and rows repeated: duplicate photos) against
// all rows ordered by (squared distance, id), for every kernel and scan, top-k, top-k within a
// distance and batches of each query's own k: with rows added and deleted, and with rows
// deleted only.
func TestTiesUnsortedBase(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	tied := func(prefix string, n int, from []Row) []Row {
		rows := rowsOf(r, prefix, n, 1)
		for i := range rows {
			if len(from) > 0 && i%3 == 0 {
				rows[i].Vector = slices.Clone(from[r.IntN(len(from))].Vector)
			}
		}
		return rows
	}
	base := tied("b", 90, nil)
	base = append(base, tied("c", 90, base)...)
	r.Shuffle(len(base), func(i, j int) { base[i], base[j] = base[j], base[i] })
	var queries []float32
	for i := range 24 {
		if i%2 == 0 {
			queries = append(queries, base[r.IntN(len(base))].Vector...) // a duplicate's query
		} else {
			queries = append(queries, randomVector(r)...)
		}
	}
	nq := len(queries) / testDim
	deleted := []string{base[0].ID, base[7].ID, base[50].ID, base[51].ID, base[99].ID}

	for _, tc := range []struct {
		name  string
		rank  int
		added bool
	}{{"added and deleted", 0, true}, {"added and deleted, PCA section", 4, true}, {"deleted only, PCA section", 4, false}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.simidx")
			writeBase(t, path, testDim, base, index.Meta{}, tc.rank, prune.Version)
			want := wantOf(base)
			w := mustWriter(t, path, nil)
			b := Batch{Delete: deleted}
			if tc.added {
				b.Add = tied("a", 40, base)
			}
			must(t, w.Apply(b))
			must(t, w.Commit())
			w.Close()
			for _, id := range deleted {
				delete(want, id)
			}
			for _, row := range b.Add {
				want[row.ID] = row.Vector
			}
			v, err := Open(path)
			must(t, err)
			defer v.Release()
			if v.Len() != len(want) || v.meta.SortedIDs {
				t.Fatalf("%d rows, sorted %v", v.Len(), v.meta.SortedIDs)
			}
			kerneltest.Each(t, func(t *testing.T) {
				for _, scan := range scans {
					for _, k := range []int{1, 2, 3, 5, 8, 20} {
						for _, maxD := range []float64{prune.NoLimit, 1.5} {
							res, _, err := v.Search(queries, prune.Request{K: k, MaxDistance: maxD, Scan: scan})
							must(t, err)
							for j := range nq {
								q := queries[j*testDim : (j+1)*testDim]
								if exp := bruteWithin(want, q, k, maxD); !slices.Equal(res[j], exp) {
									t.Fatalf("scan %v, k %d, max %v, query %v:\n got %v\nwant %v", scan, k, maxD, q, res[j], exp)
								}
							}
						}
					}
					// Each query's own k, 0 for every row within the distance.
					ks := make([]int, nq)
					for j := range ks {
						ks[j] = r.IntN(8)
					}
					for _, k := range []int{0, slices.Max(ks)} {
						res, _, err := v.Search(queries, prune.Request{K: k, KEach: ks, MaxDistance: 2, Scan: scan})
						must(t, err)
						for j := range nq {
							q := queries[j*testDim : (j+1)*testDim]
							if exp := bruteWithin(want, q, ks[j], 2); !slices.Equal(res[j], exp) {
								t.Fatalf("scan %v, K %d, KEach %d, query %v:\n got %v\nwant %v", scan, k, ks[j], q, res[j], exp)
							}
						}
					}
				}
			})
		})
	}
}

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

// TestSearchRefusesNegativeK checks that a negative k is refused by a collection over a base not
// sorted by id whose log deletes rows (the base alone answers, asked for k+1).
func TestSearchRefusesNegativeK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.simidx")
	r := rand.New(rand.NewPCG(5, 6))
	base := rowsOf(r, "b", 20, 1)
	writeBase(t, path, testDim, base, index.Meta{}, 0, 0)
	w := mustWriter(t, path, nil)
	must(t, w.Apply(Batch{Delete: []string{base[3].ID}}))
	must(t, w.Commit())
	w.Close()
	v, err := Open(path)
	must(t, err)
	defer v.Release()
	q := randomVector(r)
	for _, req := range []prune.Request{{K: -1, MaxDistance: 1}, {KEach: []int{-1}, MaxDistance: 1}} {
		if res, _, err := v.Search(q, req); err == nil {
			t.Errorf("%+v: answered %v", req, res)
		}
	}
}
