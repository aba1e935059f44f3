package prune

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"simsearch/index"
	"simsearch/kernel/kerneltest"
	"simsearch/knn"
)

// dataset is a named matrix with queries to ask of it.
type dataset struct {
	name    string
	dim     int
	data    []float32
	queries []float32
}

// datasets returns the shapes the pruned search must answer exactly: data with low-rank
// structure where it prunes well, and data built to defeat it.
func datasets() []dataset {
	rng := rand.New(rand.NewPCG(7, 11))
	gauss := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	var sets []dataset
	add := func(name string, dim int, data []float32, nq int) {
		n := len(data) / dim
		var qs []float32
		for j := range nq {
			r := (j * 7919) % n
			switch j % 3 {
			case 0: // a stored row: distance 0, and ties when rows repeat
				qs = append(qs, data[r*dim:(r+1)*dim]...)
			case 1: // a row moved a little
				for c := range dim {
					qs = append(qs, data[r*dim+c]+float32(rng.NormFloat64()*0.05))
				}
			default: // somewhere else
				qs = append(qs, gauss(dim, 1)...)
			}
		}
		sets = append(sets, dataset{name, dim, data, qs})
	}

	// Like the bench: non-negative, independent components (no low-rank structure).
	relu := gauss(2000*96, 1)
	for i, v := range relu {
		relu[i] = max(0, v)
	}
	add("bench-like", 96, relu, 9)
	add("gaussian", 64, gauss(2500*64, 1), 9)

	// Clustered and low-rank, like embeddings: 40 centres in an 8-dimensional subspace, plus
	// small isotropic noise.
	const dim = 80
	basis := gauss(8*dim, 1)
	centres := make([]float32, 40*dim)
	for c := range 40 {
		coef := gauss(8, 3)
		for i := range 8 {
			for j := range dim {
				centres[c*dim+j] += coef[i] * basis[i*dim+j]
			}
		}
	}
	clustered := make([]float32, 0, 3000*dim)
	for r := range 3000 {
		c := centres[(r%40)*dim : (r%40+1)*dim]
		noise := gauss(dim, 0.3)
		for j := range dim {
			clustered = append(clustered, c[j]+noise[j])
		}
	}
	add("clustered", dim, clustered, 12)

	// Adversarial: every row equal (all ties), rows that differ only outside any low-rank
	// subspace (identical signatures up to the residual), one tight cluster, many duplicates.
	same := make([]float32, 1500*48)
	row := gauss(48, 1)
	for r := range 1500 {
		copy(same[r*48:], row)
	}
	add("all-equal", 48, same, 6)
	sphere := make([]float32, 0, 1500*32)
	for range 1500 {
		v := gauss(32, 1)
		s := 0.0
		for _, x := range v {
			s += float64(x * x)
		}
		for _, x := range v {
			sphere = append(sphere, float32(float64(x)/math.Sqrt(s)))
		}
	}
	add("unit-sphere", 32, sphere, 6)
	tight := gauss(2000*40, 1e-3)
	for i := range tight {
		tight[i] += 5
	}
	add("one-cluster", 40, tight, 6)
	dups := make([]float32, 0, 2000*24)
	base := gauss(50*24, 1)
	for r := range 2000 {
		dups = append(dups, base[(r*13%50)*24:(r*13%50+1)*24]...)
	}
	add("duplicates", 24, dups, 9)
	return sets
}

func sameResults(t *testing.T, what string, got, want []knn.Neighbor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d results, the full scan has %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: position %d: got %+v, the full scan has %+v", what, i, got[i], want[i])
		}
	}
}

// splitSmall makes the search split its passes over several workers even for the tests' small
// sets (chunks of 48 rows, any number of them per part), until the test ends.
func splitSmall(t *testing.T) {
	chunk, par := chunkGroups, parallelGroups
	chunkGroups, parallelGroups = 3, 1
	t.Cleanup(func() { chunkGroups, parallelGroups = chunk, par })
}

// testRanks are the ranks the equality tests build sections of: all of a signature in its
// prefix (rank 6), and a prefix and a rest (rank 12).
var testRanks = []int{6, 12}

