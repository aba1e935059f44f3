package collection

import (
	"encoding/binary"
	"errors"
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

func mustWriter(t *testing.T, path string, create *NewBase) *Writer {
	t.Helper()
	w, err := OpenWriter(path, create)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func rowsOf(r *rand.Rand, prefix string, n int, size int64) []Row {
	var out []Row
	for i := range n {
		out = append(out, Row{ID: fmt.Sprintf("%s%02d.jpg", prefix, i), Vector: randomVector(r), State: FileState{Size: size + int64(i), MtimeNS: 5}})
	}
	return out
}

func wantOf(rows ...[]Row) map[string][]float32 {
	m := map[string][]float32{}
	for _, rs := range rows {
		for _, r := range rs {
			m[r.ID] = r.Vector
		}
	}
	return m
}

func logSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(LogPath(path))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// offered checks that w offers every row of rows for reuse, with its vector.
func offered(t *testing.T, w *Writer, rows []Row) {
	t.Helper()
	for _, a := range rows {
		got, ok := w.Reused(a.ID, a.State.Size, a.State.MtimeNS)
		if !ok || !slices.Equal(got.Vector, a.Vector) {
			t.Fatalf("the row %q embedded by an interrupted call is not offered for reuse any more", a.ID)
		}
	}
}

// TestReuseSurvivesLaterCalls interrupts a call after it appended rows, then runs the calls that
// used to lose them (a refused call that writes nothing, a compaction, a call that appends other
// records and dies, one that commits other rows), and checks after each that the collection
// holds the committed rows only and that the interrupted call's rows are still offered; then
// that a call which takes them commits them.
func TestReuseSurvivesLaterCalls(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	path := filepath.Join(t.TempDir(), "c.simidx")
	base := rowsOf(r, "base", 6, 100)
	w := mustWriter(t, path, &NewBase{Dim: testDim})
	must(t, w.Apply(Batch{Add: base}))
	must(t, w.Commit())
	must(t, w.Close())
	want := wantOf(base)

	// A call that embeds two batches and is killed.
	work := rowsOf(r, "work", 8, 200)
	w = mustWriter(t, path, nil)
	must(t, w.Apply(Batch{Delete: []string{"base00.jpg"}}))
	must(t, w.Apply(Batch{Add: work[:4]}))
	must(t, w.Apply(Batch{Add: work[4:]}))
	w.Close()
	checkView(t, path, want, r)
	size := logSize(t, path)

	// remove of an absent id: refused, nothing written.
	w = mustWriter(t, path, nil)
	offered(t, w, work)
	if err := w.Apply(Batch{Delete: []string{"nosuch.jpg"}}); err == nil {
		t.Fatal("a delete of an absent id was accepted")
	}
	w.Close()
	if got := logSize(t, path); got != size {
		t.Fatalf("a refused call changed the log from %d to %d bytes", size, got)
	}

	// An update whose first step (deletions) is durable, then dies (a model that does not load).
	w = mustWriter(t, path, nil)
	offered(t, w, work)
	must(t, w.Apply(Batch{Delete: []string{"base01.jpg"}}))
	w.Close()
	checkView(t, path, want, r)

	// compact: the rows are carried into the new base's log.
	w = mustWriter(t, path, nil)
	offered(t, w, work)
	must(t, w.Compact())
	offered(t, w, work)
	w.Close()
	checkView(t, path, want, r)
	w = mustWriter(t, path, nil)
	offered(t, w, work)
	if w.ReusableRows() != len(work) {
		t.Fatalf("%d rows offered after compaction, want %d", w.ReusableRows(), len(work))
	}

	// A call that commits something else.
	other := rowsOf(r, "other", 3, 300)
	must(t, w.Apply(Batch{Add: other}))
	must(t, w.Commit())
	w.Close()
	want = wantOf(base, other)
	checkView(t, path, want, r)

	// A call that takes half of them and dies, then one that takes them all and commits.
	w = mustWriter(t, path, nil)
	offered(t, w, work)
	var took []Row
	for _, a := range work[:4] {
		row, _ := w.Reused(a.ID, a.State.Size, a.State.MtimeNS)
		took = append(took, row)
	}
	must(t, w.Apply(Batch{Add: took}))
	w.Close()
	w = mustWriter(t, path, nil)
	offered(t, w, work)
	took = took[:0]
	for _, a := range work {
		row, _ := w.Reused(a.ID, a.State.Size, a.State.MtimeNS)
		took = append(took, row)
	}
	must(t, w.Apply(Batch{Add: took}))
	must(t, w.Commit())
	if w.ReusableRows() != 0 {
		t.Fatalf("%d rows still offered after they were committed", w.ReusableRows())
	}
	w.Close()
	want = wantOf(base, other, work)
	checkView(t, path, want, r)
	w = mustWriter(t, path, nil)
	if w.ReusableRows() != 0 {
		t.Fatalf("%d committed rows offered for reuse", w.ReusableRows())
	}

	// Forgotten rows are not carried over by a compaction.
	extra := rowsOf(r, "extra", 2, 400)
	must(t, w.Apply(Batch{Add: extra}))
	w.Close()
	w = mustWriter(t, path, nil)
	offered(t, w, extra)
	w.ForgetReusable(func(id string, _, _ int64) bool { return id != extra[0].ID })
	must(t, w.Compact())
	w.Close()
	w = mustWriter(t, path, nil)
	defer w.Close()
	if _, ok := w.Reused(extra[0].ID, extra[0].State.Size, extra[0].State.MtimeNS); ok || w.ReusableRows() != 1 {
		t.Fatalf("after forgetting one of two rows and compacting: %d offered, the forgotten one too: %v", w.ReusableRows(), ok)
	}
	offered(t, w, extra[1:])
}

// commitRows commits one call per group of rows.
func commitRows(t *testing.T, path string, groups ...[]Row) {
	t.Helper()
	for _, g := range groups {
		w := mustWriter(t, path, nil)
		must(t, w.Apply(Batch{Add: g}))
		must(t, w.Commit())
		w.Close()
	}
}

// TestDamagedLog flips a byte of a committed record and checks that readers, Verify and writers
// report it, naming the file and the offset, and that nothing is cut; while torn or damaged bytes
// after the last commit (an interrupted append) are a tail that readers ignore and the next writer
// cuts.
func TestDamagedLog(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	dir := t.TempDir()
	path := filepath.Join(dir, "c.simidx")
	mustWriter(t, path, &NewBase{Dim: testDim}).Close()
	a, b, c := rowsOf(r, "a", 3, 10), rowsOf(r, "b", 3, 20), rowsOf(r, "c", 3, 30)
	commitRows(t, path, a, b, c)
	good, err := os.ReadFile(LogPath(path))
	must(t, err)

	damaged := slices.Clone(good)
	damaged[logHeaderSize+recordHead+20] ^= 0x10 // inside the first add record
	must(t, os.WriteFile(LogPath(path), damaged, 0o644))
	openErr := func() error {
		v, err := Open(path)
		if err == nil {
			v.Release()
		}
		return err
	}
	writerErr := func() error {
		w, err := OpenWriter(path, nil)
		if err == nil {
			w.Close()
		}
		return err
	}
	_, verifyErr := Verify(path)
	for name, err := range map[string]error{"open": openErr(), "verify": verifyErr, "writer": writerErr()} {
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), LogPath(path)) || !strings.Contains(err.Error(), fmt.Sprintf("byte %d", logHeaderSize)) {
			t.Errorf("%s of a log damaged at byte %d: %v", name, logHeaderSize, err)
		}
	}
	if now, _ := os.ReadFile(LogPath(path)); !slices.Equal(now, damaged) {
		t.Fatal("the damaged log was changed")
	}

	// A damaged length field: the same.
	damaged = slices.Clone(good)
	binary.LittleEndian.PutUint32(damaged[logHeaderSize:], 1<<29)
	must(t, os.WriteFile(LogPath(path), damaged, 0o644))
	if _, err := Verify(path); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "byte 64") {
		t.Errorf("a damaged record length: %v", err)
	}

	// Torn tails: the committed state opens, and the next writer appends after the intact records.
	for name, tail := range map[string]func([]byte) []byte{
		"garbage appended": func(b []byte) []byte { return append(b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12) },
		"half a record":    func(b []byte) []byte { return append(b, record(deleteBody([]string{"a00.jpg"}))[:11]...) },
		"a bad uncommitted record": func(b []byte) []byte {
			rec := record(deleteBody([]string{"a00.jpg"}))
			rec[len(rec)-1] ^= 1
			return append(b, rec...)
		},
	} {
		must(t, os.WriteFile(LogPath(path), tail(slices.Clone(good)), 0o644))
		checkView(t, path, wantOf(a, b, c), r)
		rep, err := Verify(path)
		if err != nil || rep.Torn == 0 {
			t.Fatalf("%s: verify %+v, %v", name, rep, err)
		}
		d := rowsOf(r, "d", 2, 40)
		commitRows(t, path, d)
		checkView(t, path, wantOf(a, b, c, d), r)
		if rep, err := Verify(path); err != nil || rep.Torn != 0 {
			t.Fatalf("%s: after the next writer: %+v, %v", name, rep, err)
		}
	}
}

