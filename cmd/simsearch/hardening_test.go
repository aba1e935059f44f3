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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"codeberg.org/sbinet/npyio/npy"

	"simsearch/index"
	"simsearch/internal/atomicfile"
	"simsearch/shard"
)

// child prepares the command line to run in a child process (see TestHelperProcess).
func child(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "SIMSEARCH_HELPER=1")
	cmd.Args = append(cmd.Args, append([]string{"--"}, args...)...)
	return cmd
}

// lines delivers r's lines on a channel, closed at EOF.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		for s := bufio.NewScanner(r); s.Scan(); {
			ch <- s.Text()
		}
	}()
	return ch
}

// waitLine waits for a line containing want, failing on EOF or after a minute; it returns the
// line and the lines before it.
func waitLine(t *testing.T, ch <-chan string, want string) (string, []string) {
	t.Helper()
	var before []string
	deadline := time.After(time.Minute)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("the process ended without printing %q; it printed:\n%s", want, strings.Join(before, "\n"))
			}
			if strings.Contains(l, want) {
				return l, before
			}
			before = append(before, l)
		case <-deadline:
			t.Fatalf("no %q within a minute; printed:\n%s", want, strings.Join(before, "\n"))
		}
	}
}

// writeIndex writes an index of the given rows (dim each) and ids, recording meta.
func writeIndex(t *testing.T, path string, dim int, ids []string, rows []float32, meta index.Meta) {
	t.Helper()
	w, err := index.Create(path, dim, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(ids, rows); err != nil {
		t.Fatal(err)
	}
	w.SetMeta(meta)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// SIGHUP makes serve reload its index (a new file renamed over it) while requests keep
// arriving: none fails, later ones are answered from the new index, and SIGTERM still drains
// and exits 0. (SIGHUP used to kill the server.)
func TestServeSIGHUPReloads(t *testing.T) {
	demo := demoIndex(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "x.simidx")
	b, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, b, 0o644)
	ix, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	q := append([]float32(nil), ix.Row(0)...)
	firstID, _ := ix.ID(0)
	meta, _ := ix.Meta()
	ix.Close()

	cmd := child("serve", "--index", path, "--addr", "127.0.0.1:0", "--quiet")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := lines(stderr)
	l, _ := waitLine(t, out, "serving")
	url := regexp.MustCompile(`http://[0-9.:]+`).FindString(l)
	js, _ := json.Marshal(map[string]any{"vector": q})
	search := func() (int, string, error) {
		res, err := http.Post(url+"/search/vector?k=1", "application/json", bytes.NewReader(js))
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		var a struct {
			Results []struct{ ID string }
			Error   string
		}
		if err := json.NewDecoder(res.Body).Decode(&a); err != nil || len(a.Results) != 1 {
			return res.StatusCode, "", fmt.Errorf("status %d, %v, %+v", res.StatusCode, err, a)
		}
		return res.StatusCode, a.Results[0].ID, nil
	}
	if code, id, err := search(); err != nil || code != 200 || id != firstID {
		t.Fatalf("before: %d %q %v, want %s", code, id, err, firstID)
	}

	// Clients search throughout the reload.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	answered := 0
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, err := search()
				mu.Lock()
				if err != nil || code != 200 {
					failures = append(failures, fmt.Sprintf("%d %v", code, err))
				}
				answered++
				mu.Unlock()
			}
		}()
	}
	// The new index: the query's own row under a new id, at distance 0.
	tmp := filepath.Join(dir, "new.simidx")
	writeIndex(t, tmp, len(q), []string{"reloaded-row"}, q, meta)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitLine(t, out, "reloaded")
	code, id, err := search()
	close(stop)
	wg.Wait()
	if err != nil || code != 200 || id != "reloaded-row" {
		t.Errorf("after SIGHUP: %d %q %v, want reloaded-row", code, id, err)
	}
	if len(failures) > 0 || answered == 0 {
		t.Errorf("%d requests during the reload, failed: %v", answered, failures)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitLine(t, out, "stopped")
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}
}

// bigShards writes n shards of rows × dim float32 into a new directory, so that a conversion
// takes long enough to be caught while it writes.
func bigShards(t *testing.T, n, rows, dim int) string {
	t.Helper()
	dir := t.TempDir()
	v := make([]float32, rows*dim)
	for i := range v {
		v[i] = float32(i%1000) / 1000
	}
	for s := range n {
		ids := make([]string, rows)
		for i := range ids {
			ids[i] = fmt.Sprintf("s%d-r%d", s, i)
		}
		if err := shard.Write(dir, s, ids, v, dim); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tempFiles lists the temporary files in dir.
func tempFiles(dir string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if atomicfile.IsTemp(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// A convert interrupted by SIGINT or SIGTERM while it writes leaves nothing: no output, no
// temporary file. One killed by SIGKILL cannot clean up, and the next run removes what it left.
func TestConvertSignals(t *testing.T) {
	src := bigShards(t, 24, 2000, 512) // 96 MiB
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "x.simidx")
			cmd := child("convert", src, "-o", out)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Stop the process as soon as its temporary file appears, so that the signal
			// arrives mid-write whatever the machine's speed.
			deadline := time.Now().Add(time.Minute)
			for len(tempFiles(dir)) == 0 && time.Now().Before(deadline) {
				time.Sleep(200 * time.Microsecond)
			}
			cmd.Process.Signal(syscall.SIGSTOP)
			temps := tempFiles(dir)
			if _, err := os.Stat(out); len(temps) != 1 || err == nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("not caught mid-write: temporary files %v, output there: %v", temps, err == nil)
			}
			if !strings.Contains(temps[0], fmt.Sprintf(".tmp-%d-", cmd.Process.Pid)) {
				t.Errorf("temporary file %s does not carry the writer's pid %d", temps[0], cmd.Process.Pid)
			}
			cmd.Process.Signal(sig)
			cmd.Process.Signal(syscall.SIGCONT)
			err := cmd.Wait()
			if err == nil {
				t.Fatalf("exit 0 after %v", sig)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("an output after %v", sig)
			}
			if sig == syscall.SIGKILL {
				if left := tempFiles(dir); len(left) != 1 {
					t.Fatalf("after SIGKILL: temporary files %v, want the killed one", left)
				}
				_, errs, code := simsearch(t, "convert", src, "-o", out)
				if code != 0 || !strings.Contains(errs, "left by a writer that was killed") {
					t.Fatalf("the next run: exit %d: %s", code, errs)
				}
			} else if !strings.Contains(errb.String(), "interrupted, nothing written") {
				t.Errorf("stderr after %v: %s", sig, errb.String())
			}
			if left := tempFiles(dir); len(left) != 0 {
				t.Errorf("after %v: temporary files left: %v", sig, left)
			}
		})
	}
}

