package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const (
	testdata = "../../testdata"
	model    = testdata + "/model/mobilenet_v2_feature_vector.onnx"
	images   = testdata + "/images"
)

// simsearch runs the command line in-process and returns stdout, stderr and the exit status.
func simsearch(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"simsearch"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := simsearch(t, args...)
	if code != 0 {
		t.Fatalf("simsearch %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// block is one query's answer as printed.
type block struct {
	query string
	ids   []string
	dists []float64
}

func parseBlocks(t *testing.T, text string) []block {
	t.Helper()
	var bs []block
	for s := bufio.NewScanner(strings.NewReader(text)); s.Scan(); {
		line := s.Text()
		if q, ok := strings.CutPrefix(line, "# "); ok {
			bs = append(bs, block{query: q})
			continue
		}
		if len(bs) == 0 {
			bs = append(bs, block{})
		}
		id, d, ok := strings.Cut(line, " ")
		f, err := strconv.ParseFloat(d, 64)
		if !ok || err != nil {
			t.Fatalf("bad result line %q", line)
		}
		b := &bs[len(bs)-1]
		b.ids, b.dists = append(b.ids, id), append(b.dists, f)
	}
	return bs
}

// TestExactAgainstNumpy compares simsearch with the seed's numpy search over the same shards
// (testdata/make_exact_fixture.py): the same ids in the same order, distances within 1e-4
// relative.
func TestExactAgainstNumpy(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "exact.simidx")
	mustRun(t, "convert", testdata+"/exact", "-o", idx)
	want, err := os.ReadFile(testdata + "/exact/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	wb := parseBlocks(t, string(want))
	for _, kern := range []string{"generic", "avx2", "avx512"} {
		t.Run(kern, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
			cmd.Env = append(os.Environ(), "SIMSEARCH_HELPER=1", "SIMSEARCH_KERNEL="+kern)
			cmd.Args = append(cmd.Args, "--", "query", "--index", idx, "--vector", testdata+"/exact/queries.npy")
			out, err := cmd.Output()
			if err != nil {
				if strings.Contains(string(out)+errText(err), "not supported by this CPU") {
					t.Skipf("%s: not on this CPU", kern)
				}
				t.Fatalf("%v: %s", err, errText(err))
			}
			gb := parseBlocks(t, string(out))
			if len(gb) != len(wb) {
				t.Fatalf("%d answers, numpy gave %d", len(gb), len(wb))
			}
			for i := range wb {
				if strings.Join(gb[i].ids, " ") != strings.Join(wb[i].ids, " ") {
					t.Errorf("query %d: ids\n got %v\nwant %v", i, gb[i].ids, wb[i].ids)
				}
				for j := range wb[i].dists {
					g, w := gb[i].dists[j], wb[i].dists[j]
					if math.Abs(g-w) > 1e-4*math.Abs(w) {
						t.Errorf("query %d rank %d: distance %v, numpy %v", i, j, g, w)
					}
				}
			}
		})
	}
}

func errText(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return err.Error()
}

// TestHelperProcess runs the command line in a child process, so that SIMSEARCH_KERNEL is read at
// start-up as it is for users.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("SIMSEARCH_HELPER") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(append([]string{"simsearch"}, args...), os.Stdout, os.Stderr))
}

func TestConvertInfoVerify(t *testing.T) {
	dir := t.TempDir()
	idx := filepath.Join(dir, "x.simidx")
	mustRun(t, "convert", testdata+"/npy/ok_f4", "-o", idx)
	var info struct {
		Count, Dim int
	}
	if err := json.Unmarshal([]byte(mustRun(t, "info", "--json", idx)), &info); err != nil || info.Count != 5 || info.Dim != 8 {
		t.Fatalf("info --json: %+v, %v", info, err)
	}
	// --json: the summary on stdout, as JSON.
	var sum convertSummary
	out, errs, code := simsearch(t, "convert", "--json", "--force", testdata+"/npy/ok_f4", "-o", idx)
	err := json.Unmarshal([]byte(out), &sum)
	if code != 0 || err != nil || sum.Output != idx || sum.Vectors != 5 || sum.Dim != 8 || sum.Shards != 2 || sum.Removed == nil || len(sum.Removed) != 0 || errs != "" {
		t.Errorf("convert --json: exit %d, %+v (%v), stderr %q", code, sum, err, errs)
	}
	if out := mustRun(t, "verify", idx); out != idx+": ok\n" {
		t.Errorf("verify printed %q", out)
	}
	// Refused: existing output without --force, bad input; the old file survives.
	if _, errs, code := simsearch(t, "convert", testdata+"/npy/ok_f4", "-o", idx); code == 0 || !strings.Contains(errs, "already exists") {
		t.Errorf("convert over an existing index: exit %d, %s", code, errs)
	}
	_, errs, code = simsearch(t, "convert", testdata+"/npy/bad_nan", "-o", idx, "--force")
	if code == 0 || !strings.Contains(errs, "0001.features.npy: row 2, column 5 is NaN") {
		t.Errorf("convert bad_nan: exit %d, %s", code, errs)
	}
	mustRun(t, "verify", idx)
	// A damaged index fails verify with exit 1.
	b, _ := os.ReadFile(idx)
	b[4096+3] ^= 1
	os.WriteFile(idx, b, 0o644)
	if _, errs, code := simsearch(t, "verify", idx); code != 1 || !strings.Contains(errs, "vectors section checksum") {
		t.Errorf("verify of a damaged file: exit %d, %s", code, errs)
	}
	// Usage errors name the usage.
	if _, errs, code := simsearch(t, "convert", "a", "b", "-o", idx); code == 0 || !strings.Contains(errs, "usage: simsearch convert") {
		t.Errorf("convert with two dirs: exit %d, %s", code, errs)
	}
}

var (
	demoOnce sync.Once
	demoIdx  string
	demoErr  string
)

// demoIndex extracts and converts a collection of the bundled photos (less ladybird_brighter.jpg)
// once per test binary.
func demoIndex(t *testing.T) string {
	t.Helper()
	demoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "simsearch-cli-test")
		if err != nil {
			demoErr = err.Error()
			return
		}
		photos := filepath.Join(dir, "photos")
		os.Mkdir(photos, 0o755)
		ents, _ := os.ReadDir(images)
		for _, e := range ents {
			if e.Name() == "ladybird_brighter.jpg" || strings.HasPrefix(e.Name(), "reference_") {
				continue
			}
			b, _ := os.ReadFile(filepath.Join(images, e.Name()))
			os.WriteFile(filepath.Join(photos, e.Name()), b, 0o644)
		}
		var out, errb bytes.Buffer
		if run([]string{"simsearch", "extract", photos, "-o", filepath.Join(dir, "shards"), "--model", model}, &out, &errb) != 0 {
			demoErr = "extract: " + errb.String()
			return
		}
		if !strings.Contains(errb.String(), "broken_truncated.jpg") || !strings.Contains(errb.String(), "(3 files skipped)") {
			demoErr = "extract did not report the three broken files: " + errb.String()
			return
		}
		demoIdx = filepath.Join(dir, "demo.simidx")
		if run([]string{"simsearch", "convert", filepath.Join(dir, "shards"), "-o", demoIdx}, &out, &errb) != 0 {
			demoErr = "convert: " + errb.String()
		}
	})
	if demoErr != "" {
		t.Fatal(demoErr)
	}
	return demoIdx
}