// basePCA writes a base of rows (sorted by id) whose PCA section has the given rank (0: none).
func basePCA(t *testing.T, path string, dim int, rows []Row, rank int) {
	t.Helper()
	writeBase(t, path, dim, rows, index.Meta{SortedIDs: true}, rank, prune.Version)
}

// writeBase writes a base of rows in their order, with meta, and a PCA section of the given rank
// (0: none) in section version secVersion (prune.Version, or 1: the layout before packing).
func writeBase(t *testing.T, path string, dim int, rows []Row, meta index.Meta, rank, secVersion int) {
	t.Helper()
	iw, err := index.Create(path, dim, false)
	must(t, err)
	iw.SetMeta(meta)
	var ids []string
	var data []float32
	for _, r := range rows {
		ids, data = append(ids, r.ID), append(data, r.Vector...)
	}
	must(t, iw.Append(ids, data))
	if rank > 0 {
		sec, err := prune.Build(data, dim, rank)
		must(t, err)
		if secVersion == 1 {
			iw.AddSection(index.SectionPCA, 1, encodeV1(sec))
		} else {
			iw.AddSection(index.SectionPCA, prune.Version, sec.Encode())
		}
	}
	must(t, iw.Commit())
}

// encodeV1 encodes sec in PCA section version 1 (FORMAT.md): the same header, mean and
// components as version 2, then every row's signature after the other.
func encodeV1(s *prune.Section) []byte {
	pad64 := func(n int) int { return (n + 63) &^ 63 }
	b := s.Basis
	rows := 64 + pad64(4*b.Dim) + pad64(4*b.Rank*b.Dim)
	out := slices.Clone(s.Encode()[:rows])
	sig := make([]float32, b.Width())
	for r := range s.Count() {
		s.Signature(r, sig)
		out = appendFloats(out, sig)
	}
	return out
}

