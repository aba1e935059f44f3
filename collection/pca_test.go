package collection

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"simsearch/index"
	"simsearch/prune"
)

// TestAddedRowsRank31 checks the added rows' signatures at convert's default rank, whose width
// (32) is more than a signature's prefix (8 floats), so that the rest block is written, read and
// checked too: on bases with a PCA section of either version, with 1, 15, 16, 17 and 40 added rows
// (a packed group is 16), the stored signatures equal those computed from the rows, the rows
// that pad the last group are zero, pruned and full searches answer as brute force, and Verify
// fails when a value of the rest block is off.
func TestAddedRowsRank31(t *testing.T) {
	const dim = 40
	for _, secVersion := range []int{prune.Version, 1} {
		for _, nadd := range []int{1, 15, 16, 17, 40} {
			t.Run(fmt.Sprintf("section%d/added%d", secVersion, nadd), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(nadd), uint64(secVersion)))
				path := filepath.Join(t.TempDir(), "c.simidx")
				base := wideRows(r, "base", 301, dim)
				writeBase(t, path, dim, base, index.Meta{SortedIDs: true}, prune.DefaultRank, secVersion)
				added := wideRows(r, "new", nadd, dim)
				if nadd > 3 {
					commitRows(t, path, added[:3], added[3:])
				} else {
					commitRows(t, path, added)
				}
				checkAddedSignatures(t, path, wantOf(base, added), r)
				if _, err := Verify(path); err != nil {
					t.Fatal(err)
				}

				// The first added row's coordinate p_(rank−1), in the rest block, off by 0.5 (its
				// record's checksum made to match): Verify fails.
				b, err := os.ReadFile(LogPath(path))
				must(t, err)
				n := binary.LittleEndian.Uint32(b[logHeaderSize:])
				body := b[logHeaderSize+recordHead : logHeaderSize+recordHead+int(n)]
				if body[0] != recAddSig || binary.LittleEndian.Uint32(body[5:]) != prune.DefaultRank+1 {
					t.Fatalf("the first record is of type %d with signatures of %d floats", body[0], binary.LittleEndian.Uint32(body[5:]))
				}
				at := 1 + 4 + 4 + 8 + 4 + len(added[0].ID) + stateSize + 4*dim + 4*(prune.DefaultRank-1)
				x := math.Float32frombits(binary.LittleEndian.Uint32(body[at:]))
				binary.LittleEndian.PutUint32(body[at:], math.Float32bits(x+0.5))
				binary.LittleEndian.PutUint32(b[logHeaderSize+4:], crc32.Checksum(body, castagnoli))
				must(t, os.WriteFile(LogPath(path), b, 0o644))
				if _, err := Verify(path); err == nil || !strings.Contains(err.Error(), "signature") {
					t.Fatalf("verify of a log with a wrong value in a signature's rest: %v", err)
				}
			})
		}
	}
}

// checkAddedSignatures checks the view at path, whose base has a PCA section and whose log adds
// rows, against want (every live row).
func checkAddedSignatures(t *testing.T, path string, want map[string][]float32, r *rand.Rand) {
	t.Helper()
	v, err := Open(path)
	must(t, err)
	defer v.Release()
	if v.pca == nil || v.addPCA == nil || v.addPCA.Basis != v.pca.Basis || v.addPCA.Count() != len(v.addIDs) {
		t.Fatal("the added rows have no signatures on the base's basis")
	}
	dim, w := v.Dim(), v.pca.Basis.Width()
	computed := make([]float32, len(v.addIDs)*w)
	norm := v.pca.Basis.ProjectRows(v.added, computed)
	stored := make([]float32, len(computed))
	for i := range v.addIDs {
		v.addPCA.Signature(i, stored[i*w:(i+1)*w])
	}
	if !slices.Equal(stored, computed) || v.addPCA.MaxNorm < norm {
		t.Fatalf("stored signatures differ from computed ones (max norm %g, computed %g)", v.addPCA.MaxNorm, norm)
	}
	sig := make([]float32, w)
	for p := len(v.addIDs); p%16 != 0; p++ {
		v.addPCA.Signature(p, sig)
		if slices.ContainsFunc(sig, func(x float32) bool { return x != 0 }) {
			t.Fatalf("padding row %d of the added rows' signatures: %v", p, sig)
		}
	}
	for range 10 {
		q := wideRows(r, "q", 1, dim)[0].Vector
		for _, k := range []int{1, 3, 10, 50} {
			req := prune.Request{K: k, MaxDistance: prune.NoLimit, Scan: prune.Full}
			full, _, err := v.Search(q, req)
			must(t, err)
			req.Scan = prune.Pruned
			pruned, st, err := v.Search(q, req)
			must(t, err)
			if st[0].Path != "pruned" || !slices.Equal(full[0], pruned[0]) || !slices.Equal(full[0], bruteForce(want, q, k)) {
				t.Fatalf("k=%d: pruned (%s) %v, full %v", k, st[0].Path, pruned[0], full[0])
			}
			// The added rows alone: pruned on their signatures as the full scan.
			a, _, err := prune.SearchBatch(v.added, dim, v.addPCA, q, req)
			must(t, err)
			req.Scan = prune.Full
			b, _, err := prune.SearchBatch(v.added, dim, nil, q, req)
			must(t, err)
			if !slices.Equal(a[0], b[0]) {
				t.Fatalf("the added rows, k=%d: pruned %v, full %v", k, a[0], b[0])
			}
		}
		top, _, err := v.Search(q, prune.Request{K: 5, MaxDistance: prune.NoLimit, Scan: prune.Full})
		must(t, err)
		d := float64(top[0][4].Distance)
		full, _, err := v.Search(q, prune.Request{MaxDistance: d, Scan: prune.Full})
		must(t, err)
		pruned, _, err := v.Search(q, prune.Request{MaxDistance: d, Scan: prune.Pruned})
		must(t, err)
		if len(full[0]) < 5 || !slices.Equal(full[0], pruned[0]) {
			t.Fatalf("range %v: pruned %v, full %v", d, pruned[0], full[0])
		}
	}
}

