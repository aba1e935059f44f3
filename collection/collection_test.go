package collection

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"simsearch/index"
	"simsearch/kernel"
	"simsearch/prune"
)

const testDim = 8

// randomVector has small integer components, so that distances tie often and the tie order
// (by id) is exercised.
func randomVector(r *rand.Rand) []float32 {
	v := make([]float32, testDim)
	for i := range v {
		v[i] = float32(r.IntN(3))
	}
	return v
}

// bruteForce is the answer of a fresh build whose rows are sorted by id: all rows ordered by
// (squared distance, id).
func bruteForce(rows map[string][]float32, q []float32, k int) []Result {
	type c struct {
		id string
		d  float32
	}
	var cs []c
	for id, v := range rows {
		cs = append(cs, c{id, kernel.L2Squared(q, v)})
	}
	slices.SortFunc(cs, func(a, b c) int { return cmp.Or(cmp.Compare(a.d, b.d), strings.Compare(a.id, b.id)) })
	var out []Result
	for _, x := range cs[:min(k, len(cs))] {
		out = append(out, Result{x.id, float32(math.Sqrt(float64(x.d)))})
	}
	return out
}

// sawPCA records that some checked view had a PCA section (written by compaction), so that the
// pruned path was checked too; sawAddedPCA that its added rows were pruned as well.
var sawPCA, sawAddedPCA bool

func checkView(t *testing.T, path string, want map[string][]float32, r *rand.Rand) {
	t.Helper()
	v, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release()
	if v.Len() != len(want) {
		t.Fatalf("view has %d rows, want %d", v.Len(), len(want))
	}
	got := map[string][]float32{}
	if err := v.Each(func(id string, _ FileState, vec []float32) error {
		got[id] = slices.Clone(vec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Fatalf("row %q is %v, want %v", id, got[id], w)
		}
		if vec, ok, err := v.Vector(id); err != nil || !ok || !slices.Equal(vec, w) {
			t.Fatalf("Vector(%q) = %v, %v, %v; want %v", id, vec, ok, err, w)
		}
	}
	if _, ok, err := v.Vector("no such id"); ok || err != nil {
		t.Fatalf("Vector of an unknown id: ok %v, err %v", ok, err)
	}
	rows, idOf, err := v.Rows()
	if err != nil || len(rows) != len(want)*v.Dim() {
		t.Fatalf("Rows: %d floats, %v; want %d", len(rows), err, len(want)*v.Dim())
	}
	for r := range len(want) {
		id, err := idOf(r)
		if err != nil || !slices.Equal(rows[r*v.Dim():(r+1)*v.Dim()], want[id]) {
			t.Fatalf("Rows: row %d (%q, %v) is not that id's vector", r, id, err)
		}
	}
	if len(want) == 0 {
		return
	}
	for range 5 {
		q := randomVector(r)
		exp := bruteForce(want, q, 7)
		// Every scan: the base's PCA section (written by compaction) is used by the pruned one.
		for _, scan := range []prune.Scan{prune.Auto, prune.Full, prune.Pruned} {
			res, st, err := v.Search(q, prune.Request{K: 7, MaxDistance: prune.NoLimit, Scan: scan})
			if err != nil {
				t.Fatal(err)
			}
			if scan == prune.Pruned && v.pca != nil && v.base.Len() > v.deleted && st[0].Path != "pruned" {
				t.Fatalf("a forced pruned search of a base with a PCA section took the %q path", st[0].Path)
			}
			if v.pca != nil {
				sawPCA = true
			}
			if v.pca != nil && len(v.addIDs) > 0 {
				// The added rows have signatures on the base's basis, and a pruned search of
				// them takes the pruned path.
				if v.addPCA == nil {
					t.Fatal("a view whose base has a PCA section holds its added rows without signatures")
				}
				_, ast, err := prune.SearchBatch(v.added, v.Dim(), v.addPCA, q, prune.Request{K: 7, MaxDistance: prune.NoLimit, Scan: prune.Pruned})
				if err != nil || ast[0].Path != "pruned" {
					t.Fatalf("pruned search of the added rows: %v, %v", ast, err)
				}
				sawAddedPCA = true
			}
			if !slices.Equal(res[0], exp) {
				t.Fatalf("query %v, scan %v:\n got %v\nwant %v", q, scan, res[0], exp)
			}
		}
		// A range: everything within the 4th distance, the same rows as the top 4 or more.
		d := float64(exp[min(3, len(exp)-1)].Distance)
		res, _, err := v.Search(q, prune.Request{MaxDistance: d, Scan: prune.Pruned})
		if err != nil || len(res[0]) < min(4, len(exp)) || !slices.Equal(res[0][:min(4, len(exp))], exp[:min(4, len(exp))]) {
			t.Fatalf("range %v of query %v: %v, %v; want it to start with %v", d, q, res, err, exp[:min(4, len(exp))])
		}
		for _, h := range res[0] {
			if float64(h.Distance) > d {
				t.Fatalf("range %v returned %v", d, h)
			}
		}
	}
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}
}

