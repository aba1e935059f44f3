package serve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"simsearch/dupes"
	"simsearch/pil"
	"simsearch/prune"
	"simsearch/query"
)

func getJSON(t testing.TB, u string, v any) int {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("%s: status %d, body not JSON: %v", u, res.StatusCode, err)
	}
	return res.StatusCode
}

func photosDir(t testing.TB) string { return filepath.Join(filepath.Dir(testIndex(t)), "photos") }

// TestSearchByIDEqualsVector asks, for every photo of the index, for more like it by id and by
// its stored vector: the answers must be the same.
func TestSearchByIDEqualsVector(t *testing.T) {
	ts := start(t, Options{ThumbDir: t.TempDir()})
	ix := ts.s.Index().Base() // the test index has no change log
	for r := 0; r < ix.Len(); r++ {
		id, _ := ix.ID(r)
		var byID answer
		if code := getJSON(t, ts.url+"/search/id/"+url.PathEscape(id)+"?k=5", &byID); code != 200 {
			t.Fatalf("%s: %d %s", id, code, byID.Error)
		}
		body, _ := json.Marshal(map[string]any{"vector": ix.Row(r)})
		code, byVec := post(t, ts.url+"/search/vector?k=5", "application/json", bytes.NewReader(body))
		if code != 200 || !sameHits(byID.Results, byVec.Results) {
			t.Errorf("%s: by id %v\nby vector (%d) %v", id, byID.Results, code, byVec.Results)
		}
		if byID.Results[0].ID != id || byID.Results[0].Distance != 0 {
			t.Errorf("%s: first result %v, want itself at 0", id, byID.Results[0])
		}
	}
	var a answer
	if code := getJSON(t, ts.url+"/search/id/no-such.jpg", &a); code != 404 {
		t.Errorf("unknown id: %d %v", code, a)
	}
	if code := getJSON(t, ts.url+"/search/id/storm.jpg?k=0", &a); code != 400 {
		t.Errorf("k=0: %d %v", code, a)
	}
}

func TestThumbnails(t *testing.T) {
	ts := start(t, Options{Objects: photosDir(t), ThumbDir: t.TempDir()})
	orig, err := os.Stat(filepath.Join(photosDir(t), "elephants.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(ts.url + "/thumbs/elephants.jpg")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	etag := res.Header.Get("ETag")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" || etag == "" || res.Header.Get("Cache-Control") == "" {
		t.Fatalf("status %d, headers %v", res.StatusCode, res.Header)
	}
	if int64(len(body))*4 > orig.Size() {
		t.Errorf("thumbnail of %d bytes for a photo of %d", len(body), orig.Size())
	}
	req, _ := http.NewRequest("GET", ts.url+"/thumbs/elephants.jpg", nil)
	req.Header.Set("If-None-Match", etag)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: %d, want 304", res.StatusCode)
	}
	// An id that climbs out is cleaned away by the router (then not found) or refused.
	for path, want := range map[string]int{"/thumbs/nope.jpg": 404, "/thumbs/a/../../etc/passwd": 404, "/thumbs/a%2F..%2F..%2Fx": 400} {
		req, _ := http.NewRequest("GET", ts.url+path, nil)
		req.URL.Opaque = path // keep the dots: the client would clean them
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, res.StatusCode, want)
		}
	}
}

// dupesBody is the answer of GET /dupes.
type dupesBody struct {
	MaxDistance float64 `json:"max_distance"`
	Groups      []struct {
		dupes.NamedGroup
		Files []fileInfo `json:"files"`
	} `json:"groups"`
	Error string `json:"error"`
}

