package cluster

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/uuid"

	"simsearch/collection"
	"simsearch/index"
)

// TestDigestRowsLivingCollection checks that a push compares a living collection's current rows:
// its base less the rows the change log deleted, plus those it added, each at its place in the
// id order that Push sends from.
func TestDigestRowsLivingCollection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.simidx")
	w, err := index.Create(path, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]string{"b", "d", "a"}, []float32{2, 0, 4, 0, 1, 0}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	cw, err := collection.OpenWriter(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.Apply(collection.Batch{Delete: []string{"d"}, Add: []collection.Row{{ID: "c", Vector: []float32{3, 0}}}}); err != nil {
		t.Fatal(err)
	}
	if err := cw.Commit(); err != nil {
		t.Fatal(err)
	}
	cw.Close()
	v, err := collection.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release()

	rows, err := digestRows(v)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float32{"a": 1, "b": 2, "c": 3} // id -> its vector's first float
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d (d deleted, c added)", len(rows), len(want))
	}
	byPos := []string{"a", "b", "c"} // the id order
	for i, r := range rows {
		if i > 0 && slices.Compare(rows[i-1].uuid[:], r.uuid[:]) >= 0 {
			t.Errorf("rows not sorted by UUID at %d", i)
		}
		id := byPos[r.pos]
		if uuid.UUID(r.uuid).String() != ObjectUUID(id) || r.digest != vectorDigest([]float32{want[id], 0}) {
			t.Errorf("row at position %d: UUID %x digest %x, want those of %q", r.pos, r.uuid, r.digest, id)
		}
	}
}

// TestDiff checks the comparison of the rows with the cluster's listing: missing and changed
// rows are sent, equal ones are not, objects not among the rows are deleted, and an object
// listed without a digest is sent again.
func TestDiff(t *testing.T) {
	vec := func(x float32) []float32 { return []float32{x, 1} }
	ids := []string{"same", "changed", "missing", "nodigest"}
	var rows []localRow
	for i, id := range ids {
		rows = append(rows, localRow{uuid: uuid.NewSHA1(idSpace, []byte(id)), digest: vectorDigest(vec(float32(i))), pos: uint32(i)})
	}
	slices.SortFunc(rows, func(a, b localRow) int { return slices.Compare(a.uuid[:], b.uuid[:]) })
	u := func(id string) [16]byte { return uuid.NewSHA1(idSpace, []byte(id)) }
	gone := u("gone")
	send, unchanged, deleted, err := diff(rows, func(fn func(u, digest [16]byte, ok bool)) error {
		fn(u("same"), vectorDigest(vec(0)), true)
		fn(u("changed"), vectorDigest(vec(9)), true)
		fn(gone, vectorDigest(vec(5)), true)
		fn(u("nodigest"), vectorDigest(vec(3)), false)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	for i, id := range ids {
		if send[i/64]&(1<<(i%64)) != 0 {
			sent = append(sent, id)
		}
	}
	if !slices.Equal(sent, []string{"changed", "missing", "nodigest"}) || unchanged != 1 || len(deleted) != 1 || deleted[0] != gone {
		t.Errorf("diff: send %v, %d unchanged, delete %x; want changed, missing and nodigest sent, 1 unchanged, gone deleted", sent, unchanged, deleted)
	}
}

// TestSortHitsTies checks the order of a cluster's answer: nearest first, and among equal
// distances the smallest ids, as the local search orders them.
func TestSortHitsTies(t *testing.T) {
	hits := []hit{{"d", 4}, {"c", 1}, {"b", 1}, {"a", 9}, {"e", 1}}
	sortHits(hits)
	var got []string
	for _, h := range hits {
		got = append(got, h.id)
	}
	if !slices.Equal(got, []string{"b", "c", "e", "d", "a"}) {
		t.Errorf("sortHits: %v", got)
	}
	if w := within(hits, 2); len(w) != 4 || w[3].id != "d" {
		t.Errorf("within(2): %v, want the 4 hits at distance ≤ 2", w)
	}
}