func TestSearchEqualsFullScan(t *testing.T) {
	splitSmall(t)
	for _, ds := range datasets() {
		for _, rank := range testRanks {
			t.Run(fmt.Sprint("rank", rank), func(t *testing.T) { searchEqualsFullScan(t, ds, rank) })
		}
	}
}

func searchEqualsFullScan(t *testing.T, ds dataset, rank int) {
	{
		sec, err := Build(ds.data, ds.dim, rank)
		if err != nil {
			t.Fatal(err)
		}
		n := len(ds.data) / ds.dim
		exclude := make([]uint64, (n+63)/64)
		for r := 0; r < n; r += 5 {
			exclude[r/64] |= 1 << (r % 64)
		}
		t.Run(ds.name, func(t *testing.T) {
			kerneltest.Each(t, func(t *testing.T) {
				nq := len(ds.queries) / ds.dim
				for _, k := range []int{1, 10, 57} {
					for _, ex := range [][]uint64{nil, exclude} {
						for _, scan := range []Scan{Pruned, Auto} {
							req := Request{K: k, MaxDistance: NoLimit, Exclude: ex, Scan: scan}
							got, stats, err := SearchBatch(ds.data, ds.dim, sec, ds.queries, req)
							if err != nil {
								t.Fatal(err)
							}
							for j := range nq {
								q := ds.queries[j*ds.dim : (j+1)*ds.dim]
								want, err := knn.Search(ds.data, ds.dim, q, k, knn.Options{Exclude: ex})
								if err != nil {
									t.Fatal(err)
								}
								what := fmt.Sprintf("query %d, k %d, exclude %v, scan %v (%s path)", j, k, ex != nil, scan, stats[j].Path)
								sameResults(t, what, got[j], want)
								if scan == Pruned && stats[j].Path != "pruned" {
									t.Fatalf("%s: forced pruning answered by the %s path", what, stats[j].Path)
								}
								// Alone, the query's passes are split over three workers.
								r := req
								r.Workers = 3
								one, st, err := Search(ds.data, ds.dim, sec, q, r)
								if err != nil {
									t.Fatal(err)
								}
								sameResults(t, what+", alone on 3 workers", one, want)
								if st.Path != stats[j].Path {
									t.Fatalf("%s: alone, answered by the %s path", what, st.Path)
								}
							}
						}
					}
				}
			})
		})
	}
}

func TestRangeEqualsFullScan(t *testing.T) {
	splitSmall(t)
	for i, ds := range datasets() {
		sec, err := Build(ds.data, ds.dim, testRanks[i%2])
		if err != nil {
			t.Fatal(err)
		}
		t.Run(ds.name, func(t *testing.T) {
			kerneltest.Each(t, func(t *testing.T) {
				nq := len(ds.queries) / ds.dim
				for j := range nq {
					q := ds.queries[j*ds.dim : (j+1)*ds.dim]
					all, err := knn.Search(ds.data, ds.dim, q, 40, knn.Options{})
					if err != nil {
						t.Fatal(err)
					}
					// Radii exactly at stored distances (the boundary is inclusive) and between.
					for _, radius := range []float64{0, float64(all[0].Distance), float64(all[9].Distance), float64(all[39].Distance) * 0.999} {
						want, err := knn.Within(ds.data, ds.dim, q, radius, knn.Options{})
						if err != nil {
							t.Fatal(err)
						}
						for _, k := range []int{0, 5} {
							for _, scan := range []Scan{Pruned, Auto, Full} {
								got, _, err := Search(ds.data, ds.dim, sec, q, Request{K: k, MaxDistance: radius, Scan: scan, Workers: 1 + j%3})
								if err != nil {
									t.Fatal(err)
								}
								w := want
								if k > 0 {
									w = want[:min(k, len(want))]
								}
								sameResults(t, fmt.Sprintf("query %d, radius %v, k %d, %v", j, radius, k, scan), got, w)
							}
						}
						// Within itself, against the 40 nearest: the same rows up to the radius.
						in := knn.InRange(all, radius)
						if len(in) < len(all) {
							sameResults(t, fmt.Sprintf("Within, query %d, radius %v", j, radius), want, in)
						}
					}
				}
			})
		})
	}
}

