package dupes

import (
	"bufio"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"simsearch/internal/fault"
	"simsearch/internal/fault/faulttest"
	"simsearch/kernel"
	"simsearch/shard"
)

// bruteForce lists every pair within d by the definition: each pair's kernel distance, one at a
// time, no blocks, no norm bound.
func bruteForce(data []float32, dim int, d float32) map[[2]int]float32 {
	n := len(data) / dim
	out := map[[2]int]float32{}
	for a := 0; a < n; a++ {
		for b := a + 1; b < n; b++ {
			dist := float32(math.Sqrt(float64(kernel.L2Squared(data[a*dim:(a+1)*dim], data[b*dim:(b+1)*dim]))))
			if dist <= d {
				out[[2]int{a, b}] = dist
			}
		}
	}
	return out
}

func pairsOf(t *testing.T, groups []Group) map[[2]int]float32 {
	t.Helper()
	out := map[[2]int]float32{}
	for _, g := range groups {
		for _, p := range g.Pairs {
			if p.A >= p.B {
				t.Fatalf("pair %+v is not ordered", p)
			}
			if !slices.Contains(g.Rows, p.A) || !slices.Contains(g.Rows, p.B) {
				t.Fatalf("pair %+v outside its group %v", p, g.Rows)
			}
			if _, dup := out[[2]int{p.A, p.B}]; dup {
				t.Fatalf("pair %+v reported twice", p)
			}
			out[[2]int{p.A, p.B}] = p.Distance
		}
	}
	return out
}

// generated makes n rows whose norms spread over a wide range (so the norm bound has work to
// skip) and plants near-copies of some rows: planted[i] = {original, copy}.
func generated(n, dim int, seed uint64) ([]float32, [][2]int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]float32, n*dim)
	var planted [][2]int
	for r := 0; r < n; r++ {
		row := data[r*dim : (r+1)*dim]
		if r > 10 && rng.IntN(5) == 0 {
			src := rng.IntN(r)
			for i := range row {
				row[i] = data[src*dim+i] + float32(rng.NormFloat64()*0.02)
			}
			planted = append(planted, [2]int{src, r})
			continue
		}
		scale := 1 + 20*rng.Float64()
		for i := range row {
			row[i] = float32(max(0, rng.NormFloat64()) * scale)
		}
	}
	return data, planted
}

func TestFindMatchesBruteForce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, dim  int
		d       float32
		workers int
		noBound bool
	}{
		{"one block", 50, 16, 1.5, 1, false},
		{"ragged blocks", 700, 33, 1.5, 3, false},
		{"ragged blocks, no bound", 700, 33, 1.5, 2, true},
		{"wide distance: pairs of distinct rows too", 300, 8, 6, 2, false},
		{"zero distance", 200, 20, 0, 2, false},
		{"1280 dims", 260, 1280, 3, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, planted := generated(tc.n, tc.dim, uint64(tc.n*tc.dim))
			groups, st, err := Find(data, tc.dim, Options{MaxDistance: tc.d, Workers: tc.workers, NoNormBound: tc.noBound})
			if err != nil {
				t.Fatal(err)
			}
			got, want := pairsOf(t, groups), bruteForce(data, tc.dim, tc.d)
			if len(got) != len(want) {
				t.Errorf("%d pairs, brute force finds %d", len(got), len(want))
			}
			for p, d := range want {
				if g, ok := got[p]; !ok || g != d {
					t.Errorf("pair %v at %v: reported %v (%v)", p, d, g, ok)
				}
			}
			for p, d := range got {
				if d > tc.d {
					t.Errorf("pair %v at %v beyond %v", p, d, tc.d)
				}
			}
			if tc.d > 0 {
				for _, p := range planted {
					a, b := min(p[0], p[1]), max(p[0], p[1])
					if _, ok := got[[2]int{a, b}]; !ok {
						t.Errorf("planted pair %v not reported", p)
					}
				}
			}
			if tc.noBound && st.Computed != st.BlockPairs {
				t.Errorf("without the bound %d of %d block pairs computed", st.Computed, st.BlockPairs)
			}
			if !tc.noBound && tc.n > 2*blockRows && st.Computed >= st.BlockPairs {
				t.Errorf("the norm bound skipped nothing: %d of %d block pairs", st.Computed, st.BlockPairs)
			}
			if all := int64(tc.n * (tc.n - 1) / 2); tc.dim > prefixDims && st.Candidates*10 > all {
				t.Errorf("the prefix bound let %d of %d pairs through", st.Candidates, all)
			}
			t.Logf("%d groups, %d pairs; %d of %d block pairs computed, %d candidates", len(groups), len(got), st.Computed, st.BlockPairs, st.Candidates)
		})
	}
}