// TestRandomChanges applies random additions, deletions and replacements, committed or
// abandoned (a crash), with compactions in between, and checks after each step that the
// collection holds exactly the committed rows and answers queries as a fresh build would, and
// that every abandoned row is offered for reuse until a call adds it: by the next writer, by
// writers after it that did other things, across compactions.
func TestRandomChanges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(t.TempDir(), "c.simidx")
	want := map[string][]float32{}
	wantState := map[string]FileState{}
	abandoned := map[reuseKey]Row{} // rows of calls that did not commit
	w, err := OpenWriter(path, &NewBase{Dim: testDim})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	next := 0
	for step := range 60 {
		w, err := OpenWriter(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkReusable(t, w, abandoned, wantState)
		pending, pendingState := maps(want), mapsOf(wantState)
		var appended []Row
		taken := map[string]bool{}
		for range 1 + r.IntN(3) {
			var b Batch
			ids := keys(pending)
			for _, id := range ids {
				if taken[id] {
					continue // a reused row stays, so that the call's commit adds it
				}
				switch r.IntN(6) {
				case 0:
					b.Delete = append(b.Delete, id)
					delete(pending, id)
					delete(pendingState, id)
				case 1: // replaced: a changed file
					b.Delete = append(b.Delete, id)
					v := randomVector(r)
					next++
					b.Add = append(b.Add, Row{ID: id, Vector: v, State: FileState{Size: int64(next)}})
					pending[id], pendingState[id] = v, FileState{Size: int64(next)}
				}
			}
			for range r.IntN(12) {
				id := fmt.Sprintf("img%03d.jpg", next)
				next++
				v := randomVector(r)
				b.Add = append(b.Add, Row{ID: id, Vector: v, State: FileState{Size: int64(next), MtimeNS: 7}})
				pending[id], pendingState[id] = v, FileState{Size: int64(next), MtimeNS: 7}
			}
			// Now and then a row an abandoned call embedded, as update would take it.
			for _, k := range sortedKeys(abandoned) {
				a := abandoned[k]
				if s, live := wantState[k.id]; live && s == a.State {
					continue // in the collection: not offered
				}
				if _, present := pending[k.id]; !present && r.IntN(3) == 0 {
					row, ok := w.Reused(k.id, k.size, k.mtime)
					if !ok {
						t.Fatalf("step %d: abandoned row %q not offered", step, k.id)
					}
					b.Add = append(b.Add, row)
					pending[k.id], pendingState[k.id] = a.Vector, a.State
					taken[k.id] = true
				}
			}
			if err := w.Apply(b); err != nil {
				t.Fatal(err)
			}
			appended = append(appended, b.Add...)
		}
		switch step % 5 {
		case 4: // crash: nothing committed
			w.Close()
			for _, a := range appended {
				abandoned[reuseKey{a.ID, a.State.Size, a.State.MtimeNS}] = a
			}
		default:
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			want, wantState = pending, pendingState
			if step%7 == 6 {
				if err := w.Compact(); err != nil {
					t.Fatal(err)
				}
				// Compaction carries over the rows that are not in the collection; the others
				// are in the new base, and the log that held them is gone.
				for k, a := range abandoned {
					if s, live := wantState[k.id]; live && s == a.State {
						delete(abandoned, k)
					}
				}
				checkReusable(t, w, abandoned, wantState)
			}
			w.Close()
		}
		checkView(t, path, want, r)
	}
	if !sawPCA {
		t.Error("no compacted base had a PCA section: the pruned path was never checked")
	}
	if !sawAddedPCA {
		t.Error("no view pruned its added rows")
	}
}