// TestPrunes checks that the pruned path visits few rows where the data has structure: the
// point of the section, which a broken bound (everything visited) would still answer exactly.
func TestPrunes(t *testing.T) {
	ds := datasets()[2] // clustered
	sec, err := Build(ds.data, ds.dim, 10)
	if err != nil {
		t.Fatal(err)
	}
	n := len(ds.data) / ds.dim
	q := ds.data[5*ds.dim : 6*ds.dim]
	_, st, err := Search(ds.data, ds.dim, sec, q, Request{K: 10, MaxDistance: NoLimit, Scan: Pruned})
	if err != nil {
		t.Fatal(err)
	}
	// 3000 rows in 40 clusters of 75: the query's own cluster, and little else.
	if st.Visited > 2*n/40 {
		t.Errorf("visited %d of %d rows for a query in a cluster of %d", st.Visited, n, n/40)
	}
}

// TestAutoFallsBack checks that Auto gives up on data where bounds cannot prune and that the
// answer then comes from the full scan.
func TestAutoFallsBack(t *testing.T) {
	ds := datasets()[3] // all-equal
	sec, err := Build(ds.data, ds.dim, 6)
	if err != nil {
		t.Fatal(err)
	}
	_, st, err := Search(ds.data, ds.dim, sec, ds.queries[:ds.dim], Request{K: 10, MaxDistance: NoLimit, Scan: Auto})
	if err != nil {
		t.Fatal(err)
	}
	if st.Path != "full" {
		t.Errorf("all-equal rows: path %s after visiting %d rows, want the full scan", st.Path, st.Visited)
	}
}

func TestSectionRoundTripAndDeterminism(t *testing.T) {
	ds := datasets()[2]
	a, err := Build(ds.data, ds.dim, 9)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(slices.Clone(ds.data), ds.dim, 9)
	if err != nil {
		t.Fatal(err)
	}
	enc := a.Encode()
	if !bytes.Equal(enc, b.Encode()) {
		t.Fatal("two builds from the same data differ")
	}
	n := len(ds.data) / ds.dim
	dec, err := Decode(enc, n, ds.dim)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dec.Encode(), enc) {
		t.Fatal("decode then encode changed the bytes")
	}
	if err := dec.Check(ds.data); err != nil {
		t.Fatal(err)
	}
	// Stale signatures (a row changed after the fit) must be found.
	changed := slices.Clone(ds.data)
	changed[17*ds.dim+3] += 1
	if err := dec.Check(changed); err == nil {
		t.Error("Check accepted signatures of a changed row")
	}
	// Signatures kept elsewhere and set one by one give the same section as Project.
	set := NewSection(a.Basis, n)
	sig := make([]float32, a.Basis.Width())
	for r := range n {
		a.Signature(r, sig)
		set.SetSignature(r, sig)
	}
	set.MaxNorm = a.MaxNorm
	if !bytes.Equal(set.Encode(), enc) {
		t.Error("a section of the same signatures set by SetSignature encodes differently")
	}
	_, _, rOff, _ := layout(Version, ds.dim, 9, n)
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
		n    int
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-4] }, n},
		{"other count", func(b []byte) []byte { return b }, n + 1},
		{"header padding", func(b []byte) []byte { b[40] = 1; return b }, n},
		{"rank 0", func(b []byte) []byte { b[4], b[5] = 0, 0; return b }, n},
		{"not orthonormal", func(b []byte) []byte { b[headerLen+4*ds.dim+2] ^= 0x40; return b }, n},
		{"NaN norm", func(b []byte) []byte { copy(b[16:], []byte{1, 0, 0, 0, 0, 0, 0xf8, 0x7f}); return b }, n},
	} {
		buf := tc.edit(slices.Clone(enc))
		if _, err := Decode(buf, tc.n, ds.dim); err == nil {
			t.Errorf("%s: Decode accepted it", tc.name)
		}
	}
	damaged := slices.Clone(enc)
	damaged[rOff+4*10+3] ^= 0x10
	if d, err := Decode(damaged, n, ds.dim); err != nil {
		t.Fatal(err)
	} else if err := d.Check(ds.data); err == nil {
		t.Error("Check accepted a damaged signature")
	}
	// The rows padding the last group must be zero (n = 3000 leaves 8 of them).
	padded := slices.Clone(enc)
	pw := prefixOf(a.Basis.Width()) // value 3 of padding row n+1, in the prefix block
	binary.LittleEndian.PutUint32(padded[rOff+4*(group*pw*(n/group)+3*group+n%group+1):], math.Float32bits(1))
	if d, err := Decode(padded, n, ds.dim); err != nil {
		t.Fatal(err)
	} else if err := d.Check(ds.data); err == nil || !strings.Contains(err.Error(), "padding row") {
		t.Errorf("Check on a non-zero padding row: %v", err)
	}
}

