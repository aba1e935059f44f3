package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"simsearch/dupes"
	"simsearch/query"
	"simsearch/shard"
)

// referenceIndex converts the bundled photos' reference features (written by the Python
// pipeline) into an index.
func referenceIndex(t *testing.T) string {
	t.Helper()
	data, dim, err := shard.ReadVectors(images + "/reference_features.npy")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(images + "/reference_ids.txt")
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(string(b))
	dir := t.TempDir()
	if err := shard.Write(dir, 0, ids, data, dim); err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "photos.simidx")
	mustRun(t, "convert", dir, "-o", idx)
	return idx
}

// TestQueryByID checks that a query by id answers exactly what a query by that row's vector
// does: the vectors are written out as an npy file and queried with --vector.
func TestQueryByID(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "exact.simidx")
	mustRun(t, "convert", testdata+"/exact", "-o", idx)
	ids, _, err := shard.ReadIDs(testdata + "/exact/0001.object_ids.npy")
	if err != nil {
		t.Fatal(err)
	}
	rows, dim, err := shard.ReadVectors(testdata + "/exact/0001.features.npy")
	if err != nil {
		t.Fatal(err)
	}
	n := min(len(ids), 6)
	vecDir := t.TempDir()
	if err := shard.Write(vecDir, 0, ids[:n], rows[:n*dim], dim); err != nil {
		t.Fatal(err)
	}
	byVector := decodeAnswers(t, mustRun(t, "query", "--index", idx, "-k", "7", "--json", "--vector", filepath.Join(vecDir, "0000.features.npy")))
	byID := decodeAnswers(t, mustRun(t, append([]string{"query", "--index", idx, "-k", "7", "--json", "--id"}, ids[:n]...)...))
	if len(byID) != n || len(byVector) != n {
		t.Fatalf("%d answers by id, %d by vector, want %d", len(byID), len(byVector), n)
	}
	for i := range n {
		if byID[i].Query != ids[i] {
			t.Errorf("answer %d is for %q, want %q", i, byID[i].Query, ids[i])
		}
		if !slices.Equal(byID[i].Results, byVector[i].Results) {
			t.Errorf("%s: by id %v\nby vector %v", ids[i], byID[i].Results, byVector[i].Results)
		}
		if byID[i].Results[0].ID != ids[i] || byID[i].Results[0].Distance != 0 {
			t.Errorf("%s: first result %v, want itself at 0", ids[i], byID[i].Results[0])
		}
	}
	if _, errs, code := simsearch(t, "query", "--index", idx, "--id", "no such id"); code == 0 || !strings.Contains(errs, `no id "no such id"`) {
		t.Errorf("unknown id: exit %d, %q", code, errs)
	}
}

func decodeAnswers(t *testing.T, out string) []query.Answer {
	t.Helper()
	var as []query.Answer
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var a query.Answer
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("%v in %q", err, out)
		}
		as = append(as, a)
	}
	return as
}

// TestQueryTSV checks that the tab-separated output keeps an id with spaces whole.
func TestQueryTSV(t *testing.T) {
	data, dim, err := shard.ReadVectors(images + "/reference_features.npy")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ids := []string{"holiday 2024/beach one.jpg", "b.jpg", "c d.png"}
	if err := shard.Write(dir, 0, ids, data[:3*dim], dim); err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "x.simidx")
	mustRun(t, "convert", dir, "-o", idx)
	out := mustRun(t, "query", "--index", idx, "--tsv", "-k", "3", "--id", ids[0])
	var got []string
	for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 || f[0] != ids[0] {
			t.Fatalf("line %q: want QUERY<TAB>ID<TAB>DISTANCE", sc.Text())
		}
		got = append(got, f[1])
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
}

func TestDupesCommand(t *testing.T) {
	idx := referenceIndex(t)
	out := mustRun(t, "dupes", "--index", idx, "--json")
	var groups []dupes.NamedGroup
	for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
		var g dupes.NamedGroup
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		groups = append(groups, g)
	}
	if len(groups) != 9 {
		t.Fatalf("%d groups, want the 9 edited copies: %v", len(groups), groups)
	}
	for _, g := range groups {
		if len(g.IDs) != 2 || len(g.Pairs) != 1 || g.Pairs[0].Distance > dupes.DefaultMaxDistance {
			t.Errorf("group %+v", g)
		}
		stem := func(s string) string {
			return strings.FieldsFunc(s, func(r rune) bool { return r == '_' || r == '.' })[0]
		}
		if stem(g.IDs[0]) != stem(g.IDs[1]) {
			t.Errorf("%v grouped: not copies of one photo", g.IDs)
		}
	}
	// A tighter distance keeps only the closest copies; the TSV has one line per pair.
	tsv := mustRun(t, "dupes", "--index", idx, "--tsv", "--max-distance", "1")
	if lines := strings.Count(tsv, "\n"); lines != 3 {
		t.Errorf("within 1: %d pairs, want 3 (coffee 0.45, dune 0.86, aqua 0.91):\n%s", lines, tsv)
	}
	if _, errs, code := simsearch(t, "dupes", "--index", idx, "--max-distance", "-1"); code == 0 || !strings.Contains(errs, "--max-distance") {
		t.Errorf("negative distance: exit %d, %q", code, errs)
	}
}

