package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"simsearch/convert"
	"simsearch/embed"
	"simsearch/extract"
	"simsearch/pil"
	"simsearch/prune"
	"simsearch/query"
)

const (
	modelPath = "../testdata/model/mobilenet_v2_feature_vector.onnx"
	images    = "../testdata/images"
)

var (
	fixtureOnce sync.Once
	fixtureIdx  string
	fixtureErr  error
)

// testIndex embeds a few bundled photos into an index, once per test binary.
func testIndex(t testing.TB) string {
	t.Helper()
	fixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "simsearch-serve-test")
		if err != nil {
			fixtureErr = err
			return
		}
		photos := filepath.Join(dir, "photos")
		os.Mkdir(photos, 0o755)
		for _, n := range []string{"coffee.png", "coffee_cmyk.jpg", "ladybird.jpg", "elephants.jpg", "elephants_toned.jpg", "storm.jpg", "rocket.jpg", "chelsea.png"} {
			b, err := os.ReadFile(filepath.Join(images, n))
			if err != nil {
				fixtureErr = err
				return
			}
			os.WriteFile(filepath.Join(photos, n), b, 0o644)
		}
		m, _, err := embed.OpenModel(embed.Default(modelPath), "", "")
		if err != nil {
			fixtureErr = err
			return
		}
		defer m.Close()
		rec, _ := query.Record(m.Config(), m.SHA256())
		if _, err := extract.Run(m, photos, filepath.Join(dir, "shards"), extract.Options{Record: rec}); err != nil {
			fixtureErr = err
			return
		}
		fixtureIdx = filepath.Join(dir, "x.simidx")
		_, fixtureErr = convert.Run(filepath.Join(dir, "shards"), fixtureIdx, convert.Options{})
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureIdx
}

// server is a running test server on loopback.
type server struct {
	url    string
	srv    *Server
	s      *query.Searcher
	stop   context.CancelFunc
	done   chan error
	logBuf *bytes.Buffer
}

func start(t testing.TB, opt Options) *server {
	t.Helper()
	return startIndex(t, testIndex(t), opt)
}

// startIndex serves the index at path.
func startIndex(t testing.TB, path string, opt Options) *server {
	t.Helper()
	s, err := query.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Warm() // as the serve command does
	if _, err := s.LoadModel(query.ModelRequest{}); err != nil {
		t.Fatal(err)
	}
	srv, err := New(s, opt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &server{url: "http://" + ln.Addr().String(), srv: srv, s: s, stop: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(ctx, ln, 10*time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-ts.done
		s.Close()
	})
	return ts
}

type answer struct {
	Results   []query.Hit        `json:"results"`
	Timings   map[string]float64 `json:"timings_ms"`
	Error     string             `json:"error"`
	Truncated bool               `json:"truncated"`
}

func post(t testing.TB, url, contentType string, body io.Reader) (int, answer) {
	t.Helper()
	code, a, err := tryPost(url, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, a
}

// tryPost is post for goroutines other than the test's, which must not call t.Fatal.
func tryPost(url, contentType string, body io.Reader) (int, answer, error) {
	res, err := http.Post(url, contentType, body)
	if err != nil {
		return 0, answer{}, err
	}
	defer res.Body.Close()
	var a answer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		return 0, answer{}, fmt.Errorf("%s: status %d, body not JSON: %v", url, res.StatusCode, err)
	}
	return res.StatusCode, a, nil
}

func postFile(t testing.TB, url, path string) (int, answer) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return post(t, url, "application/octet-stream", bytes.NewReader(b))
}