// TestDupesEndpoint asks for the duplicate groups of the test photos: the two pairs of edited
// copies, each photo with its file size and resolution (its decoded size), and no thumbnail made
// for them (the page's <img> elements ask for those one by one).
func TestDupesEndpoint(t *testing.T) {
	thumbs := t.TempDir()
	ts := start(t, Options{Objects: photosDir(t), ThumbDir: thumbs})
	var body dupesBody
	if code := getJSON(t, ts.url+"/dupes", &body); code != 200 {
		t.Fatalf("%d %s", code, body.Error)
	}
	if body.MaxDistance != dupes.DefaultMaxDistance {
		t.Errorf("max_distance %v, want the default %v", body.MaxDistance, dupes.DefaultMaxDistance)
	}
	var sets [][]string
	for _, g := range body.Groups {
		sets = append(sets, g.IDs)
		for i, f := range g.Files {
			path := filepath.Join(photosDir(t), f.ID)
			st, err := os.Stat(path)
			if err != nil || f.ID != g.IDs[i] || f.Bytes != st.Size() || f.Error != "" {
				t.Errorf("file %+v (stat %v)", f, err)
			}
			if img, err := pil.Open(path); err != nil {
				t.Error(err)
			} else if f.Width != img.W || f.Height != img.H {
				t.Errorf("%s: %d×%d, decoded %d×%d", f.ID, f.Width, f.Height, img.W, img.H)
			}
		}
	}
	if made, _ := filepath.Glob(filepath.Join(thumbs, "*")); len(made) != 0 {
		t.Errorf("/dupes made thumbnails: %v", made)
	}
	want := [][]string{{"coffee.png", "coffee_cmyk.jpg"}, {"elephants.jpg", "elephants_toned.jpg"}}
	for _, w := range want {
		if !slices.ContainsFunc(sets, func(s []string) bool { return slices.Equal(sorted(s), w) }) {
			t.Errorf("groups %v lack %v", sets, w)
		}
	}
	if len(sets) != len(want) {
		t.Errorf("groups %v, want %v", sets, want)
	}
	if f := body.Groups[0].Files; len(f) > 0 && f[0].ID == "elephants.jpg" && (f[0].Width != 1024 || f[0].Height != 576) {
		t.Errorf("elephants.jpg %d×%d, want 1024×576", f[0].Width, f[0].Height)
	}
	var bad map[string]string
	if code := getJSON(t, ts.url+"/dupes?max_distance=-2", &bad); code != 400 {
		t.Errorf("negative distance: %d %v", code, bad)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func TestMapEndpoint(t *testing.T) {
	ts := start(t, Options{ThumbDir: t.TempDir()})
	var all struct {
		Points []mapPoint `json:"points"`
		Count  int        `json:"count"`
		Tile   float64    `json:"tile"`
	}
	if code := getJSON(t, ts.url+"/map", &all); code != 200 || len(all.Points) != all.Count || all.Count != ts.s.Index().Len() {
		t.Fatalf("%d: %d points of %d", code, len(all.Points), all.Count)
	}
	for i, p := range all.Points {
		if p.X < all.Tile/2 || p.X > 1-all.Tile/2 || p.Y < all.Tile/2 || p.Y > 1-all.Tile/2 || p.Distance != nil {
			t.Errorf("point %+v: its thumbnail (%v) is not inside the map", p, all.Tile)
		}
		// The edited copies are nearly at one place on the plane: their thumbnails are pushed
		// apart, and no two hide each other.
		for _, q := range all.Points[i+1:] {
			if math.Abs(p.X-q.X) < all.Tile*0.999 && math.Abs(p.Y-q.Y) < all.Tile*0.999 {
				t.Errorf("the thumbnails of %s and %s (%v) overlap: %+v, %+v", p.ID, q.ID, all.Tile, p, q)
			}
		}
	}
	var near struct {
		Points []mapPoint `json:"points"`
	}
	if code := getJSON(t, ts.url+"/map?id=coffee.png&k=3", &near); code != 200 || len(near.Points) != 3 {
		t.Fatalf("%d: %+v", code, near)
	}
	var want answer
	getJSON(t, ts.url+"/search/id/coffee.png?k=3", &want)
	for i, p := range near.Points {
		if p.ID != want.Results[i].ID || p.Distance == nil || *p.Distance != want.Results[i].Distance {
			t.Errorf("point %d: %+v, want %v", i, p, want.Results[i])
		}
	}
	for _, q := range []string{"?id=coffee.png&k=1", "?id=nope", fmt.Sprintf("?id=coffee.png&k=%d", maxMapK+1)} {
		var e map[string]string
		if code := getJSON(t, ts.url+"/map"+q, &e); code < 400 {
			t.Errorf("%s: %d", q, code)
		}
	}
}

// TestRangeSearch asks /search/id, /search/vector and /search for the photos within a distance,
// with and without k, and compares each answer with the searcher's range search; then it queues
// such queries beside a plain top-k one into one batch (the batcher held): each gets the answer
// it gets alone.
func TestRangeSearch(t *testing.T) {
	ts := start(t, Options{ThumbDir: t.TempDir()})
	v, err := ts.s.Vector("coffee.png")
	if err != nil {
		t.Fatal(err)
	}
	want := func(k int, d float64) []query.Hit {
		t.Helper()
		hits, _, err := ts.s.Search(v, query.Request{K: k, MaxDistance: d})
		if err != nil {
			t.Fatal(err)
		}
		return hits[0]
	}
	all := want(100, prune.NoLimit)
	d := all[4].Distance // five photos within d
	body, _ := json.Marshal(map[string]any{"vector": v})
	img, err := os.ReadFile(filepath.Join(photosDir(t), "coffee.png"))
	if err != nil {
		t.Fatal(err)
	}
	ask := func(path, params string) (int, answer) {
		t.Helper()
		u := ts.url + path + "?" + params
		switch path {
		case "/search/vector":
			return post(t, u, "application/json", bytes.NewReader(body))
		case "/search":
			return post(t, u, "application/octet-stream", bytes.NewReader(img))
		}
		var a answer
		return getJSON(t, u, &a), a
	}
	for _, path := range []string{"/search/id/coffee.png", "/search/vector", "/search"} {
		for _, tc := range []struct {
			params string
			want   []query.Hit
		}{
			{fmt.Sprintf("max_distance=%v", d), want(0, d)}, // every photo within d: more than k's default would be
			{fmt.Sprintf("max_distance=%v&k=2", d), want(2, d)},
			{"max_distance=0.1&k=5", want(5, 0.1)},
			{"max_distance=1e9", all},
		} {
			code, a := ask(path, tc.params)
			if code != 200 || !sameHits(a.Results, tc.want) {
				t.Errorf("%s?%s: %d %v, want %v", path, tc.params, code, a.Results, tc.want)
			}
		}
		for _, bad := range []string{"max_distance=-1", "max_distance=x", "max_distance=inf", "max_distance=NaN"} {
			if code, a := ask(path, bad); code != 400 {
				t.Errorf("%s?%s: %d %+v, want 400", path, bad, code, a)
			}
		}
	}
	if len(want(0, d)) != 5 || len(want(5, 0.1)) != 1 {
		t.Fatalf("the test's distances do not cut where it expects: %v", all)
	}

	release := holdBatcher(t, ts, v)
	batch := []struct {
		params string
		want   []query.Hit
	}{
		{"k=3", want(3, prune.NoLimit)},
		{fmt.Sprintf("max_distance=%v", d), want(0, d)},
		{"max_distance=0.1&k=2", want(2, 0.1)},
		{fmt.Sprintf("max_distance=%v&k=1", all[6].Distance), want(1, all[6].Distance)},
	}
	var wg sync.WaitGroup
	for _, q := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(ts.url + "/search/id/coffee.png?" + q.params)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var a answer
			if err := json.NewDecoder(res.Body).Decode(&a); err != nil || res.StatusCode != 200 || !sameHits(a.Results, q.want) {
				t.Errorf("in a batch, %s: %d %v (%v), want %v", q.params, res.StatusCode, a.Results, err, q.want)
			}
			if a.Timings["batch"] != float64(len(batch)) {
				t.Errorf("%s was answered in a batch of %v, not with the others", q.params, a.Timings["batch"])
			}
		}()
	}
	waitFor(t, "the queries to queue", func() bool { return len(ts.srv.b.jobs) == len(batch) })
	release()
	wg.Wait()
}

