package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// distTolerance bounds the relative difference allowed between two contenders' distances to the
// same row. Each computes a float32 sum of 1,280 squares in its own order (numpy pairwise, the
// kernels in SIMD lanes, the baseline sequentially); the worst-case relative error of such a sum is
// dim·2⁻²⁴ ≈ 7.6e-5, and 1e-4 covers it plus the final rounding of the square root.
const distTolerance = 1e-4

// agree checks that got is the same top-k as want: the same ids in the same order, each at the
// same distance within distTolerance. Two ids may swap places only where their distances are
// within that tolerance of each other (a near-tie that summation order can flip), and an id
// outside want's top k may take a place only at want's last distance (a tie at the cut).
func agree(gotName string, got []hit, wantName string, want []hit) error {
	mismatch := func(why string) error {
		return fmt.Errorf("%s and %s disagree: %s\n%s: %s\n%s: %s", gotName, wantName, why, gotName, fmtHits(got), wantName, fmtHits(want))
	}
	if len(got) != len(want) {
		return mismatch(fmt.Sprintf("%d results against %d", len(got), len(want)))
	}
	pos := make(map[string]int, len(want))
	for j, h := range want {
		pos[h.id] = j
	}
	for i, g := range got {
		j, ok := pos[g.id]
		if !ok {
			// Rows tied with want's last one straddle the cut: each contender breaks the tie its
			// own way (simsearch by row, the baseline by shard then argsort), so another of them
			// may take the last places.
			if len(want) > 0 && near(g.dist, want[len(want)-1].dist) && near(g.dist, want[i].dist) {
				continue
			}
			return mismatch(fmt.Sprintf("%s (rank %d) is not in %s's top %d", g.id, i+1, wantName, len(want)))
		}
		if !near(g.dist, want[j].dist) {
			return mismatch(fmt.Sprintf("%s at distance %g against %g", g.id, g.dist, want[j].dist))
		}
		if i != j && !near(g.dist, want[i].dist) {
			return mismatch(fmt.Sprintf("%s ranks %d against %d and is not tied with %s", g.id, i+1, j+1, want[i].id))
		}
	}
	return nil
}

func near(a, b float32) bool {
	return math.Abs(float64(a)-float64(b)) <= distTolerance*max(1, math.Abs(float64(b)))
}

func fmtHits(hs []hit) string {
	var b strings.Builder
	for i, h := range hs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%.12s… %g", h.id, h.dist)
	}
	return b.String()
}

// queryHits runs `simsearch query --json ARGS...` for one query and returns its results.
func queryHits(bin string, args ...string) ([]hit, error) {
	cmd := exec.Command(bin, append([]string{"query", "--json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	var a struct {
		Results []struct {
			ID       string  `json:"id"`
			Distance float64 `json:"distance"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &a); err != nil {
		return nil, fmt.Errorf("%s printed %q: %w", strings.Join(cmd.Args, " "), out, err)
	}
	hs := make([]hit, len(a.Results))
	for i, r := range a.Results {
		hs[i] = hit{r.ID, float32(r.Distance)}
	}
	return hs, nil
}

// numpyHits runs the seed's numpy loop (bench/seed_search.py) and parses its "ID DISTANCE" lines.
func numpyHits(cmd *exec.Cmd) ([]hit, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	var hs []hit
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		id, d, ok := strings.Cut(line, " ")
		f, err := strconv.ParseFloat(d, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s printed %q, not \"ID DISTANCE\"", strings.Join(cmd.Args, " "), line)
		}
		hs = append(hs, hit{id, float32(f)})
	}
	return hs, nil
}

// imageEmbedding writes the query image's embedding as a [1, dim] npy file under work, with
// `simsearch extract` (the same model, decoder and preprocessing as `simsearch query IMAGE`), so
// that the numpy loop can search for the very vector simsearch searches for.
func imageEmbedding(bin, model, image, work string) (string, error) {
	in, out := filepath.Join(work, "query-image"), filepath.Join(work, "query-image-shards")
	if err := os.MkdirAll(in, 0o755); err != nil {
		return "", err
	}
	b, err := os.ReadFile(image)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(in, filepath.Base(image)), b, 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "extract", in, "-o", out, "--model", model)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, msg)
	}
	return filepath.Join(out, "0000.features.npy"), nil
}