func wideRows(r *rand.Rand, prefix string, n, dim int) []Row {
	var out []Row
	for i := range n {
		v := make([]float32, dim)
		for c := range v {
			v[c] = float32(r.NormFloat64() / float64(1+c)) // decaying variance: PCA has structure
		}
		out = append(out, Row{ID: fmt.Sprintf("%s%04d", prefix, i), Vector: v, State: FileState{Size: int64(i + 1)}})
	}
	return out
}

// TestAddedRowsSignatures checks that the rows a log adds carry signatures on the base's basis:
// stored by the writer, equal to those computed from the rows, checked by Verify (a stored
// signature that is off fails it), and that a pruned search over the updated collection answers
// as the full scan.
func TestAddedRowsSignatures(t *testing.T) {
	const dim = 24
	r := rand.New(rand.NewPCG(9, 10))
	path := filepath.Join(t.TempDir(), "c.simidx")
	base := wideRows(r, "base", 300, dim)
	basePCA(t, path, dim, base, 5)
	added := wideRows(r, "new", 40, dim)
	commitRows(t, path, added[:17], added[17:])

	v, err := Open(path)
	must(t, err)
	if v.addPCA == nil || v.addPCA.Basis != v.pca.Basis {
		t.Fatal("the added rows have no signatures on the base's basis")
	}
	w := v.pca.Basis.Width()
	want := make([]float32, len(v.addIDs)*w)
	norm := v.pca.Basis.ProjectRows(v.added, want)
	got := make([]float32, len(want))
	for i := range v.addIDs {
		v.addPCA.Signature(i, got[i*w:(i+1)*w])
	}
	if v.addPCA.Count() != len(v.addIDs) || !slices.Equal(got, want) || v.addPCA.MaxNorm < norm {
		t.Fatalf("stored signatures differ from computed ones (max norm %g, computed %g)", v.addPCA.MaxNorm, norm)
	}
	all := wantOf(base, added)
	for range 10 {
		q := wideRows(r, "q", 1, dim)[0].Vector
		for _, k := range []int{1, 5, 50} {
			full, _, err := v.Search(q, prune.Request{K: k, MaxDistance: prune.NoLimit, Scan: prune.Full})
			must(t, err)
			pruned, _, err := v.Search(q, prune.Request{K: k, MaxDistance: prune.NoLimit, Scan: prune.Pruned})
			must(t, err)
			if !slices.Equal(full[0], pruned[0]) || !slices.Equal(full[0], bruteForce(all, q, k)) {
				t.Fatalf("k=%d: pruned %v, full %v", k, pruned[0], full[0])
			}
		}
	}
	_, st, err := prune.SearchBatch(v.added, dim, v.addPCA, added[3].Vector, prune.Request{K: 1, MaxDistance: prune.NoLimit, Scan: prune.Pruned})
	if err != nil || st[0].Path != "pruned" || st[0].Visited >= len(added) {
		t.Fatalf("pruned search of the added rows: %+v, %v", st, err)
	}
	v.Release()
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}

	// A stored signature off by 1 (its record's checksum made to match): Verify fails.
	b, err := os.ReadFile(LogPath(path))
	must(t, err)
	body := b[logHeaderSize+recordHead:]
	n := binary.LittleEndian.Uint32(b[logHeaderSize:])
	body = body[:n]
	sig := 1 + 4 + 4 + 8 + 4 + len(added[0].ID) + stateSize + 4*dim // row 0's first signature value
	binary.LittleEndian.PutUint32(body[sig:], math.Float32bits(math.Float32frombits(binary.LittleEndian.Uint32(body[sig:]))+1))
	binary.LittleEndian.PutUint32(b[logHeaderSize+4:], crc32.Checksum(body, castagnoli))
	must(t, os.WriteFile(LogPath(path), b, 0o644))
	if _, err := Verify(path); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("verify of a log with a wrong signature: %v", err)
	}
}

