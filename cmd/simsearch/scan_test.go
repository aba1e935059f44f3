package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestScanPathsAgree checks that the pruned, full and automatic scans print the same answers,
// for top-k and range queries, and that --timings shows which path ran.
func TestScanPathsAgree(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "exact.simidx")
	mustRun(t, "convert", testdata+"/exact", "-o", idx, "--pca-rank", "8")
	mustRun(t, "verify", idx)
	vec := testdata + "/exact/queries.npy"
	full := mustRun(t, "query", "--index", idx, "--vector", vec, "-k", "20", "--scan", "full")
	for _, scan := range []string{"pruned", "auto"} {
		if got := mustRun(t, "query", "--index", idx, "--vector", vec, "-k", "20", "--scan", scan); got != full {
			t.Errorf("--scan %s:\n%s\n--scan full:\n%s", scan, got, full)
		}
	}
	blocks := parseBlocks(t, full)
	d := blocks[0].dists[6] // a radius at a stored distance: the boundary is inclusive
	radius := fmt.Sprint(d)
	var want []string
	for i, id := range blocks[0].ids {
		if blocks[0].dists[i] <= d {
			want = append(want, id)
		}
	}
	for _, scan := range []string{"full", "pruned", "auto"} {
		out := mustRun(t, "query", "--index", idx, "--vector", vec, "--max-distance", radius, "--scan", scan)
		got := parseBlocks(t, out)[0]
		if strings.Join(got.ids, " ") != strings.Join(want, " ") {
			t.Errorf("--max-distance %s --scan %s: %v, want %v", radius, scan, got.ids, want)
		}
		out = mustRun(t, "query", "--index", idx, "--vector", vec, "--max-distance", radius, "-k", "3", "--scan", scan)
		if got := parseBlocks(t, out)[0]; strings.Join(got.ids, " ") != strings.Join(want[:3], " ") {
			t.Errorf("--max-distance %s -k 3 --scan %s: %v, want %v", radius, scan, got.ids, want[:3])
		}
	}

	out := mustRun(t, "query", "--index", idx, "--vector", vec, "--scan", "pruned", "--json", "--timings")
	var a struct {
		Timings map[string]float64 `json:"timings_ms"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &a); err != nil {
		t.Fatal(err)
	}
	if a.Timings["visited"] < 10 {
		t.Errorf("--scan pruned --timings: %v, want at least k rows visited", a.Timings)
	}
	if _, ok := a.Timings["faults_minor"]; !ok {
		t.Errorf("--timings has no page faults: %v", a.Timings)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scan", "fast"}, `scan "fast": want auto, full or pruned`},
		{[]string{"--max-distance", "-1"}, "--max-distance must be a finite number at least 0"},
		{[]string{"-k", "0", "--max-distance", "3"}, "-k must be at least 1"},
	} {
		_, errs, code := simsearch(t, append([]string{"query", "--index", idx, "--vector", vec}, tc.args...)...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q", tc.args, code, errs)
		}
	}
}