// get sends a GET and returns the status, closing the body.
func get(t testing.TB, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// cli answers the same query the way simsearch query does.
func cli(t testing.TB, s *query.Searcher, image string, k int) []query.Hit {
	a, _, err := s.Images(query.ModelRequest{}, []string{image}, query.Request{K: k, MaxDistance: prune.NoLimit})
	if err != nil || a[0].Err != nil {
		t.Fatal(err, a[0].Err)
	}
	return a[0].Results
}

func sameHits(a, b []query.Hit) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSearchEqualsCLI(t *testing.T) {
	ts := start(t, Options{})
	if code := get(t, ts.url+"/healthz"); code != 200 {
		t.Fatalf("healthz: status %d", code)
	}
	for _, name := range []string{"ladybird_brighter.jpg", "coffee.png", "wood.webp", "astronaut.gif"} {
		img := filepath.Join(images, name)
		want := cli(t, ts.s, img, 5)
		code, a := postFile(t, ts.url+"/search?k=5", img)
		if code != 200 || !sameHits(a.Results, want) {
			t.Errorf("%s: %d %+v, want %+v", name, code, a, want)
		}
		for _, k := range []string{"decode", "inference", "scan", "total"} {
			if _, ok := a.Timings[k]; !ok {
				t.Errorf("%s: no timings_ms.%s", name, k)
			}
		}
		// The same as a multipart form.
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("note", "ignored")
		fw, _ := mw.CreateFormFile("image", name)
		b, _ := os.ReadFile(img)
		fw.Write(b)
		mw.Close()
		code, a = post(t, ts.url+"/search?k=5", mw.FormDataContentType(), &body)
		if code != 200 || !sameHits(a.Results, want) {
			t.Errorf("%s as a form: %d %+v", name, code, a)
		}
	}
	// A vector query by the exact embedding of coffee.png finds it at distance 0.
	v, err := embedFile(ts.s.Model(), filepath.Join(images, "coffee.png"))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(map[string]any{"vector": v})
	code, a := post(t, ts.url+"/search/vector?k=2", "application/json", bytes.NewReader(js))
	if code != 200 || len(a.Results) != 2 || a.Results[0].ID != "coffee.png" || a.Results[0].Distance != 0 || a.Results[1].ID != "coffee_cmyk.jpg" {
		t.Errorf("vector: %d %+v", code, a)
	}
}

func embedFile(m *embed.Model, path string) ([]float32, error) {
	img, err := pil.Open(path)
	if err != nil {
		return nil, err
	}
	return m.Embed(img)
}

func TestErrors(t *testing.T) {
	ts := start(t, Options{MaxBody: 1 << 20})
	for _, tc := range []struct {
		path, ctype string
		body        []byte
		code        int
		want        string
	}{
		{"/search", "image/jpeg", []byte("not an image"), 400, "cannot read the image"},
		{"/search", "image/jpeg", nil, 400, "empty body"},
		{"/search?k=0", "image/jpeg", []byte("x"), 400, "k must be"},
		{"/search?k=abc", "image/jpeg", []byte("x"), 400, "k must be"},
		{"/search?k=5000", "image/jpeg", []byte("x"), 400, "k must be"},
		{"/search", "multipart/form-data; boundary=xyz", []byte("--xyz--\r\n"), 400, `no field "image"`},
		{"/search/vector", "application/json", []byte(`{"vector": [1, 2]}`), 400, "the index holds 1280-dim"},
		{"/search/vector", "application/json", []byte(`{"vector": "x"}`), 400, `want {"vector"`},
		{"/search/vector", "application/json", []byte(`{"vecter": []}`), 400, `unknown field`},
		{"/search", "image/jpeg", bytes.Repeat([]byte{0xff}, 2<<20), 413, "exceeds the limit"},
	} {
		code, a := post(t, ts.url+tc.path, tc.ctype, bytes.NewReader(tc.body))
		if code != tc.code || !strings.Contains(a.Error, tc.want) {
			t.Errorf("POST %s %q…: %d %q, want %d %q", tc.path, tc.body[:min(len(tc.body), 20)], code, a.Error, tc.code, tc.want)
		}
	}
	broken, _ := os.ReadFile(filepath.Join(images, "broken_truncated.jpg"))
	if code, a := post(t, ts.url+"/search", "image/jpeg", bytes.NewReader(broken)); code != 400 || !strings.Contains(a.Error, "Premature end of JPEG") {
		t.Errorf("truncated JPEG: %d %+v", code, a)
	}
	// Wrong methods and paths.
	if code := get(t, ts.url+"/search"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /search: %d", code)
	}
	if code := get(t, ts.url+"/nope"); code != 404 {
		t.Errorf("GET /nope: %d", code)
	}
}

// A body announced larger than the limit is refused from its headers alone: the server answers
// 413 while the client has sent almost none of it.
func TestOversizedBodyNotRead(t *testing.T) {
	ts := start(t, Options{MaxBody: 1 << 20})
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", 1<<30)
	conn.Write(make([]byte, 1000))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body was sent: %v", err)
	}
	if res.StatusCode != 413 {
		t.Errorf("status %d, want 413", res.StatusCode)
	}
	// Without a length (chunked), the limit still holds.
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 64<<10)
		for i := 0; i < 64; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", ts.url+"/search", pr)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	pr.Close()
	if r2.StatusCode != 413 {
		t.Errorf("chunked: status %d, want 413", r2.StatusCode)
	}
}

