package main

import (
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"simsearch/collection"
	"simsearch/folder"
	"simsearch/index"
	"simsearch/ingest"
)

// pool lists the readable bundled photos.
func pool(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob(images + "/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range all {
		base := filepath.Base(p)
		if strings.HasPrefix(base, "broken") || strings.HasPrefix(base, "reference") {
			continue
		}
		out = append(out, p)
	}
	return out
}

// photoFolder is a folder of copies of bundled photos whose state a test tracks: which photo
// each file is a copy of.
type photoFolder struct {
	t     *testing.T
	root  string
	pool  []string
	files map[string]string // id -> source photo
	r     *rand.Rand
	n     int
	clock time.Time
}

func newPhotoFolder(t *testing.T, seed uint64) *photoFolder {
	return &photoFolder{t: t, root: t.TempDir(), pool: pool(t), files: map[string]string{}, r: rand.New(rand.NewPCG(seed, 7)), clock: time.Unix(1_700_000_000, 0)}
}

// names are the shapes of ids a collection meets: nested, with spaces, non-ASCII, object store.
func (f *photoFolder) name(src string) string {
	f.n++
	ext := filepath.Ext(src)
	switch f.n % 4 {
	case 0:
		return fmt.Sprintf("2024/trip %d%s", f.n, ext)
	case 1:
		return fmt.Sprintf("été_%d%s", f.n, ext)
	case 2: // the seed's object store: the SHA-1 (of anything: only the layout matters here)
		h := fmt.Sprintf("%x", sha1.Sum(fmt.Appendf(nil, "%d-%d", f.n, f.r.Uint64())))
		return h[:2] + "/" + h[2:4] + "/" + h + ext
	}
	return fmt.Sprintf("p%03d%s", f.n, ext)
}

func (f *photoFolder) write(rel, src string) {
	data, err := os.ReadFile(src)
	if err != nil {
		f.t.Fatal(err)
	}
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
	f.clock = f.clock.Add(time.Second)
	if err := os.Chtimes(p, f.clock, f.clock); err != nil {
		f.t.Fatal(err)
	}
}

// id is the collection id of the file at rel.
func id(rel string) string { return folder.ID(rel) }