// TestCompactWritesBuild checks what compaction.go claims: the PCA section a compaction writes
// (streamed a chunk at a time, on more rows than a chunk and than the fit's sample) is the bytes
// prune.Build writes for the compacted rows at the old section's rank, from a base whose section
// is of either version.
func TestCompactWritesBuild(t *testing.T) {
	const dim, rank = 24, 12
	for _, secVersion := range []int{prune.Version, 1} {
		t.Run(fmt.Sprintf("section%d", secVersion), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, uint64(secVersion)))
			path := filepath.Join(t.TempDir(), "c.simidx")
			base := wideRows(r, "base", compactChunk+500, dim)
			writeBase(t, path, dim, base, index.Meta{SortedIDs: true}, rank, secVersion)
			added := wideRows(r, "new", 33, dim)
			commitRows(t, path, added)
			w := mustWriter(t, path, nil)
			must(t, w.Apply(Batch{Delete: []string{base[5].ID, added[2].ID}}))
			must(t, w.Commit())
			must(t, w.Compact())
			w.Close()
			ix, err := index.Open(path)
			must(t, err)
			defer ix.Close()
			data, ver, ok := ix.Section(index.SectionPCA)
			if !ok || ver != prune.Version || ix.Len() != len(base)+len(added)-2 {
				t.Fatalf("compacted: %d rows, PCA section %v of version %d", ix.Len(), ok, ver)
			}
			sec, err := prune.Build(ix.Vectors(), dim, rank)
			must(t, err)
			if !bytes.Equal(sec.Encode(), data) {
				t.Fatal("the compacted base's PCA section differs from prune.Build's on its rows")
			}
			if _, err := Verify(path); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// asVersion1File rewrites the index file at path, which has no optional section, as format
// version 1 (FORMAT.md: the same bytes but the version and the header CRC, over bytes 0–99).
func asVersion1File(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	if slices.ContainsFunc(b[104:4096], func(c byte) bool { return c != 0 }) {
		t.Fatal("the file has a section table: it has no version-1 form")
	}
	binary.LittleEndian.PutUint32(b[8:], 1)
	binary.LittleEndian.PutUint32(b[100:], crc32.Checksum(b[:100], castagnoli))
	must(t, os.WriteFile(path, b, 0o644))
}

// TestVersion1FileBase checks a collection whose base is a version-1 index file (no sections, so
// no Files or PCA section): a log adds and deletes rows, views and Verify read it, and
// compaction writes a version-2 base with a PCA section of the default rank.
func TestVersion1FileBase(t *testing.T) {
	const dim = 40
	r := rand.New(rand.NewPCG(5, 9))
	path := filepath.Join(t.TempDir(), "c.simidx")
	base := wideRows(r, "base", 50, dim)
	writeBase(t, path, dim, base, index.Meta{SortedIDs: true}, 0, 0)
	asVersion1File(t, path)
	ix, err := index.Open(path)
	must(t, err)
	if ix.FormatVersion() != 1 {
		t.Fatalf("format version %d", ix.FormatVersion())
	}
	ix.Close()
	added := wideRows(r, "new", 5, dim)
	commitRows(t, path, added)
	w := mustWriter(t, path, nil)
	must(t, w.Apply(Batch{Delete: []string{base[3].ID}}))
	must(t, w.Commit())
	w.Close()
	want := wantOf(base, added)
	delete(want, base[3].ID)
	checkWide(t, path, want, r)

	w = mustWriter(t, path, nil)
	must(t, w.Compact())
	w.Close()
	ix, err = index.Open(path)
	must(t, err)
	defer ix.Close()
	sec, err := prune.FromIndex(ix)
	if err != nil || sec == nil || ix.FormatVersion() != 2 || sec.Basis.Rank != prune.DefaultRank {
		t.Fatalf("the compacted version-1 base: format version %d, PCA section %v, %v", ix.FormatVersion(), sec, err)
	}
	checkWide(t, path, want, r)
}

// checkWide checks that the collection at path holds the rows of want (wideRows's, of any dim),
// that every scan answers as brute force, and that it verifies.
func checkWide(t *testing.T, path string, want map[string][]float32, r *rand.Rand) {
	t.Helper()
	v, err := Open(path)
	must(t, err)
	defer v.Release()
	got := map[string][]float32{}
	must(t, v.Each(func(id string, _ FileState, vec []float32) error {
		got[id] = slices.Clone(vec)
		return nil
	}))
	if len(got) != len(want) || v.Len() != len(want) {
		t.Fatalf("%d rows (Len %d), want %d", len(got), v.Len(), len(want))
	}
	for id, vec := range want {
		if !slices.Equal(got[id], vec) {
			t.Fatalf("row %q is %v, want %v", id, got[id], vec)
		}
	}
	for range 5 {
		q := wideRows(r, "q", 1, v.Dim())[0].Vector
		for _, scan := range scans {
			res, _, err := v.Search(q, prune.Request{K: 7, MaxDistance: prune.NoLimit, Scan: scan})
			must(t, err)
			if exp := bruteForce(want, q, 7); !slices.Equal(res[0], exp) {
				t.Fatalf("scan %v: %v, want %v", scan, res[0], exp)
			}
		}
	}
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}
}