func TestObjects(t *testing.T) {
	root := t.TempDir()
	objects := filepath.Join(root, "objects")
	id := "5577b06378df4cbf5fa04237ac767205a944a360.jpg"
	jpeg, _ := os.ReadFile(filepath.Join(images, "ladybird.jpg"))
	png, _ := os.ReadFile(filepath.Join(images, "tiny_red.png"))
	webp, _ := os.ReadFile(filepath.Join(images, "wood.webp"))
	page := []byte("<!doctype html><html><script>alert(document.cookie)</script></html>")
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)
	os.MkdirAll(filepath.Join(objects, "55", "77"), 0o755)
	os.MkdirAll(filepath.Join(objects, "sub"), 0o755)
	for name, b := range map[string][]byte{
		filepath.Join("55", "77", id): jpeg,
		"flat.jpg":                    jpeg,
		filepath.Join("sub", "n.png"): png,
		"wood.webp":                   webp,
		"png-named.jpg":               png, // Pillow reads it: served as what it is
		"page.html":                   page,
		"page.jpg":                    page, // a page under an image's name
		"drawing.svg":                 svg,
		"drawing.png":                 svg,
		"empty.gif":                   nil,
		"notes.txt":                   []byte("hello"),
	} {
		os.WriteFile(filepath.Join(objects, name), b, 0o644)
	}
	os.WriteFile(filepath.Join(root, "secret.txt"), []byte("TOP-SECRET-CONTENT"), 0o644)
	os.Symlink(filepath.Join(root, "secret.txt"), filepath.Join(objects, "link.jpg"))
	ts := start(t, Options{Objects: objects})
	get := func(p string) (int, http.Header, []byte) {
		req, _ := http.NewRequest("GET", ts.url+p, nil)
		req.URL.Opaque = p // send the path exactly as written
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, b
	}
	for _, tc := range []struct {
		path  string
		code  int
		body  []byte
		ctype string
	}{
		{"/objects/" + id, 200, jpeg, "image/jpeg"},
		{"/objects/flat.jpg", 200, jpeg, "image/jpeg"},
		{"/objects/sub/n.png", 200, png, "image/png"},
		{"/objects/wood.webp", 200, webp, "image/webp"},
		{"/objects/png-named.jpg", 200, png, "image/png"},
		{"/objects/page.html", 403, nil, ""},
		{"/objects/page.jpg", 403, nil, ""},
		{"/objects/drawing.svg", 403, nil, ""},
		{"/objects/drawing.png", 403, nil, ""},
		{"/objects/empty.gif", 403, nil, ""},
		{"/objects/notes.txt", 403, nil, ""},
		{"/objects/missing.jpg", 404, nil, ""},
		{"/objects/../secret.txt", 0, nil, ""},
		{"/objects/..%2fsecret.txt", 400, nil, ""},
		{"/objects/sub/..%2f..%2fsecret.txt", 400, nil, ""},
		{"/objects/%2e%2e/secret.txt", 0, nil, ""},
		{"/objects/link.jpg", 404, nil, ""},
		{"/objects/sub%5c..%5c..%5csecret.txt", 400, nil, ""},
		{"/objects//etc/passwd", 0, nil, ""},
	} {
		code, h, body := get(tc.path)
		if bytes.Contains(body, []byte("TOP-SECRET-CONTENT")) || bytes.Contains(body, []byte("root:x:")) || bytes.Contains(body, []byte("alert(")) {
			t.Errorf("%s served what it must not: %d %q", tc.path, code, body)
		}
		if tc.code != 0 && code != tc.code {
			t.Errorf("%s: status %d, want %d", tc.path, code, tc.code)
		}
		if tc.body != nil && !bytes.Equal(body, tc.body) {
			t.Errorf("%s: body of %d bytes, want the file's %d", tc.path, len(body), len(tc.body))
		}
		if tc.ctype != "" && h.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, h.Get("Content-Type"), tc.ctype)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no nosniff or CSP header: %v", tc.path, h)
		}
	}
}