// TestRangeSearchCap checks that a range search without k answers at most MaxK photos, the
// nearest, and says so with "truncated" when more are within the distance.
func TestRangeSearchCap(t *testing.T) {
	ts := start(t, Options{ThumbDir: t.TempDir(), MaxK: 3})
	v, err := ts.s.Vector("coffee.png")
	if err != nil {
		t.Fatal(err)
	}
	all, _, err := ts.s.Search(v, query.Request{K: 8, MaxDistance: prune.NoLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d         float64
		truncated bool
	}{{1e9, true}, {all[0][2].Distance, false}} {
		var a answer
		u := ts.url + "/search/id/coffee.png?max_distance=" + strconv.FormatFloat(tc.d, 'f', -1, 64)
		if code := getJSON(t, u, &a); code != 200 || !sameHits(a.Results, all[0][:3]) || a.Truncated != tc.truncated {
			t.Errorf("within %v, MaxK 3: %d %+v; want the 3 nearest, truncated %v", tc.d, code, a, tc.truncated)
		}
	}
}

// TestSearchIDUnreadable checks that "more like this" on an index whose ids cannot be read
// (their offsets damaged, which opening does not check: Verify does) is a 500 naming the
// problem, not a 404 as if the id were missing.
func TestSearchIDUnreadable(t *testing.T) {
	b, err := os.ReadFile(testIndex(t))
	if err != nil {
		t.Fatal(err)
	}
	idsOff, count := binary.LittleEndian.Uint64(b[56:]), binary.LittleEndian.Uint64(b[24:])
	for r := uint64(1); r < count; r++ { // the first and last offsets are checked on opening
		binary.LittleEndian.PutUint64(b[idsOff+8*r:], 1<<40)
	}
	path := filepath.Join(t.TempDir(), "damaged.simidx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startIndex(t, path, Options{ThumbDir: t.TempDir()})
	var a answer
	if code := getJSON(t, ts.url+"/search/id/coffee.png", &a); code != 500 || !strings.Contains(a.Error, "id offsets") {
		t.Errorf("/search/id on an index with damaged id offsets: %d %+v, want 500 naming them", code, a)
	}
}