func TestQueryImages(t *testing.T) {
	idx := demoIndex(t)
	// The seed's format for one image: itself first at 0.0, then its near-duplicates.
	out := mustRun(t, "query", "--index", idx, images+"/elephants.jpg")
	b := parseBlocks(t, out)
	if len(b) != 1 || len(b[0].ids) != 10 || b[0].query != "" {
		t.Fatalf("one query printed %q", out)
	}
	if b[0].ids[0] != "elephants.jpg" || b[0].dists[0] != 0 || !strings.HasPrefix(out, "elephants.jpg 0.0\n") {
		t.Errorf("elephants.jpg is not its own nearest at 0.0: %q", out)
	}
	if b[0].ids[1] != "elephants_toned.jpg" {
		t.Errorf("the colour-adjusted copy is not second: %v", b[0].ids)
	}
	// A held-out near-duplicate finds its original; several images get one block each; a
	// broken file is reported and the others still answered, with exit status 1.
	out, errs, code := simsearch(t, "query", "--index", idx, "-k", "3", images+"/ladybird_brighter.jpg", images+"/broken_truncated.jpg", images, images+"/storm_cropped.jpg")
	if code != 1 || !strings.Contains(errs, "broken_truncated.jpg: not a readable image") || !strings.Contains(errs, "is a directory") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	b = parseBlocks(t, out)
	if len(b) != 2 || b[0].query != images+"/ladybird_brighter.jpg" || b[0].ids[0] != "ladybird.jpg" || b[1].ids[0] != "storm_cropped.jpg" || b[1].ids[1] != "storm.jpg" || len(b[1].ids) != 3 {
		t.Errorf("answers: %+v", b)
	}
}

