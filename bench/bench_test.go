package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole harness on a small collection so that it cannot rot: it builds the
// binary, generates shards, checks that simsearch and the npy baseline agree, measures every
// contender and writes the table.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs whole processes; not in -short mode")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "simsearch")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/simsearch").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The harness runs from the repository root, as make does.
	wd, _ := os.Getwd()
	if err := os.Chdir(".."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	out := filepath.Join(tmp, "RESULTS.md")
	c := config{
		rows: 2000, dim: 1280, shardRows: 700, rounds: 2, loadRequests: 16, loadTime: 20 * time.Second,
		data: filepath.Join(tmp, "data"), out: out, bin: bin,
		model: "testdata/model/mobilenet_v2_feature_vector.onnx", image: "testdata/images/elephants.jpg",
		python: "/usr/bin/python3",
	}
	if err := run(c, t.Logf); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(b)
	for _, want := range []string{
		"| npy baseline", "| simsearch query --vector, synthetic index", "| simsearch query IMAGE, synthetic index", "| memory read",
		"| the seed's numpy loop, synthetic shards", "kernel generic |", "| simsearch convert", "| cp of the same shard files |",
		"Phases of `simsearch query IMAGE` on the synthetic index", "model_load", "ort_init", "session", "inference", "## Goals", "memory-read speed",
		"≤ 0.20 × the numpy loop and ≤ 60 ms (whole processes, synthetic index)", "≥ 30 × faster than the numpy loop (whole processes, synthetic index)",
		"--scan auto ≤ 1.10 × the full scan where pruning cannot help: bench (synthetic)", "all-equal rows", "one tight cluster",
		"server vector queries per second ≥ 10 × 157 (synthetic index", "convert ≤ 2 × cp",
		"## Server under load", "| POST /search (image", "| POST /search/vector",
		"## All pairs within a distance", "both found the same pairs, and simsearch every planted pair",
		"## Pruned exact search", "full scan and --scan auto in turn", "FAISS flat query / recall@10 / build",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	// Three shards of 700, 700 and 600 rows: the generator's uneven last shard.
	if n, _ := filepath.Glob(filepath.Join(tmp, "data", "2000x1280", "shards", "*.features.npy")); len(n) != 3 {
		t.Errorf("%d feature shards, want 3", len(n))
	}
}

// TestCollectionSmoke runs the living collection's harness (go run ./bench -collection) on a
// small collection, checking that it measures every row of bench/COLLECTION.md.
func TestCollectionSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs whole processes; not in -short mode")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "simsearch")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/simsearch").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	wd, _ := os.Getwd()
	if err := os.Chdir(".."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	out := filepath.Join(tmp, "COLLECTION.md")
	c := config{rows: 2000, dim: 1280, rounds: 2, data: tmp, bin: bin, model: "testdata/model/mobilenet_v2_feature_vector.onnx"}
	if err := collectionBench(c, 2000, []int{8}, out, t.Logf); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| add 10 photos to a 2000 × 1280 index", "| of which embedding the 10 photos alone", "| remove 10 ids",
		"| top-10 scan, 2020 rows of which 40 in the log", "| update of an unchanged folder of 2000 files",
		"| peak RSS of `update` embedding 8 photos", "| peak RSS of `query --id` on a 2000-row index with 400 rows in its log",
		"| peak RSS of `compact` on a 2000-row index with 400 rows in its log",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the report lacks %q:\n%s", want, b)
		}
	}
}