// TestPrefixBytes checks PrefixBytes against FORMAT.md's layout: the prefix block is 64·a·B
// bytes (a = min(8, width), B groups of 16 rows), and the rest block starts right after it.
func TestPrefixBytes(t *testing.T) {
	ds := datasets()[2]
	n := len(ds.data) / ds.dim
	for _, rank := range []int{3, 7, 9} {
		s, err := Build(ds.data, ds.dim, rank)
		if err != nil {
			t.Fatal(err)
		}
		w := rank + 1
		if got, want := s.PrefixBytes(), 64*min(8, w)*((n+15)/16); got != want {
			t.Errorf("rank %d: PrefixBytes %d, want %d", rank, got, want)
		}
		enc := s.Encode()
		_, _, rOff, end := layout(Version, ds.dim, rank, n)
		if w <= 8 {
			if rOff+s.PrefixBytes() != end {
				t.Errorf("rank %d: the prefix block ends at %d, the section at %d", rank, rOff+s.PrefixBytes(), end)
			}
			continue
		}
		sig := make([]float32, w)
		s.Signature(0, sig)
		// Row 0's first value in the rest block is p_(a−1) = p_7.
		if got := math.Float32frombits(binary.LittleEndian.Uint32(enc[rOff+s.PrefixBytes():])); got != sig[7] {
			t.Errorf("rank %d: the rest block starts with %v, row 0's p_7 is %v", rank, got, sig[7])
		}
	}
}

func TestFitSmallAndDegenerate(t *testing.T) {
	for _, tc := range []struct {
		n, dim, rank int
	}{{1, 4, 2}, {3, 5, 5}, {10, 3, 8}, {200, 16, 15}} {
		data := make([]float32, tc.n*tc.dim)
		for i := range data {
			data[i] = float32(i % 3)
		}
		b, err := Fit(data, tc.dim, tc.rank)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if b.Rank != min(tc.rank, tc.dim) || b.eta > 1e-6 {
			t.Errorf("%+v: rank %d, |Gram − I| %g", tc, b.Rank, b.eta)
		}
	}
	if _, err := Fit(nil, 4, 2); err == nil {
		t.Error("Fit accepted no rows")
	}
}

// TestSamplerInPieces checks that a basis fitted from rows streamed in uneven pieces (convert
// feeds it shard by shard) is the basis of the whole matrix, bit for bit, sampling included.
func TestSamplerInPieces(t *testing.T) {
	const n, dim = 9000, 12
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]float32, n*dim)
	for i := range data {
		data[i] = float32(rng.NormFloat64()) * float32(1+i%dim)
	}
	whole, err := Fit(data, dim, 5)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSampler(n, dim)
	for lo := 0; lo < n; {
		hi := min(n, lo+1+rng.IntN(1500))
		s.Add(data[lo*dim : hi*dim])
		lo = hi
	}
	parts, err := s.Fit(5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(whole.Mean, parts.Mean) || !slices.Equal(whole.Components, parts.Components) {
		t.Error("streamed basis differs from the whole matrix's")
	}
	if _, err := NewSampler(n+1, dim).Fit(5); err == nil {
		t.Error("Fit with rows missing succeeded")
	}
}

// encodeV1 writes s in the version 1 layout: the same header and basis, the signatures row
// after row.
func encodeV1(s *Section) []byte {
	b := s.Basis
	v2 := s.Encode()
	_, _, rOff, end := layout(version1, b.Dim, b.Rank, s.Count())
	out := append([]byte(nil), v2[:rOff]...)
	out = append(out, make([]byte, end-rOff)...)
	sig := make([]float32, b.Width())
	for r := range s.Count() {
		s.Signature(r, sig)
		putFloats(out[rOff+4*r*b.Width():], sig)
	}
	return out
}