func TestVersionAndHelp(t *testing.T) {
	out := mustRun(t, "--version")
	for _, want := range []string{"simsearch ", "commit:", "kernel:", "onnxruntime: 1."} {
		if !strings.Contains(out, want) {
			t.Errorf("--version lacks %q:\n%s", want, out)
		}
	}
	var info buildInfo
	if err := json.Unmarshal([]byte(mustRun(t, "version", "--json")), &info); err != nil || info.Kernel == "" || info.ORT == "" {
		t.Errorf("version --json: %+v, %v", info, err)
	}
	for _, cmd := range []string{"dupes", "query", "serve"} {
		if out := mustRun(t, "help", cmd); !strings.Contains(out, "simsearch "+cmd) || !strings.Contains(out, "Example") {
			t.Errorf("help %s:\n%s", cmd, out)
		}
	}
}

func TestIDArgs(t *testing.T) {
	got, err := idArgs([]string{"a b.jpg", "-", "z.jpg"}, strings.NewReader("x.jpg\r\n\ny y.png\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a b.jpg", "x.jpg", "y y.png", "z.jpg"}; !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	if got, err := idArgs([]string{"-"}, strings.NewReader("\r\n\n")); err == nil || !strings.Contains(err.Error(), "no ids given on standard input") {
		t.Errorf("blank standard input: %q, %v", got, err)
	}
}

// add takes image files only: "-" is refused with the reason, and nothing is added.
func TestAddRefusesStdin(t *testing.T) {
	idx := referenceIndex(t)
	before := mustRun(t, "info", "--json", idx)
	_, errs, code := simsearch(t, "add", "--index", idx, "-")
	if code == 0 || !strings.Contains(errs, `"-": add reads image files, not standard input`) {
		t.Errorf("add -: exit %d, %q", code, errs)
	}
	if after := mustRun(t, "info", "--json", idx); after != before {
		t.Errorf("the index changed: %s, then %s", before, after)
	}
}

func TestVerifyJSON(t *testing.T) {
	idx := referenceIndex(t)
	bad := filepath.Join(t.TempDir(), "bad.simidx")
	os.WriteFile(bad, []byte("not an index"), 0o644)
	out, _, code := simsearch(t, "verify", "--json", idx, bad)
	if code != 1 {
		t.Errorf("exit %d with a damaged file, want 1", code)
	}
	var got []map[string]any
	for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, m)
	}
	if len(got) != 2 || got[0]["ok"] != true || got[1]["ok"] != false || !strings.Contains(fmt.Sprint(got[1]["error"]), "bad.simidx") {
		t.Errorf("verify --json: %v", got)
	}
}

// TestExtractJSON extracts a folder of two photos and a broken file whose name holds a newline:
// --json prints the summary on stdout, the broken file among the skipped ones by its exact name,
// and the warning on stderr names it escaped, on one line.
func TestExtractJSON(t *testing.T) {
	photos := t.TempDir()
	bad := filepath.Join(photos, "bad\nname.jpg")
	for src, dst := range map[string]string{"tiny_red.png": "tiny_red.png", "ladybird.jpg": "ladybird.jpg", "broken_text.jpg": "bad\nname.jpg"} {
		b, err := os.ReadFile(filepath.Join(images, src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(photos, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shards := filepath.Join(t.TempDir(), "shards")
	out, errs, code := simsearch(t, "extract", photos, "-o", shards, "--model", model, "--json")
	var sum extractSummary
	if err := json.Unmarshal([]byte(out), &sum); code != 0 || err != nil {
		t.Fatalf("extract --json: exit %d, stdout %q (%v), stderr %q", code, out, err, errs)
	}
	if sum.Output != shards || sum.Images != 2 || sum.Shards != 1 || len(sum.Skipped) != 1 || sum.Skipped[0].Path != bad || !strings.Contains(sum.Skipped[0].Error, "not a readable image") {
		t.Errorf("summary %+v", sum)
	}
	if want := "simsearch: skipping " + strconv.Quote(bad) + ": "; !strings.HasPrefix(errs, want) || strings.Count(errs, "\n") != 1 {
		t.Errorf("stderr %q, want one line starting %q", errs, want)
	}
}

// TestEveryCommandHasJSON holds the README to its word: every command that prints a result or a
// summary has --json. serve answers JSON over HTTP and logs to stderr; compact prints nothing.
func TestEveryCommandHasJSON(t *testing.T) {
	for _, cmd := range newApp().Commands {
		if cmd.Name == "serve" || cmd.Name == "compact" {
			continue
		}
		if !slices.ContainsFunc(cmd.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), "json") }) {
			t.Errorf("simsearch %s has no --json", cmd.Name)
		}
	}
}

// TestDupesEscapesIDs lists a pair whose ids hold a newline and a tab: the text and TSV outputs
// keep one line per id or pair, printing such ids quoted as query does; --json prints them as
// they are.
func TestDupesEscapesIDs(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"a\nb.jpg", "c\td.jpg", "far.jpg"}
	rows := []float32{1, 2, 3, 4, 1, 2, 3, 4.5, 9, 9, 9, 9}
	if err := shard.Write(dir, 0, ids, rows, 4); err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "x.simidx")
	mustRun(t, "convert", dir, "-o", idx)
	a, c := strconv.Quote(ids[0]), strconv.Quote(ids[1])
	if out, want := mustRun(t, "dupes", "--index", idx), "# group 1: 2 photos\n"+a+"\n"+c+"\n  0.5000  "+a+"  ~  "+c+"\n"; out != want {
		t.Errorf("text output %q, want %q", out, want)
	}
	if out, want := mustRun(t, "dupes", "--index", idx, "--tsv"), "1\t0.5\t"+a+"\t"+c+"\n"; out != want {
		t.Errorf("TSV output %q, want %q", out, want)
	}
	var g dupes.NamedGroup
	if err := json.Unmarshal([]byte(mustRun(t, "dupes", "--index", idx, "--json")), &g); err != nil || !slices.Equal(g.IDs, ids[:2]) {
		t.Errorf("--json: %+v, %v", g, err)
	}
}
