package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"simsearch/internal/fixture"
)

const (
	hostile = testdata + "/hostile"
	// maxRSS bounds each child's peak resident memory (ONNX Runtime and the model included).
	maxRSS = 500 << 20
)

func peakRSS(t *testing.T, cmd *exec.Cmd) int64 {
	t.Helper()
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no rusage for the child")
	}
	rss := ru.Maxrss << 10 // kilobytes on Linux
	if rss > maxRSS {
		t.Errorf("%s: peak RSS %d MB, want under %d MB", strings.Join(cmd.Args[3:], " "), rss>>20, maxRSS>>20)
	}
	return rss
}

func hostileFiles(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(hostile)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() {
			files = append(files, filepath.Join(hostile, e.Name()))
		}
	}
	if len(files) < 18 {
		t.Fatalf("only %d files in %s: run go run ./testdata/hostile/gen", len(files), hostile)
	}
	return files
}

// Every hostile file goes through extract, query and serve, each a child process: each is refused
// with its name and reason, the good files still work, and no process's peak RSS passes 500 MB
// (before the header checks, the PNG header bomb aborted the Go runtime with "out of memory").
func TestHostileImages(t *testing.T) {
	files := hostileFiles(t)
	dir := t.TempDir()
	photos := filepath.Join(dir, "photos")
	os.Mkdir(photos, 0o755)
	for _, f := range append(files, filepath.Join(images, "tiny_red.png")) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(photos, filepath.Base(f)), b, 0o644)
	}

	shards := filepath.Join(dir, "shards")
	ex := child("extract", photos, "-o", shards, "--model", model)
	var exErr bytes.Buffer
	ex.Stderr = &exErr
	if err := ex.Run(); err != nil {
		t.Fatalf("extract: %v: %s", err, exErr.String())
	}
	for _, f := range files {
		if !regexp.MustCompile(`skipping \S*` + regexp.QuoteMeta(filepath.Base(f)) + `: `).MatchString(exErr.String()) {
			t.Errorf("extract did not report %s", filepath.Base(f))
		}
	}
	if want := fmt.Sprintf("of 1 images to %s (%d files skipped)", shards, len(files)); !strings.Contains(exErr.String(), want) {
		t.Errorf("extract: want %q in\n%s", want, exErr.String())
	}
	t.Logf("extract: peak RSS %d MB", peakRSS(t, ex)>>20)
	idx := filepath.Join(dir, "x.simidx")
	mustRun(t, "convert", shards, "-o", idx)

	q := child(append([]string{"query", "--index", idx, "--json"}, files...)...)
	var qOut, qErr bytes.Buffer
	q.Stdout, q.Stderr = &qOut, &qErr
	if err := q.Run(); err == nil || q.ProcessState.ExitCode() != 1 {
		t.Errorf("query of hostile files: %v, want exit status 1", err)
	}
	for _, f := range files {
		if !strings.Contains(qOut.String()+qErr.String(), f+": ") {
			t.Errorf("query did not report %s", f)
		}
	}
	t.Logf("query: peak RSS %d MB", peakRSS(t, q)>>20)

	serveHostile(t, idx, files)
}

// startServe starts a serve child on a free loopback port and returns its URL.
func startServe(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	srv, url, _ := startServeLog(t, args...)
	return srv, url
}

// serveLog is what a serve child writes on stderr.
type serveLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *serveLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServeLog is startServe, keeping the child's stderr.
func startServeLog(t *testing.T, args ...string) (*exec.Cmd, string, *serveLog) {
	t.Helper()
	srv := child(append([]string{"serve", "--addr", "127.0.0.1:0", "--quiet"}, args...)...)
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() }) // on a failure; after a clean stop, a no-op
	sc := bufio.NewScanner(stderr)
	var url string
	for url == "" && sc.Scan() {
		if m := regexp.MustCompile(`on (http://\S+)/`).FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatal("serve never said where it listens")
	}
	log := &serveLog{}
	go func() { // drain the rest of stderr so the child never blocks on it
		for sc.Scan() {
			log.mu.Lock()
			log.b.WriteString(sc.Text() + "\n")
			log.mu.Unlock()
		}
	}()
	return srv, url, log
}

// vmHWM is a running process's peak resident memory, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// stopServe sends SIGTERM and waits for a clean exit.
func stopServe(t *testing.T, srv *exec.Cmd) {
	t.Helper()
	srv.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30 s of SIGTERM")
	}
}