// Metadata that is not JSON, or a model record no model could have, is refused alike by info,
// verify, query --vector and serve, with the file named. (query --vector used to accept both.)
func TestMetadataCheckedAlike(t *testing.T) {
	dir := t.TempDir()
	vec := filepath.Join(dir, "q.npy")
	f, _ := os.Create(vec)
	npy.Write(f, []float32{0, 0})
	f.Close()
	broken := filepath.Join(dir, "broken-json.simidx")
	writeIndex(t, broken, 2, []string{"a"}, []float32{1, 2}, index.Meta{Tool: "x"})
	b, _ := os.ReadFile(broken)
	i := bytes.LastIndex(b, []byte(`"tool"`))
	b[i] = '{' // not JSON any more; Open reads only the header, whose CRC does not cover the meta
	os.WriteFile(broken, b, 0o644)
	badModel := filepath.Join(dir, "bad-model.simidx")
	writeIndex(t, badModel, 2, []string{"a"}, []float32{1, 2}, index.Meta{Model: &index.Model{SHA256: "ab", File: model, Input: "inputs:0", Output: "feature_vector", Size: 0, Layout: "NHWC", Scale: 1}})
	for _, tc := range []struct{ path, want string }{
		{broken, "metadata"},
		{badModel, "input size 0"},
	} {
		for _, args := range [][]string{
			{"info", tc.path},
			{"verify", tc.path},
			{"query", "--index", tc.path, "--vector", vec},
			{"serve", "--index", tc.path, "--addr", "127.0.0.1:0"},
		} {
			_, errs, code := simsearch(t, args...)
			if code == 0 || !strings.Contains(errs, tc.path) || !strings.Contains(errs, tc.want) {
				t.Errorf("%s: exit %d, %q; want a refusal naming the file and %q", strings.Join(args, " "), code, errs, tc.want)
			}
		}
	}
}

// Flag values that used to be silently replaced by a default or by a later flag are errors.
func TestFlagValuesRefused(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "x.simidx")
	writeIndex(t, idx, 2, []string{"a"}, []float32{1, 2}, index.Meta{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--index", idx, "--max-body", "0"}, "--max-body must be at least 1"},
		{[]string{"serve", "--index", idx, "--max-body", "-1"}, "--max-body must be at least 1"},
		{[]string{"serve", "--index", idx, "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"query", "--index", idx, "--vector", "a.npy", "--vector", "b.npy"}, `--vector given twice ("a.npy", then "b.npy")`},
		{[]string{"query", "--index", idx, "--index", idx, "--vector", "a.npy"}, "--index given twice"},
	} {
		_, errs, code := simsearch(t, tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, %q; want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}

// Ids with a newline, a tab or a leading quote print one result per line, quoted; --json
// prints them exactly.
func TestTextOutputEscapes(t *testing.T) {
	dir := t.TempDir()
	idx := filepath.Join(dir, "x.simidx")
	ids := []string{"a\nb.jpg", "tab\there.png", `"q".jpg`, "plain name.jpg"}
	writeIndex(t, idx, 2, ids, []float32{0, 0, 1, 0, 2, 0, 3, 0}, index.Meta{})
	vec := filepath.Join(dir, "q.npy")
	f, _ := os.Create(vec)
	npy.Write(f, []float32{0, 0})
	f.Close()
	out := mustRun(t, "query", "--index", idx, "--vector", vec, "-k", "4")
	want := "\"a\\nb.jpg\" 0.0\n\"tab\\there.png\" 1.0\n\"\\\"q\\\".jpg\" 2.0\nplain name.jpg 3.0\n"
	if out != want {
		t.Errorf("text output:\n%s\nwant:\n%s", out, want)
	}
	out = mustRun(t, "query", "--index", idx, "--vector", vec, "-k", "4", "--json")
	var a struct{ Results []struct{ ID string } }
	if err := json.Unmarshal([]byte(out), &a); err != nil || len(a.Results) != 4 {
		t.Fatalf("--json: %v, %s", err, out)
	}
	for i, r := range a.Results {
		if r.ID != ids[i] {
			t.Errorf("--json result %d: %q, want %q", i, r.ID, ids[i])
		}
	}
}