// v1Log writes a version-1 log for the base at path: one add record of rows and a commit.
func v1Log(t *testing.T, path string, dim int, rows []Row) {
	t.Helper()
	ix, err := index.Open(path)
	must(t, err)
	h := logHeader(dim, identityOf(ix.Header()))
	ix.Close()
	binary.LittleEndian.PutUint32(h[8:], 1)
	binary.LittleEndian.PutUint32(h[60:], crc32.Checksum(h[:60], castagnoli))
	body := []byte{recAdd}
	body = binary.LittleEndian.AppendUint32(body, uint32(len(rows)))
	var st [stateSize]byte
	for _, r := range rows {
		body = appendID(body, r.ID)
		putState(st[:], r.State)
		body = append(body, st[:]...)
		body = appendFloats(body, r.Vector)
	}
	b := append(h, record(body)...)
	b = append(b, record(commitBody(1, 0))...)
	must(t, os.WriteFile(LogPath(path), b, 0o644))
}

// TestVersion1Log checks that a log written by the previous version opens (its rows get
// signatures computed at open) and that the first writer to append upgrades it to version 2,
// keeping its records.
func TestVersion1Log(t *testing.T) {
	const dim = 24
	r := rand.New(rand.NewPCG(11, 12))
	path := filepath.Join(t.TempDir(), "c.simidx")
	base := wideRows(r, "base", 200, dim)
	basePCA(t, path, dim, base, 4)
	old := wideRows(r, "old", 9, dim)
	v1Log(t, path, dim, old)
	check := func(want map[string][]float32) {
		t.Helper()
		v, err := Open(path)
		must(t, err)
		defer v.Release()
		if v.addPCA == nil {
			t.Fatal("no signatures for a version-1 log's rows")
		}
		for range 5 {
			q := wideRows(r, "q", 1, dim)[0].Vector
			res, _, err := v.Search(q, prune.Request{K: 8, MaxDistance: prune.NoLimit, Scan: prune.Pruned})
			must(t, err)
			if !slices.Equal(res[0], bruteForce(want, q, 8)) {
				t.Fatalf("pruned search: %v, want %v", res[0], bruteForce(want, q, 8))
			}
		}
		rep, err := Verify(path)
		if err != nil || rep.Rows != len(want) {
			t.Fatalf("verify: %+v, %v", rep, err)
		}
	}
	check(wantOf(base, old))
	more := wideRows(r, "more", 3, dim)
	commitRows(t, path, more)
	rep, err := Verify(path)
	if err != nil || rep.Version != LogVersion || rep.Commits != 2 {
		t.Fatalf("after a writer appended to a version-1 log: %+v, %v", rep, err)
	}
	check(wantOf(base, old, more))
}