// uploadAll posts the file at path n times at once and checks each answer with ok.
func uploadAll(t *testing.T, url, path string, n int, ok func(code int, msg string) bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, msg, err := postImage(url, b)
			if err == nil && !ok(code, msg) {
				err = fmt.Errorf("%d %q", code, msg)
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %v", filepath.Base(path), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// postImage posts an image to /search and returns the status and the JSON answer's error.
func postImage(url string, b []byte) (int, string, error) {
	return postImageBody(url, bytes.NewReader(b))
}

func postImageBody(url string, body io.Reader) (int, string, error) {
	res, err := http.Post(url+"/search", "application/octet-stream", body)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	var a struct {
		Error   string            `json:"error"`
		Results []json.RawMessage `json:"results"`
	}
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		return res.StatusCode, "", fmt.Errorf("status %d, body not JSON: %v", res.StatusCode, err)
	}
	return res.StatusCode, a.Error, nil
}

func refused(code int, msg string) bool {
	return code == 400 && strings.Contains(msg, "cannot read the image")
}

// serveHostile uploads the bombs, then every hostile file, 8 at a time to a serve child and
// checks every answer is a 400 with the reason, then that the server still answers a good image
// and stops cleanly.
func serveHostile(t *testing.T, idx string, files []string) {
	srv, url := startServe(t, "--index", idx)
	var bombs []string
	for _, f := range files {
		if strings.Contains(filepath.Base(f), "bomb") {
			bombs = append(bombs, f)
		}
	}
	for _, f := range append(bombs, files...) {
		uploadAll(t, url, f, 8, refused)
	}
	uploadAll(t, url, filepath.Join(images, "tiny_red.png"), 1, func(code int, _ string) bool { return code == 200 })
	stopServe(t, srv)
	t.Logf("serve: peak RSS %d MB after %d concurrent uploads of each of %d files", peakRSS(t, srv)>>20, 8, len(files))
}

// tinyIndex is the index that extract and convert make of the bundled tiny_red.png alone.
func tinyIndex(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	photos := filepath.Join(dir, "photos")
	fixture.CopyFile(t, filepath.Join(images, "tiny_red.png"), filepath.Join(photos, "tiny_red.png"))
	mustRun(t, "extract", photos, "-o", filepath.Join(dir, "shards"), "--model", model)
	idx := filepath.Join(dir, "x.simidx")
	mustRun(t, "convert", filepath.Join(dir, "shards"), "-o", idx)
	return idx
}

// Eight concurrent uploads of bombs Pillow opens (under its pixel limit), at serve's default
// settings: the server's peak RSS, read from /proc, stays under 500 MB (before decoding by rows
// and the server's budget, one 13000x13000 PNG took it to 1.2 GB and eight to 2.4 GB). The PNG
// and baseline JPEG of 169 million pixels are decoded by rows, the 5000x5000 lossless WebP
// (175 MB in libwebp) within the budget, one at a time; the progressive JPEG and lossless WebP
// of 169 million pixels, which libjpeg and libwebp would hold whole (1 and 1.1 GB), are refused
// with the reason. Meanwhile small uploads are answered at once: big images decode in a lane of
// their own.
func TestServeBombsMemory(t *testing.T) {
	idx := tinyIndex(t)
	small, err := os.ReadFile(filepath.Join(images, "tiny_red.png"))
	if err != nil {
		t.Fatal(err)
	}
	// Default decode settings; only the request timeout is raised, for slow machines.
	srv, url := startServe(t, "--index", idx, "--timeout", "10m")
	refusedTooLarge := func(code int, msg string) bool {
		return code == 400 && strings.Contains(msg, "more than one image may hold here (192 MB: three quarters of --decode-memory 256 MB)")
	}
	ok := func(code int, _ string) bool { return code == 200 }
	uploads := []struct {
		name string
		want func(int, string) bool
	}{
		{"bomb_13000x13000_rgba.png", ok}, {"bomb_13000x13000_rgba.png", ok},
		{"bomb_13000x13000_baseline.jpg", ok}, {"bomb_13000x13000_baseline.jpg", ok},
		{"bomb_5000x5000_lossless.webp", ok}, {"bomb_5000x5000_lossless.webp", ok},
		{"bomb_13000x13000_progressive.jpg", refusedTooLarge}, {"bomb_13000x13000_lossless.webp", refusedTooLarge},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var order []string // answers, in the order they came
	sent := make(chan struct{}, len(uploads))
	for _, u := range uploads {
		b, err := os.ReadFile(filepath.Join(hostile, "loadable", u.name))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, msg, err := postImageBody(url, &signalReader{r: bytes.NewReader(b), eof: sent})
			mu.Lock()
			defer mu.Unlock()
			order = append(order, u.name)
			if err == nil && !u.want(code, msg) {
				err = fmt.Errorf("%d %q", code, msg)
			}
			if err != nil {
				t.Errorf("%s: %v", u.name, err)
			}
		}()
	}
	for range uploads {
		<-sent // every bomb is in the server's hands
	}
	for range 3 {
		code, msg, err := postImage(url, small)
		if err != nil || code != 200 {
			t.Fatalf("a small upload among the bombs: %d %q %v", code, msg, err)
		}
		mu.Lock()
		order = append(order, "small")
		mu.Unlock()
	}
	wg.Wait()
	decoded := func(s string) bool {
		return strings.HasSuffix(s, "13000x13000_rgba.png") || strings.HasSuffix(s, "13000x13000_baseline.jpg")
	}
	lastSmall := 0
	for i, s := range order {
		if s == "small" {
			lastSmall = i
		}
	}
	if lastSmall > slices.IndexFunc(order, decoded) {
		t.Errorf("answers came %v: the small uploads waited for a 169-million-pixel decode", order)
	}
	rss := vmHWM(t, srv.Process.Pid)
	stopServe(t, srv)
	if rss > maxRSS {
		t.Errorf("serve: peak RSS (VmHWM) %d MB after 8 concurrent bomb uploads, want under %d MB", rss>>20, maxRSS>>20)
	}
	t.Logf("serve: peak RSS (VmHWM) %d MB after 8 concurrent bomb uploads at the default settings", rss>>20)
}

// signalReader reads r, and sends on eof once it is all read.
type signalReader struct {
	r    io.Reader
	eof  chan<- struct{}
	done bool
}

func (s *signalReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF && !s.done {
		s.done = true
		s.eof <- struct{}{}
	}
	return n, err
}

// Pillow's DecompressionBombWarning, for an image between MAX_IMAGE_PIXELS and twice it: query
// prints it on stderr, naming the file, and serve writes it in its log, --quiet or not; both
// answer the query.
func TestDecompressionBombWarning(t *testing.T) {
	idx := tinyIndex(t)
	bomb := hostile + "/loadable/warn_10000x9000_1bit.png"
	const warning = "Image size (90000000 pixels) exceeds limit of 89478485 pixels, could be decompression bomb DOS attack"
	out, errs, code := simsearch(t, "query", "--index", idx, bomb)
	if code != 0 || !strings.Contains(out, "tiny_red.png") || !strings.Contains(errs, "simsearch: warning: "+bomb+": "+warning) {
		t.Errorf("query: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	srv, url, log := startServeLog(t, "--index", idx, "--timeout", "5m")
	b, err := os.ReadFile(bomb)
	if err != nil {
		t.Fatal(err)
	}
	if code, msg, err := postImage(url, b); err != nil || code != 200 {
		t.Errorf("serve: %d %q %v", code, msg, err)
	}
	stopServe(t, srv)
	if !strings.Contains(log.String(), "warning: "+warning) {
		t.Errorf("serve's log has no warning:\n%s", log.String())
	}
}

// A finite query vector whose distances would overflow float32 is refused with the reason, in
// --json mode too (before: exit 1 with nothing said about why).
func TestQueryVectorNormTooLarge(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "x.simidx")
	mustRun(t, "convert", testdata+"/npy/ok_f4", "-o", idx)
	out, errs, code := simsearch(t, "query", "--json", "--index", idx, "--vector", testdata+"/npy/query_huge_norm.npy")
	if code == 0 || !strings.Contains(errs, "squared norm 8e+38 is too large") || out != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want a refusal naming the norm", code, out, errs)
	}
}

// The limits are flags; a bad value is a usage error.
func TestDecodeFlags(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "x.simidx")
	mustRun(t, "convert", testdata+"/npy/ok_f4", "-o", idx)
	_, errs, code := simsearch(t, "query", "--index", idx, "--max-pixels", "0", images+"/tiny_red.png")
	if code == 0 || !strings.Contains(errs, "--max-pixels must be at least 1") {
		t.Errorf("--max-pixels 0: exit %d, %q", code, errs)
	}
	photos := t.TempDir()
	fixture.CopyFile(t, filepath.Join(images, "tiny_red.png"), filepath.Join(photos, "tiny_red.png"))
	_, errs, _ = simsearch(t, "extract", photos, "-o", filepath.Join(t.TempDir(), "shards"), "--model", model, "--max-pixels", "100")
	if !strings.Contains(errs, "tiny_red.png: image too large: PNG: 17x9 = 153 pixels exceeds the limit of 100") {
		t.Errorf("extract --max-pixels 100: %q", errs)
	}
}
