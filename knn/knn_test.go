package knn

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"simsearch/kernel"
	"simsearch/kernel/kerneltest"
)

// sortAll is the reference: every row's squared distance by the selected kernel, stable-sorted
// (so ties keep row order), then reported as Euclidean distances.
func sortAll(data []float32, dim int, q []float32) []Neighbor {
	n := len(data) / dim
	d := make([]float32, n)
	kernel.L2SquaredBlock(q, data, d)
	rows := make([]int, n)
	for i := range rows {
		rows[i] = i
	}
	slices.SortStableFunc(rows, func(a, b int) int { return cmp.Compare(d[a], d[b]) })
	all := make([]Neighbor, n)
	for i, r := range rows {
		all[i] = Neighbor{Row: r, Distance: float32(math.Sqrt(float64(d[r])))}
	}
	return all
}

// firstDiff describes where two results differ, briefly.
func firstDiff(got, want []Neighbor) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("position %d: got %v, want %v", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

func check(t *testing.T, data []float32, dim int, queries []float32, k int, opt Options) {
	t.Helper()
	res, err := SearchBatch(data, dim, queries, k, opt)
	if err != nil {
		t.Fatal(err)
	}
	for j := range res {
		q := queries[j*dim : (j+1)*dim]
		want := slices.DeleteFunc(sortAll(data, dim, q), func(n Neighbor) bool { return Excluded(opt.Exclude, n.Row) })
		want = want[:min(k, len(want))]
		if !slices.Equal(res[j], want) {
			t.Fatalf("query %d, k %d, %+v: %s", j, k, opt, firstDiff(res[j], want))
		}
		single, err := Search(data, dim, q, k, opt)
		if err != nil || !slices.Equal(single, want) {
			t.Fatalf("Search of query %d alone (err %v): %s", j, err, firstDiff(single, want))
		}
	}
}

func TestRandomEqualsSort(t *testing.T) {
	kerneltest.Each(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, tc := range []struct{ n, dim int }{{1, 1}, {10, 3}, {1000, 17}, {3000, 1280}} {
			data := make([]float32, tc.n*tc.dim)
			for i := range data {
				data[i] = float32(rng.NormFloat64())
			}
			queries := make([]float32, 3*tc.dim)
			for i := range queries {
				queries[i] = float32(rng.NormFloat64())
			}
			for _, k := range []int{1, 10, 100, tc.n + 5} {
				for _, workers := range []int{1, 2, 3, 7} {
					check(t, data, tc.dim, queries, k, Options{Workers: workers})
				}
			}
		}
	})
}

// With values from a tiny set, most rows tie with many others; the order must be by row.
func TestTiesOrderedByRow(t *testing.T) {
	kerneltest.Each(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		const n, dim = 5000, 4
		data := make([]float32, n*dim)
		for i := range data {
			data[i] = float32(rng.IntN(2))
		}
		queries := []float32{0, 0, 0, 0, 1, 1, 0, 0}
		for _, k := range []int{1, 7, 300, 2500} {
			for _, workers := range []int{1, 2, 5} {
				check(t, data, dim, queries, k, Options{Workers: workers})
			}
		}
		res, err := Search(data, dim, queries[:dim], 3, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Distance != 0 || res[0].Row > res[1].Row || res[1].Row > res[2].Row {
			t.Errorf("ties not in row order: %v", res)
		}
	})
}

// Excluded rows are never returned, whether they would be nearest or tie with kept ones, and a
// k larger than the rows left returns all of those.
func TestExclude(t *testing.T) {
	kerneltest.Each(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		const n, dim = 3000, 4
		data := make([]float32, n*dim)
		for i := range data {
			data[i] = float32(rng.IntN(2))
		}
		queries := []float32{0, 0, 0, 0, 1, 0, 1, 0}
		for _, every := range []int{1, 2, 3, 64, 1000} {
			ex := make([]uint64, (n+63)/64-1) // shorter than the rows: the last ones stay
			for r := 0; r < len(ex)*64; r += every {
				ex[r/64] |= 1 << (r % 64)
			}
			for _, k := range []int{1, 10, n} {
				for _, workers := range []int{1, 3} {
					check(t, data, dim, queries, k, Options{Workers: workers, Exclude: ex})
				}
			}
		}
		res, _ := Search(data, dim, queries[:dim], n, Options{Exclude: []uint64{^uint64(0)}})
		if len(res) != n-64 {
			t.Errorf("excluding 64 of %d rows returned %d", n, len(res))
		}
	})
}

// The parallel path (large matrices) gives the same answer as one worker.
func TestParallelMatchesSerial(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const dim = 128
	n := minParallelRow/dim + 123
	data := make([]float32, n*dim)
	for i := range data {
		data[i] = float32(rng.IntN(3))
	}
	q := make([]float32, dim)
	serial, err := Search(data, dim, q, 50, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	parallel, err := Search(data, dim, q, 50, Options{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(serial, parallel) {
		t.Fatalf("serial and parallel differ: %s", firstDiff(parallel, serial))
	}
	check(t, data, dim, q, 50, Options{Workers: 3})
}

func TestErrors(t *testing.T) {
	data := make([]float32, 12)
	for _, tc := range []struct {
		q    []float32
		dim  int
		k    int
		want string
	}{
		{[]float32{0, 0, 0}, 3, 0, "k must be at least 1"},
		{[]float32{0, 0, 0}, 3, -1, "k must be at least 1"},
		{[]float32{0, 0, 0}, 5, 1, "not made of rows of 5"},
		{[]float32{0, 0}, 3, 1, "queries of 2 floats"},
		{[]float32{0, float32(math.NaN()), 0}, 3, 1, "query 0, component 1 is NaN"},
		{[]float32{0, 0, float32(math.Inf(1))}, 3, 1, "component 2 is +Inf"},
	} {
		_, err := Search(data, tc.dim, tc.q, tc.k, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Search(dim %d, q %v, k %d) error %v, want %q", tc.dim, tc.q, tc.k, err, tc.want)
		}
	}
	res, err := Search(nil, 3, []float32{1, 2, 3}, 5, Options{})
	if err != nil || len(res) != 0 {
		t.Errorf("Search over no rows = %v, %v", res, err)
	}
}

func ExampleSearch() {
	data := []float32{
		0, 0,
		3, 4,
		1, 0,
	}
	res, _ := Search(data, 2, []float32{0, 0}, 2, Options{})
	fmt.Println(res)
	// Output: [{0 0} {2 1}]
}