func (f *photoFolder) rels() []string {
	var out []string
	filepath.WalkDir(f.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(f.root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func (f *photoFolder) add(n int) []string {
	var added []string
	for range n {
		src := f.pool[f.r.IntN(len(f.pool))]
		rel := f.name(src)
		f.write(rel, src)
		f.files[id(rel)] = src
		added = append(added, rel)
	}
	return added
}

func (f *photoFolder) remove(n int) []string {
	var ids []string
	rels := f.rels()
	for range min(n, len(rels)) {
		i := f.r.IntN(len(rels))
		if err := os.Remove(filepath.Join(f.root, rels[i])); err != nil {
			f.t.Fatal(err)
		}
		delete(f.files, id(rels[i]))
		ids = append(ids, id(rels[i]))
		rels = slices.Delete(rels, i, i+1)
	}
	return ids
}

// modify gives a file another photo's content (changed) or the same content again with a new
// modification time (touched).
func (f *photoFolder) modify(n int, touch bool) {
	rels := f.rels()
	for range min(n, len(rels)) {
		rel := rels[f.r.IntN(len(rels))]
		src := f.files[id(rel)]
		if !touch {
			src = f.pool[f.r.IntN(len(f.pool))]
		}
		f.write(rel, src)
		f.files[id(rel)] = src
	}
}

func (f *photoFolder) snapshot() map[string]string {
	out := make(map[string]string, len(f.files))
	for k, v := range f.files {
		out[k] = v
	}
	return out
}

// reusableInFolder counts the files of the folder at root (as update lists it) whose vector a
// writer of the collection at path offers from its log: embedded by a call that did not commit
// it, from the file as it is now.
func reusableInFolder(t *testing.T, path, root string) int {
	t.Helper()
	w, err := collection.OpenWriter(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	l, err := folder.Walk(root, folder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range l.Files {
		if _, ok := w.Reused(f.ID, f.Size, f.MtimeNS); ok {
			n++
		}
	}
	return n
}

func updateJSON(t *testing.T, args ...string) ingest.Summary {
	t.Helper()
	out := mustRun(t, append([]string{"update", "--json"}, args...)...)
	var s ingest.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("update --json printed %q: %v", out, err)
	}
	return s
}

// TestUpdateEqualsFreshBuild changes a folder at random (photos added, removed, given other
// content, touched), brings an index in step after each round without compacting, and checks
// the summaries, then that every query answers exactly (ids and distances) as an index built
// fresh over the final folder, before and after compaction.
func TestUpdateEqualsFreshBuild(t *testing.T) {
	f := newPhotoFolder(t, 1)
	f.add(6)
	inc := filepath.Join(t.TempDir(), "inc.simidx")
	s := updateJSON(t, "--index", inc, "--model", model, "--batch", "4", f.root)
	if s.Added != 6 || s.Embedded != 6 || len(s.Failed) != 0 {
		t.Fatalf("first update: %+v", s)
	}
	for round := range 3 {
		f.add(2)
		removed := len(f.remove(1))
		f.modify(1, false)
		f.modify(1, true)
		s := updateJSON(t, "--index", inc, "--no-compact", "--batch", "3")
		if s.Added != 2 || s.Removed != removed || s.Embedded != s.Added+s.Changed || s.Added+s.Changed+s.Unchanged != len(f.files) {
			t.Fatalf("round %d: %+v for a folder of %d files", round, s, len(f.files))
		}
	}
	if s := updateJSON(t, "--index", inc); s.Embedded != 0 || s.Unchanged != len(f.files) {
		t.Fatalf("update of an unchanged folder: %+v", s)
	}
	fresh := filepath.Join(t.TempDir(), "fresh.simidx")
	updateJSON(t, "--index", fresh, "--model", model, f.root)
	queries := f.pool[:5]
	want := mustRun(t, append([]string{"query", "--index", fresh, "-k", "100"}, queries...)...)
	if got := mustRun(t, append([]string{"query", "--index", inc, "-k", "100"}, queries...)...); got != want {
		t.Fatalf("updated index answers\n%s\nfresh build answers\n%s", got, want)
	}
	if n := strings.Count(want, "\n"); n != len(queries)*(len(f.files)+1) {
		t.Fatalf("%d result lines for %d queries over %d files", n, len(queries), len(f.files))
	}
	mustRun(t, "compact", inc)
	if _, err := os.Stat(inc + ".log"); err == nil {
		t.Fatal("compact left the change log")
	}
	if got := mustRun(t, append([]string{"query", "--index", inc, "-k", "100"}, queries...)...); got != want {
		t.Fatalf("compacted index answers\n%s\nfresh build answers\n%s", got, want)
	}
	mustRun(t, "verify", inc)
}

// collectionState is what a collection holds: id -> vector.
func collectionState(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	v, err := collection.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release()
	out := map[string][]float32{}
	if err := v.Each(func(id string, _ collection.FileState, vec []float32) error {
		out[id] = slices.Clone(vec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// equalState reports whether a collection holds exactly the files of a folder snapshot, each
// with the vector of its photo.
func equalState(got map[string][]float32, files map[string]string, ref map[string][]float32) bool {
	if len(got) != len(files) {
		return false
	}
	for id, src := range files {
		if !slices.Equal(got[id], ref[filepath.Base(src)]) {
			return false
		}
	}
	return true
}

// TestCrashAtAnyInstant kills update, add and remove processes (kill -9), at least 20 times
// while they run, most of them mid-embedding, and checks each time that the index opens,
// verifies, and holds either the state before the call or the state after it; that the calls
// which used to lose the killed call's embedding work (a second kill during the resume, a refused
// remove, a compact, an update whose model does not load) keep it; and that the next update
// completes, taking every row the killed calls made durable from the log instead of embedding
// it again (so that it re-embeds at most the batch that was in flight).
func TestCrashAtAnyInstant(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simsearch processes for about half a minute")
	}
	// Reference vectors: every photo of the pool, embedded once.
	refIndex := filepath.Join(t.TempDir(), "ref.simidx")
	refDir := t.TempDir()
	for _, p := range pool(t) {
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(refDir, filepath.Base(p)), data, 0o644)
	}
	updateJSON(t, "--index", refIndex, "--model", model, refDir)
	ref := collectionState(t, refIndex)

	f := newPhotoFolder(t, 2)
	f.add(4)
	path := filepath.Join(t.TempDir(), "c.simidx")
	start := time.Now()
	if err := startChild(t, "update", "--index", path, "--model", model, "--batch", strconv.Itoa(crashBatch), f.root).Wait(); err != nil {
		t.Fatal(err)
	}
	// A call like this one, for the kills that fall anywhere: model load, batches, commit,
	// compaction.
	span := time.Since(start) * 3 / 2
	before := f.snapshot()

	// check verifies the index and finds its state: the one before the call, or the one after.
	check := func(trial int, what string, after map[string]string) (collection.LogReport, string) {
		t.Helper()
		rep, err := collection.Verify(path)
		if err != nil {
			t.Fatalf("trial %d (%s): %v", trial, what, err)
		}
		got := collectionState(t, path)
		switch {
		case equalState(got, after, ref):
			return rep, "new"
		case equalState(got, before, ref):
			return rep, "old"
		}
		t.Fatalf("trial %d (%s): the index holds %d rows, neither the %d before nor the %d after", trial, what, len(got), len(before), len(after))
		return rep, ""
	}
	const wantKills = 20
	states := map[string]int{}
	kills, midEmbedding, trials := 0, 0, 0
	// Until 20 kills, and kills that caught a call before its commit and after it.
	for trial := 0; kills < wantKills || states["old"] == 0 || states["new"] == 0; trial++ {
		trials++
		if trial == 4*wantKills {
			t.Fatalf("%d trials killed %d calls while they ran, in states %v: the trial timing is off", trial, kills, states)
		}
		var args []string
		embeds := 0 // photos the call embeds, at least
		kind := trial % 5
		switch kind {
		case 0, 1, 4:
			embeds = len(f.add(4 + f.r.IntN(4)))
			f.remove(f.r.IntN(2))
			f.modify(f.r.IntN(2), false)
			f.modify(f.r.IntN(2), true)
			args = []string{"update", "--index", path, "--batch", strconv.Itoa(crashBatch)}
		case 2:
			args = []string{"add", "--index", path, "--batch", strconv.Itoa(crashBatch)}
			for _, rel := range f.add(4 + f.r.IntN(4)) {
				args = append(args, filepath.Join(f.root, rel))
				embeds++
			}
		case 3:
			args = append([]string{"remove", "--index", path}, f.remove(1+f.r.IntN(2))...)
		}
		after := f.snapshot()
		// Most kills fall mid-embedding: once the log has grown by the bytes of some of the call's
		// rows (at least batch+1 of them, so that one batch is whole in the log), before its last.
		// Every fourth falls in the compaction that follows a commit, if the call compacts. Those
		// of remove fall anywhere in a call's span.
		rows := 0
		switch {
		case embeds > 0 && trial%4 == 3:
			rows = inCompaction
		case embeds > 0:
			rows = crashBatch + 1 + f.r.IntN(embeds-crashBatch-1)
		}
		killed := killChild(t, path, args, rows, span, f.r)
		rep, state := check(trial, args[0]+" killed", after)
		switch {
		case killed && rows == inCompaction && state != "new":
			t.Fatalf("trial %d: %s killed while compacting, but the index does not hold its commit", trial, args[0])
		// The log grew by rows rows' bytes, but the batch being written may be torn: a kill
		// stops a write between pages, and the file's size grows page by page. That batch in
		// flight is all a kill may cost; every batch before it must be offered for reuse.
		case killed && rows > 0 && state == "old" && rep.Reusable < rows-crashBatch:
			t.Fatalf("trial %d: %s killed after the log grew by %d rows, but it offers %d for reuse (a batch is %d)", trial, args[0], rows, rep.Reusable, crashBatch)
		}
		if !killed { // it finished first: not a kill
			if state != "new" {
				t.Fatalf("trial %d: %s finished but the index holds the state before it", trial, args[0])
			}
			before = after
			continue
		}
		kills++
		states[state]++
		if rep.Reusable > 0 {
			midEmbedding++
			// The calls that used to throw the killed call's work away.
			var what string
			switch midEmbedding % 5 {
			case 1: // killed again while resuming
				what = "second kill"
				killChild(t, path, []string{"update", "--index", path, "--batch", strconv.Itoa(crashBatch)}, 1, span, f.r)
			case 2:
				what = "refused remove"
				if _, _, code := simsearch(t, "remove", "--index", path, "nosuch.jpg"); code == 0 {
					t.Fatalf("trial %d: remove of an absent id succeeded", trial)
				}
			case 3:
				what = "compact"
				mustRun(t, "compact", path)
			case 4: // a new photo needs the model, which does not load
				what = "update with a missing model"
				f.add(1)
				after = f.snapshot()
				if _, _, code := simsearch(t, "update", "--index", path, "--model", filepath.Join(t.TempDir(), "nosuch.onnx")); code == 0 {
					t.Fatalf("trial %d: an update with a missing model succeeded", trial)
				}
			}
			if what != "" {
				rep2, state2 := check(trial, what, after)
				if state2 == "old" && rep2.Reusable < rep.Reusable {
					t.Fatalf("trial %d: after a %s the log offers %d embedded rows for reuse; the killed call had left %d", trial, what, rep2.Reusable, rep.Reusable)
				}
				rep = rep2
			}
		}
		// The log may also hold rows of files that a later trial removed or changed (the next
		// compaction drops them): every row of a file still there as it was embedded is reused.
		offered := reusableInFolder(t, path, f.root)
		if offered > rep.Reusable {
			t.Fatalf("trial %d: a writer offers %d embedded rows of the folder's files, verify counts %d in the log", trial, offered, rep.Reusable)
		}
		s := updateJSON(t, "--index", path, "--batch", strconv.Itoa(crashBatch))
		if s.Reused != offered {
			t.Fatalf("trial %d: the log offered %d embedded rows of the folder's files (%d in all), the next update reused %d (%+v)", trial, offered, rep.Reusable, s.Reused, s)
		}
		if got := collectionState(t, path); !equalState(got, after, ref) {
			t.Fatalf("trial %d: the update after the kill does not reach the folder's state", trial)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp-*")); len(left) > 0 {
			t.Fatalf("trial %d: temporary files of the killed call remain after the next update: %v", trial, left)
		}
		before = after
	}
	t.Logf("%d kills in %d trials: states %v, %d of them with embedded rows left in the log (a call takes about %v)", kills, trials, states, midEmbedding, span)
	if midEmbedding < kills/2 {
		t.Errorf("only %d of %d kills left embedded rows in the log: the kills do not land mid-embedding", midEmbedding, kills)
	}
}

// crashBatch is the --batch of the crash test's calls: the rows embedded and logged at a time.
const crashBatch = 2

// inCompaction asks killChild to kill once the call writes a new index file (compaction).
const inCompaction = -1

// killChild runs args in a child process and kills it (kill -9): as soon as the log at path has
// grown by rows rows (of 1,280 floats; deletions are far smaller), or with rows inCompaction as
// soon as the call starts writing a new index file, or with rows 0 at a random instant of span.
// It reports whether the kill caught the process running.
func killChild(t *testing.T, path string, args []string, rows int, span time.Duration, r *rand.Rand) bool {
	t.Helper()
	size := func() int64 {
		fi, err := os.Stat(path + ".log")
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	compacting := func() bool {
		tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
		return len(tmp) > 0
	}
	start := size()
	cmd := startChild(t, args...)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	wait := func(d time.Duration) bool {
		select {
		case err := <-exited:
			exited <- err
			return false
		case <-time.After(d):
			return true
		}
	}
	switch {
	case rows == inCompaction:
		for !compacting() && wait(time.Millisecond) {
		}
	case rows > 0:
		for size() < start+int64(rows)*4*1280 && wait(time.Millisecond) {
		}
	default:
		wait(time.Duration(r.Int64N(int64(span))))
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err := <-exited
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

// start runs args in a child simsearch process (see TestHelperProcess).
func startChild(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := child(args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestConvertedIndex follows the path of a user of the Python pipeline: shards whose ids are the
// object store's file names, converted with --root, then kept current by update, which embeds
// only what the shards do not hold; and add and remove on an index without a root.
func TestConvertedIndex(t *testing.T) {
	store, flat := t.TempDir(), t.TempDir()
	var names []string
	for _, p := range pool(t)[:5] {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%x%s", sha1.Sum(data), filepath.Ext(p))
		names = append(names, name)
		if len(names) == 5 {
			break // the fifth joins the store later
		}
		for _, dst := range []string{filepath.Join(flat, name), filepath.Join(store, name[:2], name[2:4], name)} {
			os.MkdirAll(filepath.Dir(dst), 0o755)
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := t.TempDir()
	shards, idx := filepath.Join(tmp, "shards"), filepath.Join(tmp, "c.simidx")
	mustRun(t, "extract", flat, "-o", shards, "--model", model)
	mustRun(t, "convert", shards, "-o", idx, "--root", store)
	if s := updateJSON(t, "--index", idx); s.Embedded != 0 || s.Unchanged != 4 || s.Added != 0 || s.Removed != 0 {
		t.Fatalf("update of a converted index re-embedded or lost rows: %+v", s)
	}
	fifth, _ := os.ReadFile(pool(t)[4])
	name := names[4]
	os.MkdirAll(filepath.Join(store, name[:2], name[2:4]), 0o755)
	if err := os.WriteFile(filepath.Join(store, name[:2], name[2:4], name), fifth, 0o644); err != nil {
		t.Fatal(err)
	}
	if s := updateJSON(t, "--index", idx); s.Embedded != 1 || s.Added != 1 || s.Unchanged != 4 {
		t.Fatalf("update after a new photo: %+v", s)
	}
	fresh := filepath.Join(tmp, "fresh.simidx")
	updateJSON(t, "--index", fresh, "--model", model, store)
	q := pool(t)[2]
	if got, want := mustRun(t, "query", "--index", idx, q), mustRun(t, "query", "--index", fresh, q); got != want || !strings.Contains(got, names[4]) {
		t.Fatalf("converted and updated:\n%s\nfresh:\n%s", got, want)
	}

	// Without a root, add names rows by their file names.
	bare := filepath.Join(tmp, "bare.simidx")
	mustRun(t, "convert", shards, "-o", bare)
	if _, errs, code := simsearch(t, "update", "--index", bare); code == 0 || !strings.Contains(errs, "--root") {
		t.Fatalf("update of an index without a root: exit %d, %s", code, errs)
	}
	photo := filepath.Join(flat, names[0])
	if _, errs, code := simsearch(t, "add", "--index", bare, photo); code == 0 || !strings.Contains(errs, names[0]) {
		t.Fatalf("add of a present id: exit %d, %s", code, errs)
	}
	out := mustRun(t, "add", "--index", bare, "--replace", "--json", photo, pool(t)[4])
	var s ingest.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Changed != 1 || s.Added != 1 || s.Embedded != 2 {
		t.Fatalf("add --replace: %s (%v)", out, err)
	}
	if _, _, code := simsearch(t, "remove", "--index", bare, names[1], "no-such-id"); code == 0 {
		t.Fatal("remove of an absent id succeeded")
	}
	mustRun(t, "remove", "--index", bare, names[1], filepath.Base(pool(t)[4]))
	var in indexInfo
	if err := json.Unmarshal([]byte(mustRun(t, "info", "--json", bare)), &in); err != nil || in.Count != 3 {
		t.Fatalf("after adding 1 and removing 2 of 4: %+v (%v)", in, err)
	}
	mustRun(t, "verify", bare)
}

// TestExifTranspose checks that --exif-transpose, recorded in the index, turns images upright for
// embedding and for queries alike: dune_exif_rotated.jpg holds dune.jpg's pixels with a tag that
// says to rotate them.
func TestExifTranspose(t *testing.T) {
	t.Cleanup(func() { decodeAsRecorded(index.Meta{}) })
	dir := t.TempDir()
	for _, n := range []string{"dune.jpg", "dune_exif_rotated.jpg"} {
		data, err := os.ReadFile(filepath.Join(images, n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, n), data, 0o644)
	}
	dist := func(idx string, flags ...string) float64 {
		updateJSON(t, append(append([]string{"--index", idx, "--model", model}, flags...), dir)...)
		bs := parseBlocks(t, mustRun(t, "query", "--index", idx, filepath.Join(images, "dune_exif_rotated.jpg")))
		if len(bs) != 1 || bs[0].ids[0] != "dune_exif_rotated.jpg" || bs[0].dists[0] != 0 {
			t.Fatalf("the query image is not its own nearest at 0: %+v", bs)
		}
		return bs[0].dists[1]
	}
	plain := dist(filepath.Join(t.TempDir(), "plain.simidx"))
	upright := dist(filepath.Join(t.TempDir(), "upright.simidx"), "--exif-transpose")
	if plain > 1 || upright < 2 {
		t.Fatalf("distance from dune.jpg: %g as Pillow opens the files, %g turned upright: the orientation was not applied", plain, upright)
	}
}
