package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"simsearch/collection"
	"simsearch/embed"
	"simsearch/folder"
	"simsearch/internal/fixture"
)

const images = "../testdata/images"

var (
	once     sync.Once
	theModel *embed.Model
	modelErr error
)

// model loads the bundled MobileNet once (the real model: a few hundred ms).
func model(t *testing.T) *embed.Model {
	t.Helper()
	once.Do(func() {
		theModel, _, modelErr = embed.OpenModel(embed.Default("../testdata/model/mobilenet_v2_feature_vector.onnx"), "", "")
	})
	if modelErr != nil {
		t.Fatal(modelErr)
	}
	return theModel
}

// loads returns a ModelFunc for the real model that counts its calls.
func loads(t *testing.T, n *int) ModelFunc {
	return func() (*embed.Model, error) {
		*n++
		return model(t), nil
	}
}

// noModel is a ModelFunc for calls that must embed nothing.
func noModel(t *testing.T) ModelFunc {
	return func() (*embed.Model, error) {
		t.Error("the model was loaded")
		return nil, errors.New("no model in this call")
	}
}

// embedding is the vector of the image file at path, embedded on its own.
func embedding(t *testing.T, path string) []float32 {
	t.Helper()
	m := model(t)
	in := make([]float32, m.InputLen())
	if err := m.PrepareFile(path, in); err != nil {
		t.Fatal(err)
	}
	v, err := m.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// copyImage copies a bundled image to dir/rel with the given modification time.
func copyImage(t *testing.T, dir, rel, name string, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	fixture.CopyFile(t, filepath.Join(images, name), p)
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

var t0 = time.Unix(1_700_000_000, 0)

type collectionT struct {
	t    *testing.T
	path string
	dir  string
}

func newCollection(t *testing.T) *collectionT {
	c := &collectionT{t: t, path: filepath.Join(t.TempDir(), "c.simidx"), dir: t.TempDir()}
	w, err := collection.OpenWriter(c.path, &collection.NewBase{Dim: model(t).Dim()})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	return c
}

func (c *collectionT) writer() *collection.Writer {
	w, err := collection.OpenWriter(c.path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return w
}

func (c *collectionT) walk() folder.Listing {
	l, err := folder.Walk(c.dir, folder.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	return l
}

// update runs one committed Update of the folder.
func (c *collectionT) update(m ModelFunc, opt Options) Summary {
	c.t.Helper()
	w := c.writer()
	defer w.Close()
	s, err := Update(w, m, c.walk(), opt)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := Commit(w, s); err != nil {
		c.t.Fatal(err)
	}
	return s
}

// rows returns the collection's rows and states.
func (c *collectionT) rows() (map[string][]float32, map[string]collection.FileState) {
	v, err := collection.Open(c.path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer v.Release()
	vecs, states := map[string][]float32{}, map[string]collection.FileState{}
	err = v.Each(func(id string, st collection.FileState, vec []float32) error {
		vecs[id], states[id] = slices.Clone(vec), st
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return vecs, states
}

func failedPaths(s Summary) []string {
	var out []string
	for _, f := range s.Failed {
		out = append(out, filepath.Base(f.Path))
	}
	return out
}

// TestUpdateSummary checks an update's counts over a folder with good images, a broken one, a
// name that is not UTF-8 and two files with one id; then that an unchanged folder costs no model
// load, the broken file being reported again from memory, until it changes or --retry-failed.
func TestUpdateSummary(t *testing.T) {
	c := newCollection(t)
	for i, n := range []string{"coffee.png", "rocket.jpg", "wood.webp"} {
		copyImage(t, c.dir, n, n, t0.Add(time.Duration(i)*time.Second))
	}
	broken := copyImage(t, c.dir, "sub/broken.jpg", "broken_text.jpg", t0)
	copyImage(t, c.dir, "caf\xe9.jpg", "tiny_red.png", t0)
	sha := "5577b0aa2c6f3e0f9d7c1b2a4e5f60718293a4b5"
	copyImage(t, c.dir, "55/77/"+sha+".png", "tiny_red.png", t0)
	copyImage(t, c.dir, sha+".png", "tiny_red.png", t0)

	var n int
	s := c.update(loads(t, &n), Options{Batch: 2})
	if s.Added != 3 || s.Embedded != 3 || s.Changed+s.Removed+s.Unchanged+s.Reused != 0 || n != 1 {
		t.Fatalf("first update: %+v, model loaded %d times", s, n)
	}
	got := failedPaths(s)
	slices.Sort(got)
	if want := []string{sha + ".png", sha + ".png", "broken.jpg", "caf\xe9.jpg"}; !slices.Equal(got, want) {
		t.Fatalf("failed %q, want %q (%+v)", got, want, s.Failed)
	}
	vecs, _ := c.rows()
	if len(vecs) != 3 || !slices.Equal(vecs["rocket.jpg"], embedding(t, filepath.Join(c.dir, "rocket.jpg"))) {
		t.Fatalf("rows %d, rocket.jpg's vector not its embedding", len(vecs))
	}
	if _, err := os.Stat(FailuresPath(c.path)); err != nil {
		t.Fatalf("the broken file is not remembered: %v", err)
	}

	// Unchanged: no model, the broken file reported from memory.
	s = c.update(noModel(t), Options{})
	if s.Unchanged != 3 || s.Embedded+s.Added != 0 || len(s.Failed) != 4 {
		t.Fatalf("unchanged folder: %+v", s)
	}
	var remembered string
	for _, f := range s.Failed {
		if f.Path == broken {
			remembered = f.Error
		}
	}
	if !strings.Contains(remembered, "unchanged since it failed") || !strings.Contains(remembered, "--retry-failed") {
		t.Fatalf("the broken file was reported as %q", remembered)
	}

	// --retry-failed reads it again (and it fails again, now remembered afresh).
	n = 0
	s = c.update(loads(t, &n), Options{RetryFailed: true})
	if n != 1 || len(s.Failed) != 4 || s.Embedded != 0 {
		t.Fatalf("--retry-failed: %+v, model loaded %d times", s, n)
	}
	for _, f := range s.Failed {
		if f.Path == broken && strings.Contains(f.Error, "unchanged since") {
			t.Fatalf("--retry-failed reported %q", f.Error)
		}
	}
	// A chmod (status change, same bytes and mtime) is a change: tried again.
	if err := os.Chmod(broken, 0o600); err != nil {
		t.Fatal(err)
	}
	n = 0
	if s = c.update(loads(t, &n), Options{}); n != 1 {
		t.Fatalf("after a chmod of the broken file the model was loaded %d times: %+v", n, s)
	}
	// Fixed: embedded.
	copyImage(t, c.dir, "sub/broken.jpg", "astronaut.gif", t0.Add(time.Hour))
	n = 0
	s = c.update(loads(t, &n), Options{})
	if s.Added != 1 || s.Embedded != 1 || len(s.Failed) != 3 {
		t.Fatalf("after the broken file was replaced by an image: %+v", s)
	}
	// Refused names cost no model load: only files that fail to embed are remembered.
	if _, err := os.Stat(FailuresPath(c.path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failures remembered after the last broken file was fixed: %v", err)
	}
}

// TestUpdateChangedAndRemoved checks the counts of changed (other content), touched (same
// content, other mtime) and removed files, and that a changed file that is no longer an image
// loses its row.
func TestUpdateChangedAndRemoved(t *testing.T) {
	c := newCollection(t)
	for i, n := range []string{"coffee.png", "rocket.jpg", "wood.webp", "astronaut.gif"} {
		copyImage(t, c.dir, n, n, t0.Add(time.Duration(i)*time.Second))
	}
	var n int
	c.update(loads(t, &n), Options{})
	copyImage(t, c.dir, "coffee.png", "chelsea.png", t0.Add(time.Hour))        // changed
	copyImage(t, c.dir, "rocket.jpg", "rocket.jpg", t0.Add(time.Hour))         // touched
	copyImage(t, c.dir, "astronaut.gif", "broken_text.jpg", t0.Add(time.Hour)) // no longer an image
	if err := os.Remove(filepath.Join(c.dir, "wood.webp")); err != nil {
		t.Fatal(err)
	}
	s := c.update(loads(t, &n), Options{})
	if s.Added != 0 || s.Changed != 1 || s.Unchanged != 1 || s.Removed != 2 || s.Embedded != 1 || len(s.Failed) != 1 {
		t.Fatalf("%+v", s)
	}
	vecs, states := c.rows()
	if len(vecs) != 2 || !slices.Equal(vecs["coffee.png"], embedding(t, filepath.Join(c.dir, "coffee.png"))) {
		t.Fatalf("rows %v: coffee.png not re-embedded", len(vecs))
	}
	if states["rocket.jpg"].MtimeNS != t0.Add(time.Hour).UnixNano() {
		t.Fatal("the touched file's new mtime is not recorded")
	}
}

// TestFileChangedDuringWalk gives Update a listing made before a file was rewritten: the row
// holds the embedding of the bytes read, and its state makes the next update check the file
// again (and find it unchanged) rather than trust the stale listing.
func TestFileChangedDuringWalk(t *testing.T) {
	c := newCollection(t)
	copyImage(t, c.dir, "a.png", "coffee.png", t0)
	copyImage(t, c.dir, "b.jpg", "rocket.jpg", t0)
	stale := c.walk()
	p := copyImage(t, c.dir, "a.png", "chelsea.png", t0.Add(time.Minute)) // another size
	w := c.writer()
	var n int
	s, err := Update(w, loads(t, &n), stale, Options{})
	if err == nil {
		err = Commit(w, s)
	}
	w.Close()
	if err != nil || s.Added != 2 {
		t.Fatalf("%+v, %v", s, err)
	}
	vecs, states := c.rows()
	if !slices.Equal(vecs["a.png"], embedding(t, p)) {
		t.Fatal("the row is not the embedding of the bytes read")
	}
	fi, _ := os.Stat(p)
	if states["a.png"].Size != fi.Size() || states["a.png"].MtimeNS == stale.Files[0].MtimeNS {
		t.Fatalf("state %+v: it should record what was read, not what the listing said", states["a.png"])
	}
	s = c.update(noModel(t), Options{})
	if s.Unchanged != 2 || s.Embedded != 0 {
		t.Fatalf("the update after: %+v", s)
	}
}

// TestEmptyListing checks that a listing without images is refused for a collection that has
// rows (an unmounted disk), and that nothing is deleted.
func TestEmptyListing(t *testing.T) {
	c := newCollection(t)
	copyImage(t, c.dir, "a.png", "coffee.png", t0)
	var n int
	c.update(loads(t, &n), Options{})
	w := c.writer()
	defer w.Close()
	if _, err := Update(w, noModel(t), folder.Listing{}, Options{}); err == nil || !strings.Contains(err.Error(), "mounted") {
		t.Fatalf("an empty listing: %v", err)
	}
	if !w.Has("a.png") {
		t.Fatal("the row is gone")
	}
}

// TestUnreadableFolderKeepsRows replaces a subfolder by a broken link: its rows stay, and the
// summary says why.
func TestUnreadableFolderKeepsRows(t *testing.T) {
	c := newCollection(t)
	copyImage(t, c.dir, "a.png", "coffee.png", t0)
	copyImage(t, c.dir, "trip/b.jpg", "rocket.jpg", t0)
	copyImage(t, c.dir, "trip/c.webp", "wood.webp", t0)
	var n int
	c.update(loads(t, &n), Options{})
	away := filepath.Join(t.TempDir(), "trip")
	if err := os.Rename(filepath.Join(c.dir, "trip"), away); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), "unmounted"), filepath.Join(c.dir, "trip")); err != nil {
		t.Fatal(err)
	}
	s := c.update(noModel(t), Options{})
	if s.Removed != 0 || s.Unchanged != 3 || len(s.Failed) != 1 || !strings.Contains(s.Failed[0].Error, "2 rows") {
		t.Fatalf("%+v", s)
	}
	if vecs, _ := c.rows(); len(vecs) != 3 {
		t.Fatalf("%d rows left of 3", len(vecs))
	}
}

// TestAddReplaceKeepsRow checks that add --replace of a file that cannot be embedded keeps the
// id's row, reports the file, and replaces the others.
func TestAddReplaceKeepsRow(t *testing.T) {
	c := newCollection(t)
	a := copyImage(t, c.dir, "a.png", "coffee.png", t0)
	b := copyImage(t, c.dir, "b.jpg", "rocket.jpg", t0)
	var n int
	c.update(loads(t, &n), Options{})
	before, _ := c.rows()
	copyImage(t, c.dir, "a.png", "broken_text.jpg", t0.Add(time.Hour))
	copyImage(t, c.dir, "b.jpg", "wood.webp", t0.Add(time.Hour))
	files := c.walk().Files
	w := c.writer()
	s, err := Add(w, loads(t, &n), folder.Listing{Files: files}, true, Options{})
	if err == nil {
		err = Commit(w, s)
	}
	w.Close()
	if err != nil || s.Changed != 1 || s.Removed != 0 || s.Added != 0 || s.Unchanged != 1 || len(s.Failed) != 1 || s.Failed[0].Path != a {
		t.Fatalf("%+v, %v", s, err)
	}
	after, _ := c.rows()
	if !slices.Equal(after["a.png"], before["a.png"]) || !slices.Equal(after["b.jpg"], embedding(t, b)) {
		t.Fatal("add --replace lost the row of the file that failed, or did not replace the other")
	}
}

// TestAddRefusesAndCarriesOn checks add's handling of files that cannot have their id: two with
// one id, and one whose id is not UTF-8; the rest is added. A present id without replace is an
// error before anything is embedded.
func TestAddRefusesAndCarriesOn(t *testing.T) {
	c := newCollection(t)
	a := copyImage(t, c.dir, "x/a.png", "coffee.png", t0)
	a2 := copyImage(t, c.dir, "y/a.png", "wood.webp", t0)
	b := copyImage(t, c.dir, "b.jpg", "rocket.jpg", t0)
	bad := copyImage(t, c.dir, "bad.jpg", "rocket.jpg", t0)
	files := []folder.File{}
	for p, id := range map[string]string{a: "a.png", a2: "a.png", b: "b.jpg", bad: "caf\xe9.jpg"} {
		f, err := folder.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		f.ID = id
		files = append(files, f)
	}
	w := c.writer()
	var n int
	s, err := Add(w, loads(t, &n), folder.Listing{Files: files}, false, Options{})
	if err == nil {
		err = Commit(w, s)
	}
	w.Close()
	if err != nil || s.Added != 1 || s.Embedded != 1 || len(s.Failed) != 3 {
		t.Fatalf("%+v, %v", s, err)
	}
	w = c.writer()
	defer w.Close()
	if _, err := Add(w, noModel(t), folder.Listing{Files: files[:0:0]}, false, Options{}); err != nil {
		t.Fatal(err)
	}
	f, _ := folder.Stat(b)
	f.ID = "b.jpg"
	if _, err := Add(w, noModel(t), folder.Listing{Files: []folder.File{f}}, false, Options{}); err == nil || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("add of a present id: %v", err)
	}
}

// TestReuseWithoutModel kills a call (no commit) after it embedded, then checks that the next
// call takes every row from the log without loading the model, and that a call whose model does
// not load keeps the rows it took for the one after.
func TestReuseWithoutModel(t *testing.T) {
	c := newCollection(t)
	for i, n := range []string{"coffee.png", "rocket.jpg", "wood.webp"} {
		copyImage(t, c.dir, n, n, t0.Add(time.Duration(i)*time.Second))
	}
	w := c.writer()
	var n int
	if _, err := Update(w, loads(t, &n), c.walk(), Options{Batch: 2}); err != nil {
		t.Fatal(err)
	}
	w.Close() // killed before its commit

	// One more file: the model is needed, and it does not load.
	copyImage(t, c.dir, "astronaut.gif", "astronaut.gif", t0)
	w = c.writer()
	_, err := Update(w, func() (*embed.Model, error) { return nil, errors.New("no such model") }, c.walk(), Options{Batch: 2})
	w.Close()
	if err == nil {
		t.Fatal("an update whose model does not load succeeded")
	}
	if err := os.Remove(filepath.Join(c.dir, "astronaut.gif")); err != nil {
		t.Fatal(err)
	}
	s := c.update(noModel(t), Options{Batch: 2})
	if s.Reused != 3 || s.Embedded != 0 || s.Added != 3 {
		t.Fatalf("%+v", s)
	}
	vecs, _ := c.rows()
	if !slices.Equal(vecs["wood.webp"], embedding(t, filepath.Join(c.dir, "wood.webp"))) {
		t.Fatal("a reused row is not the file's embedding")
	}
}