// checkReusable checks that w offers for reuse exactly the abandoned rows that the collection
// does not hold (with that file state: a row taken for reuse and replaced since is offered again).
func checkReusable(t *testing.T, w *Writer, abandoned map[reuseKey]Row, live map[string]FileState) {
	t.Helper()
	n := 0
	for k, a := range abandoned {
		row, ok := w.Reused(k.id, k.size, k.mtime)
		if s, in := live[k.id]; in && s == a.State {
			if ok {
				t.Fatalf("the row %q, in the collection, is offered for reuse", k.id)
			}
			continue
		}
		n++
		if !ok || !slices.Equal(row.Vector, a.Vector) || row.State != a.State {
			t.Fatalf("the abandoned row %q is not offered for reuse (%v)", k.id, ok)
		}
	}
	if w.ReusableRows() != n {
		t.Fatalf("%d rows offered for reuse, %d abandoned rows are not in the collection", w.ReusableRows(), n)
	}
}

func sortedKeys(m map[reuseKey]Row) []reuseKey {
	ks := make([]reuseKey, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b reuseKey) int {
		return cmp.Or(strings.Compare(a.id, b.id), cmp.Compare(a.size, b.size), cmp.Compare(a.mtime, b.mtime))
	})
	return ks
}

func mapsOf(m map[string]FileState) map[string]FileState {
	out := make(map[string]FileState, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func maps(m map[string][]float32) map[string][]float32 {
	out := make(map[string][]float32, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func keys(m map[string][]float32) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestWriterRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.simidx")
	w, err := OpenWriter(path, &NewBase{Dim: testDim})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := OpenWriter(path, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second writer: %v, want ErrLocked", err)
	}
	v := make([]float32, testDim)
	if err := w.Apply(Batch{Add: []Row{{ID: "a", Vector: v}}}); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]Batch{
		"duplicate":  {Add: []Row{{ID: "a", Vector: v}}},
		"absent":     {Delete: []string{"b"}},
		"short":      {Add: []Row{{ID: "c", Vector: v[:3]}}},
		"nan":        {Add: []Row{{ID: "d", Vector: append(v[:testDim-1:testDim-1], float32(math.NaN()))}}},
		"empty id":   {Add: []Row{{ID: "", Vector: v}}},
		"touch gone": {Touch: []Touch{{ID: "zz"}}},
	} {
		if err := w.Apply(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestStaleLog checks that a log written against an older base is ignored by readers, reported
// by Verify, and replaced by the next writer.
func TestStaleLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.simidx")
	w, err := OpenWriter(path, &NewBase{Dim: testDim})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(Batch{Add: []Row{{ID: "a", Vector: make([]float32, testDim)}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	log, err := os.ReadFile(LogPath(path))
	if err != nil {
		t.Fatal(err)
	}
	// Another base at the same path: the old log's identity does not match it.
	iw, err := index.Create(path, testDim, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := iw.Append([]string{"x", "y"}, make([]float32, 2*testDim)); err != nil {
		t.Fatal(err)
	}
	if err := iw.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(LogPath(path), log, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 2 {
		t.Fatalf("stale log applied: %d rows", v.Len())
	}
	v.Release()
	rep, err := Verify(path)
	if err != nil || !rep.Stale {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	damaged := slices.Clone(log)
	damaged[20] ^= 1
	if err := os.WriteFile(LogPath(path), damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); !errors.Is(err, ErrFormat) {
		t.Fatalf("damaged header: %v", err)
	}
}