// Every response carries nosniff and a Content-Security-Policy that allows exactly the page's
// own inline script and style (by hash), nothing from elsewhere, and no framing. (TestBrowser
// shows the page works under it.)
func TestSecurityHeaders(t *testing.T) {
	ts := start(t, Options{})
	res, err := http.Get(ts.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "connect-src 'self'", "img-src 'self' blob:"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
		t.Errorf("CSP %q allows arbitrary code", csp)
	}
	for _, tag := range []string{"script", "style"} {
		body := string(page)
		i := strings.Index(body, "<"+tag+">")
		j := strings.Index(body, "</"+tag+">")
		if i < 0 || j < i {
			continue // the page has no inline block of this kind
		}
		sum := sha256.Sum256([]byte(body[i+len(tag)+2 : j]))
		hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, tag+"-src 'self' "+hash) {
			t.Errorf("CSP %q does not allow the page's inline %s (%s)", csp, tag, hash)
		}
	}
	for _, req := range []struct{ method, path string }{{"GET", "/"}, {"GET", "/healthz"}, {"POST", "/search"}, {"POST", "/search/vector"}, {"GET", "/objects/x.jpg"}, {"GET", "/nothing"}} {
		r, _ := http.NewRequest(req.method, ts.url+req.path, strings.NewReader(""))
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Content-Security-Policy") != csp {
			t.Errorf("%s %s (%d): headers %v", req.method, req.path, res.StatusCode, res.Header)
		}
	}
}

// An index file overwritten or truncated in place under the server (instead of replaced by
// rename) fails requests with a JSON 500 naming the problem and makes /healthz 503; the server
// does not die of SIGBUS, and Reload serves again once a whole index is back.
func TestIndexChangedInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.simidx")
	whole, err := os.ReadFile(testIndex(t))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, whole, 0o644)
	hourAgo := time.Now().Add(-time.Hour) // file times have a coarse clock: see index.TestChanged
	os.Chtimes(path, hourAgo, hourAgo)
	ts := startIndex(t, path, Options{})
	v, err := embedFile(ts.s.Model(), filepath.Join(images, "coffee.png"))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(map[string]any{"vector": v})
	search := func() (int, answer) {
		return post(t, ts.url+"/search/vector?k=2", "application/json", bytes.NewReader(js))
	}
	health := func() int {
		res, err := http.Get(ts.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code, a := search(); code != 200 || a.Results[0].ID != "coffee.png" {
		t.Fatalf("before: %d %+v", code, a)
	}
	var groups map[string]any
	if code := getJSON(t, ts.url+"/dupes", &groups); code != 200 {
		t.Fatalf("before: /dupes %d %v", code, groups) // computed and kept: not to be served from a changed file
	}
	for _, change := range []struct {
		name string
		do   func() error
	}{
		{"truncated", func() error { return os.Truncate(path, 4096) }},
		{"overwritten", func() error { return os.WriteFile(path, whole, 0o644) }},
	} {
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		if code, a := search(); code != 500 || !strings.Contains(a.Error, "modified in place") {
			t.Errorf("%s: search %d %+v, want 500 saying the file was modified in place", change.name, code, a)
		}
		if code, _ := postFile(t, ts.url+"/search", filepath.Join(images, "coffee.png")); code != 500 {
			t.Errorf("%s: image search %d, want 500", change.name, code)
		}
		if code := health(); code != 503 {
			t.Errorf("%s: healthz %d, want 503", change.name, code)
		}
		// The views that read the index's vectors themselves (search by id, duplicates, the
		// map) fail the same way, and the server lives on.
		for _, u := range []string{"/search/id/coffee.png", "/dupes", "/map", "/map?id=coffee.png"} {
			var e map[string]string
			if code := getJSON(t, ts.url+u, &e); code != 500 || !strings.Contains(e["error"], "modified in place") {
				t.Errorf("%s: GET %s %d %v, want 500 saying the file was modified in place", change.name, u, code, e)
			}
		}
	}
	if n, err := ts.srv.Reload(); err != nil || n != 8 {
		t.Fatalf("Reload: %d, %v", n, err)
	}
	if code, a := search(); code != 200 || a.Results[0].ID != "coffee.png" {
		t.Fatalf("after Reload: %d %+v", code, a)
	}
	if code := health(); code != 200 {
		t.Errorf("after Reload: healthz %d", code)
	}
	for _, u := range []string{"/search/id/coffee.png", "/dupes", "/map"} {
		if code := get(t, ts.url+u); code != 200 {
			t.Errorf("after Reload: GET %s %d", u, code)
		}
	}
}

// holdBatcher makes the server's batcher wait: it queues a vector query whose reply channel
// nobody reads, so the batcher blocks answering it until release is called (the cleanup calls it
// if the test does not). Queries sent meanwhile stay queued, observably (len of the queue).
func holdBatcher(t *testing.T, ts *server, vec []float32) (release func() result) {
	gate := &job{vector: vec, k: 1, ctx: context.Background(), queued: time.Now(), reply: make(chan result)}
	ts.srv.b.jobs <- gate
	var once sync.Once
	var r result
	release = func() result {
		once.Do(func() { r = <-gate.reply })
		return r
	}
	t.Cleanup(func() { release() }) // a failed test still lets the batcher, and so the server, stop
	return release
}

// waitFor polls cond until it holds, failing the test after 30 s: for conditions that are certain
// to come, at a time that is not.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 30 s", what)
		}
	}
}

