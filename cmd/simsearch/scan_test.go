package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"simsearch/index"
	"simsearch/prune"
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
	if _, ok := a.Timings["scan_faults_minor"]; !ok {
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

// TestVerifyDamagedPCA checks that verify fails, exit 1, on an index whose PCA section is damaged:
// a flipped byte (the section's checksum no longer matches) and, with a valid checksum, a stale
// signature (what a writer that changed a row without projecting it again would leave), which
// could make the pruned search skip a true neighbour. And that --scan pruned refuses an index
// without a section rather than run the full scan under its name.
func TestVerifyDamagedPCA(t *testing.T) {
	dir := t.TempDir()
	idx := filepath.Join(dir, "exact.simidx")
	mustRun(t, "convert", testdata+"/exact", "-o", idx, "--pca-rank", "8")
	ix, err := index.Open(idx)
	if err != nil {
		t.Fatal(err)
	}
	data, version, ok := ix.Section(index.SectionPCA)
	if !ok || version != prune.Version {
		t.Fatalf("convert wrote no PCA section of version %d", prune.Version)
	}
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(data))) - uintptr(unsafe.Pointer(unsafe.SliceData(ix.Header()))))
	sec, err := prune.FromIndex(ix)
	if err != nil {
		t.Fatal(err)
	}
	enc := sec.Encode()
	ids := make([]string, ix.Len())
	for r := range ids {
		if ids[r], err = ix.ID(r); err != nil {
			t.Fatal(err)
		}
	}
	rows := slices.Clone(ix.Vectors())
	ix.Close()

	b, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Join(dir, "flipped.simidx")
	b[off+len(data)-5] ^= 0x10 // in the last group's signatures
	if err := os.WriteFile(flipped, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := simsearch(t, "verify", flipped); code != 1 || !strings.Contains(errs, "optional (kind 1) section checksum") {
		t.Errorf("verify of a flipped PCA byte: exit %d, %s", code, errs)
	}

	// The same rows with one signature value changed, written with a valid checksum.
	stale := filepath.Join(dir, "stale.simidx")
	w, err := index.Create(stale, len(rows)/len(ids), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(ids, rows); err != nil {
		t.Fatal(err)
	}
	sigs := pcaSignatures(enc, len(rows)/len(ids))
	v := binary.LittleEndian.Uint32(enc[sigs+4*3:]) // row 3's first coordinate (packed: FORMAT.md)
	binary.LittleEndian.PutUint32(enc[sigs+4*3:], math.Float32bits(math.Float32frombits(v)+0.5))
	w.AddSection(index.SectionPCA, prune.Version, enc)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := simsearch(t, "verify", stale); code != 1 || !strings.Contains(errs, "PCA section: row 3's signature") || !strings.Contains(errs, "stale or damaged") {
		t.Errorf("verify of a stale signature: exit %d, %s", code, errs)
	}

	bare := filepath.Join(dir, "bare.simidx")
	mustRun(t, "convert", testdata+"/exact", "-o", bare, "--pca-rank", "0")
	vec := testdata + "/exact/queries.npy"
	if _, errs, code := simsearch(t, "query", "--index", bare, "--vector", vec, "--scan", "pruned"); code != 1 || !strings.Contains(errs, "no PCA section") {
		t.Errorf("--scan pruned without a section: exit %d, %s", code, errs)
	}
	mustRun(t, "query", "--index", bare, "--vector", vec, "--scan", "auto")
}

// pcaSignatures returns the offset of the signatures in an encoded PCA section (FORMAT.md) for
// rows of dim floats.
func pcaSignatures(sec []byte, dim int) int {
	rank := int(binary.LittleEndian.Uint32(sec[4:]))
	pad := func(n int) int { return (n + 63) &^ 63 }
	return 64 + pad(4*dim) + pad(4*rank*dim)
}

// TestBatchTimings checks --timings for a --vector batch (4 queries): pruned queries each report
// their own scan, rows visited and page faults, and no shared pass; queries answered by one full
// pass together report that pass as shared_pass (with the number of queries), not as their own
// scan, which was the batch's time repeated for every query before.
func TestBatchTimings(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "exact.simidx")
	mustRun(t, "convert", testdata+"/exact", "-o", idx, "--pca-rank", "8")
	vec := testdata + "/exact/queries.npy"
	answers := func(scan string) []map[string]float64 {
		out := mustRun(t, "query", "--index", idx, "--vector", vec, "--scan", scan, "--json", "--timings")
		var all []map[string]float64
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var a struct {
				Timings map[string]float64 `json:"timings_ms"`
			}
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatal(err)
			}
			all = append(all, a.Timings)
		}
		if len(all) != 4 {
			t.Fatalf("--scan %s: %d answers, want 4", scan, len(all))
		}
		return all
	}
	for i, tm := range answers("pruned") {
		_, shared := tm["shared_pass"]
		_, faults := tm["scan_faults_minor"]
		if tm["visited"] < 10 || shared || !faults {
			t.Errorf("--scan pruned, query %d: %v; want its own visited (at least k), scan faults, no shared pass", i, tm)
		}
	}
	for i, tm := range answers("full") {
		if tm["shared_pass_queries"] != 4 || tm["shared_pass"] <= 0 || tm["scan"] != 0 {
			t.Errorf("--scan full, query %d: %v; want one pass shared by 4 queries, none of it its own scan", i, tm)
		}
		if _, ok := tm["shared_pass_faults_minor"]; !ok {
			t.Errorf("--scan full, query %d: no faults for the shared pass: %v", i, tm)
		}
	}
}