// TestCompactKeepsRank checks the rank of the PCA section a compaction writes (FORMAT.md,
// "Writers"): the old section's rank when it reads it (either version); none for a version-2 base
// with rows written without one; the default rank for an empty base, a version-1 file, and a
// section it cannot use (damaged, or of an unknown version); and none when no row is left.
func TestCompactKeepsRank(t *testing.T) {
	const dim = 40
	r := rand.New(rand.NewPCG(13, 14))
	dir := t.TempDir()
	// rankAfter applies b (5 rows added when empty), compacts and returns the new section's rank.
	rankAfter := func(path string, b Batch) int {
		t.Helper()
		if len(b.Add)+len(b.Delete) == 0 {
			b.Add = wideRows(r, "added", 5, dim)
		}
		w := mustWriter(t, path, nil)
		must(t, w.Apply(b))
		must(t, w.Commit())
		must(t, w.Compact())
		w.Close()
		ix, err := index.Open(path)
		must(t, err)
		defer ix.Close()
		sec, err := prune.FromIndex(ix)
		must(t, err)
		if _, err := Verify(path); err != nil {
			t.Fatal(err)
		}
		if sec == nil {
			return 0
		}
		return sec.Basis.Rank
	}
	base := wideRows(r, "base", 50, dim)
	for _, c := range []struct {
		rank, secVersion, want int
	}{{3, prune.Version, 3}, {3, 1, 3}, {0, 0, 0}} {
		path := filepath.Join(dir, fmt.Sprintf("r%d-v%d.simidx", c.rank, c.secVersion))
		writeBase(t, path, dim, base, index.Meta{SortedIDs: true}, c.rank, c.secVersion)
		if got := rankAfter(path, Batch{}); got != c.want {
			t.Errorf("a base of rank %d (section version %d) compacted to rank %d, want %d", c.rank, c.secVersion, got, c.want)
		}
	}
	empty := filepath.Join(dir, "empty.simidx")
	mustWriter(t, empty, &NewBase{Dim: dim}).Close()
	if got := rankAfter(empty, Batch{}); got != prune.DefaultRank {
		t.Errorf("an empty base compacted to rank %d, want %d", got, prune.DefaultRank)
	}
	v1 := filepath.Join(dir, "v1.simidx")
	writeBase(t, v1, dim, base, index.Meta{SortedIDs: true}, 0, 0)
	asVersion1File(t, v1)
	if got := rankAfter(v1, Batch{}); got != prune.DefaultRank {
		t.Errorf("a version-1 file compacted to rank %d, want %d", got, prune.DefaultRank)
	}
	// Sections the writer cannot use: bytes that are no PCA section (checksum right), and a
	// section version from the future.
	for name, version := range map[string]uint32{"damaged": prune.Version, "unknown": 99} {
		path := filepath.Join(dir, name+".simidx")
		iw, err := index.Create(path, dim, false)
		must(t, err)
		iw.SetMeta(index.Meta{SortedIDs: true})
		var ids []string
		var data []float32
		for _, row := range base {
			ids, data = append(ids, row.ID), append(data, row.Vector...)
		}
		must(t, iw.Append(ids, data))
		iw.AddSection(index.SectionPCA, version, make([]byte, 64))
		must(t, iw.Commit())
		if got := rankAfter(path, Batch{}); got != prune.DefaultRank {
			t.Errorf("a base with a %s PCA section compacted to rank %d, want %d", name, got, prune.DefaultRank)
		}
	}
	// No row left: no section (there is nothing to fit).
	gone := filepath.Join(dir, "gone.simidx")
	basePCA(t, gone, dim, base[:2], 3)
	if got := rankAfter(gone, Batch{Delete: []string{base[0].ID, base[1].ID}}); got != 0 {
		t.Errorf("a base whose rows are all deleted compacted to a section of rank %d", got)
	}
}
