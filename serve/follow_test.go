package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"simsearch/collection"
	"simsearch/prune"
	"simsearch/query"
)

// TestFollowsUpdates commits rows to the served collection (and compacts it once) while clients
// keep searching: every request is answered, each answer is the collection's answer before or
// after some commit (never a mix), and the last answers see the last commit.
func TestFollowsUpdates(t *testing.T) {
	data, err := os.ReadFile(testIndex(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.simidx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := query.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.LoadModel(query.ModelRequest{}); err != nil {
		t.Fatal(err)
	}
	srv, err := New(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, 10*time.Second) }()
	defer func() { cancel(); <-done }()

	// The query is near a base row; commit i adds "new-i" nearer to it than everything before.
	v := s.Index()
	dim := v.Dim()
	q := slices.Clone(v.Base().Row(0))
	q[1] += 0.5 // the new rows, nearer than that, come first
	const k, commits = 5, 12
	base, _, err := s.Search(q, query.Request{K: k, MaxDistance: prune.NoLimit})
	if err != nil {
		t.Fatal(err)
	}
	expected := func(j int) []string { // after j commits
		var ids []string
		for i := j - 1; i >= 0 && len(ids) < k; i-- {
			ids = append(ids, fmt.Sprintf("new-%02d", i))
		}
		for _, h := range base[0] {
			if len(ids) < k {
				ids = append(ids, h.ID)
			}
		}
		return ids
	}
	body, _ := json.Marshal(map[string][]float32{"vector": q})

	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 100)
	seen := make([]map[int]bool, 4)
	for c := range seen {
		seen[c] = map[int]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(fmt.Sprintf("%s/search/vector?k=%d", "http://"+ln.Addr().String(), k), "application/json", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				var r response
				json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
				var ids []string
				for _, h := range r.Results {
					ids = append(ids, h.ID)
				}
				j := 0
				for ; j <= commits && !slices.Equal(ids, expected(j)); j++ {
				}
				if j > commits {
					errs <- fmt.Errorf("answer %v is no committed state's", ids)
					return
				}
				seen[c][j] = true
			}
		}()
	}
	for i := range commits {
		w, err := collection.OpenWriter(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		row := slices.Clone(q)
		row[0] += float32(commits-i) * 1e-3
		if err := w.Apply(collection.Batch{Add: []collection.Row{{ID: fmt.Sprintf("new-%02d", i), Vector: row}}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if i == commits/2 {
			if err := w.Compact(); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
		if moved, err := s.Refresh(); err != nil || !moved {
			t.Fatalf("commit %d: refresh moved=%v, %v", i, moved, err)
		}
	}
	if got := s.Index().Len(); got != 8+commits || dim != s.Index().Dim() {
		t.Fatalf("after %d commits the server sees %d rows", commits, got)
	}
	// Each client's next answer sees the last commit.
	for range 3 {
		res, _, err := s.Search(q, query.Request{K: k, MaxDistance: prune.NoLimit})
		if err != nil || res[0][0].ID != fmt.Sprintf("new-%02d", commits-1) {
			t.Fatalf("after the last commit: %v, %v", res, err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	states := map[int]bool{}
	for _, m := range seen {
		for j := range m {
			states[j] = true
		}
	}
	t.Logf("clients saw %d of the %d states", len(states), commits+1)
}

// TestDupesFollowUpdates asks for the duplicate groups, removes one photo of a group (as
// `simsearch remove` does) and adds a copy of another, and asks again once the server has moved
// to the new state: the groups are those of the new state, not the ones computed before.
func TestDupesFollowUpdates(t *testing.T) {
	data, err := os.ReadFile(testIndex(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.simidx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startIndex(t, path, Options{ThumbDir: t.TempDir()})
	groups := func() [][]string {
		t.Helper()
		var body dupesBody
		if code := getJSON(t, ts.url+"/dupes", &body); code != 200 {
			t.Fatalf("/dupes: %d %s", code, body.Error)
		}
		var out [][]string
		for _, g := range body.Groups {
			out = append(out, sorted(g.IDs))
		}
		slices.SortFunc(out, slices.Compare)
		return out
	}
	want := [][]string{{"coffee.png", "coffee_cmyk.jpg"}, {"elephants.jpg", "elephants_toned.jpg"}}
	if got := groups(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("before: %v, want %v", got, want)
	}
	storm, err := ts.s.Vector("storm.jpg")
	if err != nil {
		t.Fatal(err)
	}
	storm[0] += 0.01
	w, err := collection.OpenWriter(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(collection.Batch{Delete: []string{"coffee_cmyk.jpg"}, Add: []collection.Row{{ID: "storm copy.jpg", Vector: storm}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if moved, err := ts.s.Refresh(); err != nil || !moved {
		t.Fatalf("refresh: moved=%v, %v", moved, err)
	}
	want = [][]string{{"elephants.jpg", "elephants_toned.jpg"}, {"storm copy.jpg", "storm.jpg"}}
	if got := groups(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("after the update: %v, want %v", got, want)
	}
}