func TestGroupsByConnectivity(t *testing.T) {
	// Rows on a line: 0, 1, 2 chained at distance 1 (0 and 2 are 2 apart), 10 and 10.5 a pair,
	// 30 alone, and 50..53 four in a chain.
	xs := []float32{0, 1, 2, 10, 10.5, 30, 50, 51, 52, 53}
	data := make([]float32, 0, len(xs)*3)
	for _, x := range xs {
		data = append(data, x, 0, 0)
	}
	groups, _, err := Find(data, 3, Options{MaxDistance: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{6, 7, 8, 9}, {0, 1, 2}, {3, 4}}
	if len(groups) != len(want) {
		t.Fatalf("groups %+v, want rows %v", groups, want)
	}
	for i, g := range groups {
		if !slices.Equal(g.Rows, want[i]) {
			t.Errorf("group %d: rows %v, want %v", i, g.Rows, want[i])
		}
		if len(g.Pairs) != len(g.Rows)-1 {
			t.Errorf("group %d: pairs %+v, want the %d links of the chain", i, g.Pairs, len(g.Rows)-1)
		}
	}
	if p := groups[2].Pairs[0]; p.Distance != 0.5 {
		t.Errorf("pair %+v, want distance 0.5", p)
	}
}

// TestRealPhotos runs on the features of the bundled photos (written by the Python pipeline)
// with the default distance: every edited copy is grouped with its original, no two distinct
// photos are, and the result equals the brute-force one.
func TestRealPhotos(t *testing.T) {
	dir := filepath.Join("..", "testdata", "images")
	data, dim, err := shard.ReadVectors(filepath.Join(dir, "reference_features.npy"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "reference_ids.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		ids = append(ids, sc.Text())
	}
	groups, _, err := Find(data, dim, Options{MaxDistance: DefaultMaxDistance})
	if err != nil {
		t.Fatal(err)
	}
	named, err := Name(groups, func(r int) (string, error) { return ids[r], nil })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"aqua.jpg": "aqua_progressive.jpg", "astronaut.gif": "astronaut.png", "chelsea.png": "chelsea_palette.png",
		"coffee.png": "coffee_cmyk.jpg", "dune.jpg": "dune_exif_rotated.jpg", "elephants.jpg": "elephants_toned.jpg",
		"ladybird.jpg": "ladybird_brighter.jpg", "storm.jpg": "storm_cropped.jpg", "wood.jpg": "wood.webp",
	}
	got := map[string]string{}
	for _, g := range named {
		if len(g.IDs) != 2 {
			t.Errorf("group %v: want pairs of an original and its copy", g.IDs)
			continue
		}
		a, b := min(g.IDs[0], g.IDs[1]), max(g.IDs[0], g.IDs[1]) // rows are not in name order
		got[a] = b
	}
	for a, b := range want {
		if got[a] != b {
			t.Errorf("%s grouped with %q, want %q", a, got[a], b)
		}
	}
	if len(got) != len(want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	if n := len(bruteForce(data, dim, DefaultMaxDistance)); n != len(pairsOf(t, groups)) {
		t.Errorf("brute force finds %d pairs, Find %d", n, len(pairsOf(t, groups)))
	}
}

func TestRefusals(t *testing.T) {
	data, _ := generated(100, 4, 7)
	if _, _, err := Find(data, 4, Options{MaxDistance: 1e6, MaxPairs: 100}); !errors.Is(err, ErrTooManyPairs) {
		t.Errorf("4950 pairs with MaxPairs 100: %v", err)
	}
	for _, d := range []float32{-1, float32(math.NaN()), float32(math.Inf(1))} {
		if _, _, err := Find(data, 4, Options{MaxDistance: d}); err == nil {
			t.Errorf("distance %v accepted", d)
		}
	}
	if _, _, err := Find(data[:7], 4, Options{}); err == nil {
		t.Error("7 floats accepted as rows of 4")
	}
}

// TestTruncatedMapping runs Find on rows mapped from a file that is then truncated under the
// mapping, as an index file changed in place would be: Find fails with fault.ErrFault instead of
// the process dying of SIGBUS, on every number of workers, whether the file shrinks before Find
// starts (its first pass over the rows faults) or between the passes over the rows and the pair
// search (the pair workers fault, and stop one another).
func TestTruncatedMapping(t *testing.T) {
	const n, dim = 4096, 64
	data, _ := generated(n, dim, 11)
	bytes := unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*len(data))
	m, shrink := faulttest.Map(t, bytes)
	rows := unsafe.Slice((*float32)(unsafe.Pointer(&m[0])), len(data))
	want, _, err := Find(rows, dim, Options{MaxDistance: 1})
	if err != nil || len(want) == 0 {
		t.Fatalf("on the intact mapping: %d groups, %v", len(want), err)
	}
	shrink(4096)
	for _, workers := range []int{1, 2, 4} {
		if _, _, err := Find(rows, dim, Options{MaxDistance: 1, Workers: workers}); !errors.Is(err, fault.ErrFault) {
			t.Errorf("%d workers on a truncated mapping: %v, want fault.ErrFault", workers, err)
		}
	}
	defer func() { beforePairs = nil }()
	for _, workers := range []int{1, 2, 4} {
		m, shrink := faulttest.Map(t, bytes)
		rows := unsafe.Slice((*float32)(unsafe.Pointer(&m[0])), len(data))
		reached := false
		beforePairs = func() { reached = true; shrink(4096) }
		if _, _, err := Find(rows, dim, Options{MaxDistance: 1, Workers: workers}); !errors.Is(err, fault.ErrFault) || !reached {
			t.Errorf("%d workers, the mapping truncated before the pair search (reached: %v): %v, want fault.ErrFault", workers, reached, err)
		}
	}
}

// BenchmarkFind compares 4,096 rows of 1,280 half-normal floats (the bench collection's
// distribution) all-pairs and reports the rate in pairs per second.
func BenchmarkFind(b *testing.B) {
	const n, dim = 4096, 1280
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, n*dim)
	for i := range data {
		data[i] = float32(max(0, rng.NormFloat64()))
	}
	for b.Loop() {
		if _, _, err := Find(data, dim, Options{MaxDistance: DefaultMaxDistance}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*(n-1)/2*float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}