// Concurrent image and vector queries (run under -race by make test) all get the answers they
// would get alone, and every one of them went through the batcher.
func TestConcurrent(t *testing.T) {
	ts := start(t, Options{})
	names := []string{"ladybird_brighter.jpg", "coffee.png", "elephants.jpg", "storm_cropped.jpg"}
	want := map[string][]query.Hit{}
	for _, n := range names {
		want[n] = cli(t, ts.s, filepath.Join(images, n), 3)
	}
	vec, err := embedFile(ts.s.Model(), filepath.Join(images, "rocket.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(map[string]any{"vector": vec})
	imgs := map[string][]byte{}
	for _, n := range names {
		if imgs[n], err = os.ReadFile(filepath.Join(images, n)); err != nil {
			t.Fatal(err)
		}
	}
	const clients, rounds = 8, 4
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				n := names[(c+i)%len(names)]
				code, a, err := tryPost(ts.url+"/search?k=3", "application/octet-stream", bytes.NewReader(imgs[n]))
				if err != nil || code != 200 || !sameHits(a.Results, want[n]) {
					t.Errorf("%s: %d %+v %v, want %+v", n, code, a.Results, err, want[n])
				}
				code, a, err = tryPost(ts.url+"/search/vector?k=1", "application/json", bytes.NewReader(js))
				if err != nil || code != 200 || len(a.Results) != 1 || a.Results[0].ID != "rocket.jpg" {
					t.Errorf("vector: %d %+v %v", code, a, err)
				}
			}
		}()
	}
	wg.Wait()
	if st := ts.srv.Stats(); st.Queries != 2*clients*rounds || st.Batches < 1 || st.Batches > st.Queries {
		t.Errorf("stats %+v after %d queries", st, 2*clients*rounds)
	}
}

// TestBatching holds the batcher on a first query, sends 64 vector queries at once, and checks
// that they were answered in fewer, fuller batches: with the batcher held, its queue (4 batches'
// worth) fills before it takes the next batch, so the first 4 batches after it are full.
func TestBatching(t *testing.T) {
	const maxBatch, n = 8, 64
	ts := start(t, Options{MaxBatch: maxBatch})
	vec, err := embedFile(ts.s.Model(), filepath.Join(images, "rocket.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	release := holdBatcher(t, ts, vec)
	js, _ := json.Marshal(map[string]any{"vector": vec})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, a, err := tryPost(ts.url+"/search/vector?k=1", "application/json", bytes.NewReader(js))
			if err != nil || code != 200 || len(a.Results) != 1 || a.Results[0].ID != "rocket.jpg" {
				t.Errorf("vector: %d %+v %v", code, a, err)
			}
		}()
	}
	waitFor(t, "the batcher's queue to fill", func() bool { return len(ts.srv.b.jobs) == cap(ts.srv.b.jobs) })
	if r := release(); r.err != nil || len(r.hits) != 1 || r.hits[0].ID != "rocket.jpg" {
		t.Errorf("the held query: %+v", r)
	}
	wg.Wait()
	st := ts.srv.Stats()
	queued := int64(cap(ts.srv.b.jobs) / maxBatch)
	if st.Queries != n+1 || st.Largest != maxBatch || st.Batches > 1+queued+(n-queued*maxBatch) {
		t.Errorf("%d concurrent queries (+1 held): stats %+v; want %d queries, batches of up to %d, the first %d after the held one full",
			n, st, n+1, maxBatch, queued)
	}
	if st.Batches >= n {
		t.Errorf("%d concurrent queries ran in %d batches", n, st.Batches)
	}
	t.Logf("%d concurrent queries (+1 held) in %d batches, largest %d", n, st.Batches, st.Largest)
}