// TestVersion1Section checks that an index written with a version 1 PCA section (signatures row
// after row) still prunes, exactly: FromIndex packs its signatures, verify checks them.
func TestVersion1Section(t *testing.T) {
	ds := datasets()[2] // clustered: it prunes
	n := len(ds.data) / ds.dim
	sec, err := Build(ds.data, ds.dim, 9)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "v1.simidx")
	w, err := index.Create(path, ds.dim, false)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	if err := w.Append(ids, ds.data); err != nil {
		t.Fatal(err)
	}
	w.AddSection(index.SectionPCA, version1, encodeV1(sec))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	ix, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	old, err := FromIndex(ix)
	if err != nil || old == nil {
		t.Fatalf("FromIndex: %v, %v", old, err)
	}
	if !bytes.Equal(old.Encode(), sec.Encode()) {
		t.Error("the version 1 section, packed, differs from the section it was written from")
	}
	if err := Verify(ix); err != nil {
		t.Error(err)
	}
	q := ds.queries[ds.dim : 2*ds.dim]
	got, st, err := Search(ix.Vectors(), ds.dim, old, q, Request{K: 10, MaxDistance: NoLimit, Scan: Pruned})
	if err != nil {
		t.Fatal(err)
	}
	want, err := knn.Search(ix.Vectors(), ds.dim, q, 10, knn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameResults(t, "version 1 section", got, want)
	if st.Visited > n/4 {
		t.Errorf("visited %d of %d rows with the version 1 section", st.Visited, n)
	}
	// A version 1 section of the wrong length is refused, naming the version.
	bad := encodeV1(sec)
	if _, err := decode(bad[:len(bad)-4], version1, n, ds.dim); err == nil || !strings.Contains(err.Error(), "section version 1") {
		t.Errorf("a truncated version 1 section: %v", err)
	}
}