// The shards extract writes are read by numpy itself as the seed's layout.
func TestExtractReadableByNumpy(t *testing.T) {
	shards := filepath.Join(filepath.Dir(demoIndex(t)), "shards")
	script := `
import sys, numpy as np
ids = np.load(sys.argv[1] + "/0000.object_ids.npy")
f = np.load(sys.argv[1] + "/0000.features.npy")
assert ids.dtype.kind == "U" and f.dtype == np.dtype("<f4") and f.shape == (len(ids), 1280), (ids.dtype, f.dtype, f.shape)
assert np.isfinite(f).all()
print(len(ids), ids[0])
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, shards).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy could not read the shards (is python3-numpy installed? make setup does it): %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "33 aqua.jpg" {
		t.Errorf("numpy read %q, want 33 images (34 photos less the held-out one) starting with aqua.jpg", got)
	}
}

func TestQueryJSONTimings(t *testing.T) {
	idx := demoIndex(t)
	// In a process of its own, as a user runs it: ONNX Runtime is loaded there, not here.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "SIMSEARCH_HELPER=1")
	cmd.Args = append(cmd.Args, "--", "query", "--index", idx, "--json", "--timings", "-k", "2", images+"/coffee.png", images+"/coffee_cmyk.jpg")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, errText(err))
	}
	out := string(b)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", out)
	}
	for i, line := range lines {
		var a struct {
			Query   string
			Results []struct {
				ID       string
				Distance float64
			}
			Timings map[string]float64 `json:"timings_ms"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatal(err)
		}
		if len(a.Results) != 2 || a.Results[0].ID != filepath.Base(a.Query) || a.Results[0].Distance != 0 {
			t.Errorf("line %d: %+v", i, a)
		}
		keys := []string{"decode", "inference", "scan", "total", "decode_faults_minor", "inference_faults_minor", "scan_faults_minor"}
		if i == 0 {
			keys = append(keys, "model_load", "index_open", "ort_init", "model_read", "session",
				"index_open_faults_minor", "ort_init_faults_minor", "model_read_faults_minor", "session_faults_minor", "process_faults_minor")
		}
		for _, k := range keys {
			if _, ok := a.Timings[k]; !ok {
				t.Errorf("line %d: no timings_ms.%s in %v", i, k, a.Timings)
			}
		}
		if i == 0 {
			// Loading the library (tens of MB) and creating the session map pages; no phase
			// faults more than the whole process.
			if a.Timings["ort_init_faults_minor"] < 100 || a.Timings["session_faults_minor"] < 100 {
				t.Errorf("line 0: ONNX Runtime's load and the session report %v and %v page faults", a.Timings["ort_init_faults_minor"], a.Timings["session_faults_minor"])
			}
			for k, v := range a.Timings {
				if strings.HasSuffix(k, "_faults_minor") && v > a.Timings["process_faults_minor"] {
					t.Errorf("line 0: %s %v above the process's %v", k, v, a.Timings["process_faults_minor"])
				}
			}
		}
		if a.Timings["total"] < a.Timings["inference"] {
			t.Errorf("line %d: total %v < inference %v", i, a.Timings["total"], a.Timings["inference"])
		}
	}
}