// Stopping the server lets a request in flight finish and refuses new connections meanwhile. The
// batcher is held so that the request is certainly in flight (queued) when the stop comes, and
// still is while new connections are tried.
func TestShutdownDrains(t *testing.T) {
	ts := start(t, Options{})
	img, err := os.ReadFile(filepath.Join(images, "coffee.png"))
	if err != nil {
		t.Fatal(err)
	}
	vec, err := embedFile(ts.s.Model(), filepath.Join(images, "rocket.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	release := holdBatcher(t, ts, vec)
	type out struct {
		code int
		a    answer
		err  error
	}
	got := make(chan out, 1)
	go func() {
		code, a, err := tryPost(ts.url+"/search?k=1", "image/png", bytes.NewReader(img))
		got <- out{code, a, err}
	}()
	waitFor(t, "the request to reach the batcher", func() bool { return len(ts.srv.b.jobs) == 1 })
	ts.stop()
	// Fresh connections (no idle one to reuse) until one is refused: the listener closes at once.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, "new connections to be refused", func() bool {
		res, err := fresh.Get(ts.url + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		return err != nil
	})
	select {
	case o := <-got:
		t.Fatalf("the in-flight request ended before the batcher was released: %+v", o)
	default:
	}
	release()
	o := <-got
	if o.err != nil || o.code != 200 || len(o.a.Results) != 1 || o.a.Results[0].ID != "coffee.png" {
		t.Errorf("in-flight request: %+v", o)
	}
	if err := <-ts.done; err != nil {
		t.Errorf("Run returned %v after draining", err)
	}
	ts.done <- nil // for the cleanup
}

func TestPanicBecomes500(t *testing.T) {
	ts := start(t, Options{})
	ts.srv.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	res, err := http.Get(ts.url + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a answer
	json.NewDecoder(res.Body).Decode(&a)
	if res.StatusCode != 500 || a.Error != "internal error" {
		t.Errorf("panic: %d %+v", res.StatusCode, a)
	}
	// The server still answers.
	if code, _ := postFile(t, ts.url+"/search?k=1", filepath.Join(images, "coffee.png")); code != 200 {
		t.Errorf("after a panic: %d", code)
	}
}

func TestPage(t *testing.T) {
	ts := start(t, Options{})
	get := func(path string) (string, *http.Response) {
		t.Helper()
		res, err := http.Get(ts.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
		return string(b), res
	}
	page, _ := get("/")
	if !strings.Contains(page, `<input id="file" type="file"`) || !strings.Contains(page, `<script src="/app.js" defer></script>`) {
		t.Errorf("page:\n%s", page[:min(300, len(page))])
	}
	// Scripts and styles live in served files, never inline, so that a Content-Security-Policy
	// of default-src 'self' allows them.
	if strings.Count(page, "<script") != 1 || strings.Contains(page, "<style") || strings.Contains(page, " style=") {
		t.Error("the page has inline scripts or styles")
	}
	js, res := get("/app.js")
	if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") || !strings.Contains(js, `"/search?"`) {
		t.Errorf("app.js: %s", ct)
	}
	css, _ := get("/app.css")
	for name, text := range map[string]string{"/": page, "/app.js": js, "/app.css": css} {
		text = strings.ReplaceAll(text, `"http://www.w3.org/2000/svg"`, "") // SVG's namespace, a name, not fetched
		if strings.Contains(text, "http://") || strings.Contains(text, "https://") || strings.Contains(text, "@import") {
			t.Errorf("%s loads something from another site", name)
		}
	}
}