// TestKEach asks one batch for a different number of neighbours per query, on every path, and
// checks each answer against the full scan's for that query and k: the shared full pass runs at
// the largest k and must cut each answer at its own.
func TestKEach(t *testing.T) {
	ds := datasets()[2] // clustered
	sec, err := Build(ds.data, ds.dim, 6)
	if err != nil {
		t.Fatal(err)
	}
	nq := len(ds.queries) / ds.dim
	ks := make([]int, nq)
	for j := range ks {
		ks[j] = []int{1, 7, 3, 30}[j%4]
	}
	for _, scan := range []Scan{Auto, Pruned, Full} {
		got, stats, err := SearchBatch(ds.data, ds.dim, sec, ds.queries, Request{K: 99, KEach: ks, MaxDistance: NoLimit, Scan: scan})
		if err != nil {
			t.Fatal(err)
		}
		for j := range nq {
			want, err := knn.Search(ds.data, ds.dim, ds.queries[j*ds.dim:(j+1)*ds.dim], ks[j], knn.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sameResults(t, fmt.Sprintf("%v, query %d, k %d", scan, j, ks[j]), got[j], want)
			if scan == Full && (stats[j].SharedBy != nq || stats[j].SharedPass <= 0 || stats[j].Time != 0) {
				t.Errorf("query %d of a full pass shared by %d: stats %+v", j, nq, stats[j])
			}
		}
	}
	if _, _, err := SearchBatch(ds.data, ds.dim, sec, ds.queries, Request{KEach: ks[1:], MaxDistance: NoLimit}); err == nil {
		t.Error("a KEach of the wrong length was accepted")
	}
	if _, _, err := SearchBatch(ds.data, ds.dim, sec, ds.queries[:ds.dim], Request{KEach: []int{0}, MaxDistance: NoLimit}); err == nil {
		t.Error("k 0 without a maximum distance was accepted")
	}
}

// TestKEachRange is TestKEach for a server's batch of range queries: each with its own k, 0 for
// every row within the distance, on every path; each answer must be the full scan's rows within
// the distance, cut at the query's k.
func TestKEachRange(t *testing.T) {
	ds := datasets()[2] // clustered
	sec, err := Build(ds.data, ds.dim, 6)
	if err != nil {
		t.Fatal(err)
	}
	nq := len(ds.queries) / ds.dim
	q0 := ds.queries[:ds.dim]
	near, err := knn.Search(ds.data, ds.dim, q0, 40, knn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := float64(near[39].Distance) // the 40 nearest of the first query, more for some others
	ks := make([]int, nq)
	for j := range ks {
		ks[j] = []int{0, 5, 0, 1}[j%4]
	}
	for _, scan := range []Scan{Auto, Pruned, Full} {
		got, _, err := SearchBatch(ds.data, ds.dim, sec, ds.queries, Request{K: 5, KEach: ks, MaxDistance: d, Scan: scan})
		if err != nil {
			t.Fatal(err)
		}
		for j := range nq {
			want, err := knn.Within(ds.data, ds.dim, ds.queries[j*ds.dim:(j+1)*ds.dim], d, knn.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if ks[j] > 0 {
				want = want[:min(ks[j], len(want))]
			}
			sameResults(t, fmt.Sprintf("%v, query %d, k %d within %v", scan, j, ks[j], d), got[j], want)
		}
	}
}

// TestRoundingMarginNearTies puts hundreds of rows at the same distance from a query, up to
// float32 rounding, at 1280 dims with the default rank, all in the span the basis captures: their
// bounds are then as tight as rounding allows, and whether each tied row is visited is decided by
// the rounding margin alone. The answer must still be the full scan's, on every kernel.
func TestRoundingMarginNearTies(t *testing.T) {
	const dim, rank, sphere, others = 1280, DefaultRank, 400, 1600
	rng := rand.New(rand.NewPCG(31, 1280))
	dirs := make([][]float64, rank) // orthonormal, by Gram–Schmidt in float64
	for i := range dirs {
		v := make([]float64, dim)
		for c := range v {
			v[c] = rng.NormFloat64()
		}
		for range 2 {
			for _, d := range dirs[:i] {
				dot := 0.0
				for c := range v {
					dot += v[c] * d[c]
				}
				for c := range v {
					v[c] -= dot * d[c]
				}
			}
		}
		nrm := 0.0
		for _, x := range v {
			nrm += x * x
		}
		for c := range v {
			v[c] /= math.Sqrt(nrm)
		}
		dirs[i] = v
	}
	centre := make([]float64, dim)
	for c := range centre {
		centre[c] = rng.NormFloat64()
	}
	// point returns centre + radius·u for a random unit u in the span of dirs, in float32.
	point := func(radius float64) []float32 {
		coef := make([]float64, rank)
		s := 0.0
		for i := range coef {
			coef[i] = rng.NormFloat64()
			s += coef[i] * coef[i]
		}
		out := make([]float32, dim)
		for c := range out {
			x := centre[c]
			for i, d := range dirs {
				x += radius * coef[i] / math.Sqrt(s) * d[c]
			}
			out[c] = float32(x)
		}
		return out
	}
	var data []float32
	for r := range sphere + others {
		if r%5 == 0 && r/5 < sphere { // the tied rows, spread through the collection
			data = append(data, point(3)...)
		} else {
			data = append(data, point(6+6*rng.Float64())...)
		}
	}
	sec, err := Build(data, dim, rank)
	if err != nil {
		t.Fatal(err)
	}
	var queries []float32
	for c := range dim {
		queries = append(queries, float32(centre[c]))
	}
	moved := slices.Clone(queries) // the centre, a few components one float32 step away
	for c := 3; c < dim; c += 101 {
		moved[c] = math.Nextafter32(moved[c], float32(math.Inf(1)))
	}
	queries = append(queries, moved...)
	nq := len(queries) / dim
	kerneltest.Each(t, func(t *testing.T) {
		for _, k := range []int{1, 10, 57, 200} {
			for j := range nq {
				q := queries[j*dim : (j+1)*dim]
				want, err := knn.Search(data, dim, q, k, knn.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if k > 1 && want[k-1].Distance-want[0].Distance > 1e-5*want[0].Distance {
					t.Fatalf("query %d, k %d: distances %v to %v are not near-ties", j, k, want[0].Distance, want[k-1].Distance)
				}
				for _, workers := range []int{1, 2} {
					got, _, err := Search(data, dim, sec, q, Request{K: k, MaxDistance: NoLimit, Scan: Pruned, Workers: workers})
					if err != nil {
						t.Fatal(err)
					}
					sameResults(t, fmt.Sprintf("query %d, k %d, %d workers", j, k, workers), got, want)
				}
			}
		}
	})
}