func TestQueryModelChecks(t *testing.T) {
	idx := demoIndex(t)
	// Another model file (the same model plus an unknown protobuf field 1000 = 1, which ONNX
	// Runtime ignores: a working model with another hash) is refused…
	other := filepath.Join(t.TempDir(), "other.onnx")
	b, _ := os.ReadFile(model)
	os.WriteFile(other, append(b, 0xC0, 0x3E, 0x01), 0o644)
	if _, errs, code := simsearch(t, "query", "--index", idx, "--model", other, images+"/coffee.png"); code == 0 || !strings.Contains(errs, "is not the model") {
		t.Errorf("other model: exit %d, %s", code, errs)
	}
	// … unless the user says so (and then it works: the refusal was the hash's).
	if out, errs, code := simsearch(t, "query", "--index", idx, "--model", other, "--allow-model-mismatch", "-k", "1", images+"/coffee.png"); code != 0 || out != "coffee.png 0.0\n" {
		t.Errorf("other model allowed: exit %d, %q, %s", code, out, errs)
	}
	// … and a model of another output dim is refused even when mismatches are allowed.
	small := filepath.Join(t.TempDir(), "small.simidx")
	mustRun(t, "convert", testdata+"/npy/ok_f4", "-o", small)
	if _, errs, code := simsearch(t, "query", "--index", small, "--model", model, images+"/coffee.png"); code == 0 || !strings.Contains(errs, "produces 1280-dim vectors but") {
		t.Errorf("dim mismatch: exit %d, %s", code, errs)
	}
	// No model recorded and none given.
	if _, errs, code := simsearch(t, "query", "--index", small, images+"/coffee.png"); code == 0 || !strings.Contains(errs, "pass --model") {
		t.Errorf("no model: exit %d, %s", code, errs)
	}
	// A missing ONNX Runtime library says how to fix it.
	if _, errs, code := simsearch(t, "query", "--index", idx, "--ort-lib", "/nonexistent/libonnxruntime.so", images+"/coffee.png"); code == 0 || !strings.Contains(errs, "make setup") {
		t.Errorf("missing ORT: exit %d, %s", code, errs)
	}
}

func TestQueryVectorShapes(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "x.simidx")
	mustRun(t, "convert", testdata+"/npy/ok_f4", "-o", idx)
	// A 1-D array is one query, printed without a header.
	out := mustRun(t, "query", "--index", idx, "--vector", testdata+"/npy/query_1d.npy", "-k", "2")
	if !strings.HasPrefix(out, "0000000000000000000000000000000000000003.jpg 0.0\n") || strings.Count(out, "\n") != 2 {
		t.Errorf("1-D vector query: %q", out)
	}
	// A 2-D array gives one block per row.
	out = mustRun(t, "query", "--index", idx, "--vector", testdata+"/npy/ok_f4/0001.features.npy", "-k", "1")
	b := parseBlocks(t, out)
	if len(b) != 2 || b[0].ids[0] != "0000000000000000000000000000000000000003.jpg" || b[0].dists[0] != 0 || b[1].ids[0] != "0000000000000000000000000000000000000004.jpg" {
		t.Errorf("2-D vector query: %q", out)
	}
	if _, errs, code := simsearch(t, "query", "--index", idx, "--vector", testdata+"/exact/queries.npy"); code == 0 || !strings.Contains(errs, "vectors of dim 1280, but") {
		t.Errorf("dim mismatch: exit %d, %s", code, errs)
	}
	if _, errs, code := simsearch(t, "query", "--index", idx, "--vector", testdata+"/npy/ok_f4/0000.object_ids.npy"); code == 0 || !strings.Contains(errs, "want a 1-D or 2-D float array") {
		t.Errorf("ids as vectors: exit %d, %s", code, errs)
	}
	if _, errs, code := simsearch(t, "query", "--index", idx, "-k", "0", "--vector", testdata+"/npy/ok_f4/0000.features.npy"); code == 0 || !strings.Contains(errs, "-k must be at least 1") {
		t.Errorf("k=0: exit %d, %s", code, errs)
	}
}
