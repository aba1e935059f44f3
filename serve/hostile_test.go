package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"simsearch/index"
	"simsearch/query"
)

const hostile = "../testdata/hostile"

var (
	smallOnce sync.Once
	smallSrv  *Server
	smallErr  error
)

// smallServer is a server over a few random 1280-dim rows with the real model loaded: cheap
// enough to start in every fuzzing worker (no image is embedded to build it).
func smallServer(t testing.TB) *Server {
	t.Helper()
	smallOnce.Do(func() {
		dir, err := os.MkdirTemp("", "simsearch-serve-fuzz")
		if err != nil {
			smallErr = err
			return
		}
		path := filepath.Join(dir, "small.simidx")
		w, err := index.Create(path, 1280, false)
		if err != nil {
			smallErr = err
			return
		}
		rng := rand.New(rand.NewPCG(1, 2))
		rows := make([]float32, 4*1280)
		for i := range rows {
			rows[i] = rng.Float32()
		}
		if err := w.Append([]string{"a", "b", "c", "d"}, rows); err != nil {
			smallErr = err
			return
		}
		if smallErr = w.Commit(); smallErr != nil {
			return
		}
		s, err := query.Open(path)
		if err != nil {
			smallErr = err
			return
		}
		if _, err := s.LoadModel(query.ModelRequest{Path: modelPath}); err != nil {
			smallErr = err
			return
		}
		if smallSrv, smallErr = New(s, Options{MaxBody: 1 << 20, Objects: dir}); smallErr != nil {
			return
		}
		// Run starts the batcher and marks the server ready; requests then go straight to
		// the handler. It serves until the test binary exits.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			smallErr = err
			return
		}
		go smallSrv.Run(context.Background(), ln, time.Second)
		for !smallSrv.ready.Load() {
			runtime.Gosched()
		}
	})
	if smallErr != nil {
		t.Fatal(smallErr)
	}
	return smallSrv
}

// serveOnce runs one request through the handler and checks what every answer must be: never a
// 5xx, and a JSON body with an error for every refusal.
func serveOnce(t *testing.T, h http.Handler, method, target, ctype string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, "http://x"+target, bytes.NewReader(body))
	if err != nil {
		return 0, "" // not a request a client can send
	}
	req.Header.Set("Content-Type", ctype)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %q (%d bytes): %d %s", method, target, len(body), rec.Code, rec.Body.String())
	}
	var a struct {
		Error   string          `json:"error"`
		Results json.RawMessage `json:"results"`
	}
	// The search handlers answer JSON; the mux's own 404 and 405 are plain text.
	if req.Method == "POST" && (req.URL.Path == "/search" || req.URL.Path == "/search/vector") {
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			t.Fatalf("%s %q: %d with a body that is not JSON (%v): %q", method, target, rec.Code, err, rec.Body.String())
		}
		if (rec.Code >= 400) != (a.Error != "") || (rec.Code == 200) != (len(a.Results) > 0) {
			t.Fatalf("%s %q: %d with %q", method, target, rec.Code, rec.Body.String())
		}
	}
	return rec.Code, a.Error
}

// Every hostile image is answered 400 with the reason, as pil gives it.
func TestHostileUploads(t *testing.T) {
	h := smallServer(t).Handler()
	ents, err := os.ReadDir(hostile)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(hostile, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		code, msg := serveOnce(t, h, "POST", "/search", "application/octet-stream", b)
		if code != 400 || !strings.Contains(msg, "cannot read the image") {
			t.Errorf("%s: %d %q", e.Name(), code, msg)
		}
	}
}

// A finite vector too large for its distances to fit float32 is refused with 400 and a reason;
// before, the distances overflowed and the answer was a 200 with an empty body.
func TestVectorNormTooLarge(t *testing.T) {
	h := smallServer(t).Handler()
	for _, tc := range []struct {
		x    float64
		code int
		want string
	}{
		{1e18, 400, "squared norm 1.28e+39 is too large"},
		{3e17, 400, "squared norm 1.152e+38 is too large"}, // finite in float32, over MaxFloat32/4
		{2e17, 200, ""}, // 5.12e37: under the bound, every distance to it fits float32
	} {
		body := []byte(`{"vector": [` + strings.TrimSuffix(strings.Repeat(fmt.Sprint(tc.x)+",", 1280), ",") + `]}`)
		code, msg := serveOnce(t, h, "POST", "/search/vector", "application/json", body)
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("1280 × %g: %d %q, want %d %q", tc.x, code, msg, tc.code, tc.want)
		}
	}
}

// FuzzHandler drives the whole handler, real model included, with arbitrary paths, types and
// bodies: no request may panic, answer 5xx, or get a malformed answer.
func FuzzHandler(f *testing.F) {
	for _, name := range []string{"header_bomb.png", "truncated.gif", "lying_size.bmp"} {
		if b, err := os.ReadFile(filepath.Join(hostile, name)); err == nil {
			f.Add("POST", "/search?k=3", "image/png", b)
		}
	}
	if b, err := os.ReadFile(filepath.Join(images, "tiny_red.png")); err == nil {
		f.Add("POST", "/search", "application/octet-stream", b)
		f.Add("POST", "/search", "multipart/form-data; boundary=b", append(append([]byte("--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n\r\n"), b...), "\r\n--b--\r\n"...))
	}
	f.Add("POST", "/search/vector?k=2", "application/json", []byte(`{"vector": [1e30, -1e30]}`))
	f.Add("GET", "/objects/../../etc/passwd", "", []byte(nil))
	f.Add("GET", "/objects/small.simidx", "", []byte(nil))
	f.Add("GET", "/healthz", "", []byte(nil))
	f.Fuzz(func(t *testing.T, method, target, ctype string, body []byte) {
		if !strings.HasPrefix(target, "/") {
			return
		}
		serveOnce(t, smallServer(t).Handler(), method, target, ctype, body)
	})
}
