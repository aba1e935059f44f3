package main

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"simsearch/collection"
	"simsearch/embed"
	"simsearch/folder"
	"simsearch/index"
	"simsearch/ingest"
	"simsearch/prune"
)

// collectionBench measures the living collection (issue 10's goals) and writes a markdown report:
// adding and removing 10 photos on a rows × dim index (time and bytes written), query speed on an
// updated, uncompacted collection against the same rows compacted, the cost of an update of an
// unchanged folder of many files (walk and stat), and peak memory of update as the number of
// photos grows.
func collectionBench(c config, filesN int, rssPhotos []int, out string, logf func(string, ...any)) error {
	work, err := os.MkdirTemp(c.data, "collection-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var report []string
	add := func(f string, a ...any) {
		line := fmt.Sprintf(f, a...)
		logf("%s", line)
		report = append(report, line)
	}
	r := rand.New(rand.NewPCG(1, 2))

	// A base of rows × dim, ids sorted, as update and compaction write it.
	base := filepath.Join(work, "base.simidx")
	start := time.Now()
	if err := writeBase(base, c.rows, c.dim, r); err != nil {
		return err
	}
	st, _ := os.Stat(base)
	logf("wrote a %d × %d base (%d bytes) in %v", c.rows, c.dim, st.Size(), time.Since(start))

	m, load, err := embed.OpenModel(embed.Default(c.model), "", "") // as a command opens it, without the graph cache
	if err != nil {
		return err
	}
	defer m.Close()
	photos, err := benchPhotos(filepath.Join(work, "photos"), 10)
	if err != nil {
		return err
	}

	// Adding and removing 10 photos, several rounds, no compaction in between.
	var addT, remT []time.Duration
	var addB, remB []int64
	for round := range c.rounds {
		files := slices.Clone(photos)
		var ids []string
		for i := range files {
			files[i].ID = fmt.Sprintf("new-%d-%d%s", round, i, filepath.Ext(files[i].Path))
			ids = append(ids, files[i].ID)
		}
		t, b, err := timedCall(base, func(w *collection.Writer) error {
			_, err := ingest.Add(w, func() (*embed.Model, error) { return m, nil }, folder.Listing{Files: files}, false, ingest.Options{})
			return err
		})
		if err != nil {
			return err
		}
		addT, addB = append(addT, t), append(addB, b)
		t, b, err = timedCall(base, func(w *collection.Writer) error {
			_, err := ingest.Remove(w, ids)
			return err
		})
		if err != nil {
			return err
		}
		remT, remB = append(remT, t), append(remB, b)
	}
	// The same 10 photos embedded alone (read, decode, inference), to tell the collection's part.
	var embT []time.Duration
	for range c.rounds {
		start := time.Now()
		in := make([]float32, 0, len(photos)*m.InputLen())
		for _, f := range photos {
			data, err := os.ReadFile(f.Path)
			if err != nil {
				return err
			}
			one := make([]float32, m.InputLen())
			if err := m.PrepareBytes(data, one); err != nil {
				return err
			}
			in = append(in, one...)
		}
		if _, err := m.Run(in); err != nil {
			return err
		}
		embT = append(embT, time.Since(start))
	}
	size := float64(st.Size())
	add("| add 10 photos to a %d × %d index (open, decode, inference, append, fsync, commit; model load %.0f ms apart) | %.0f ms | %d bytes = %.4f%% of the index |",
		c.rows, c.dim, ms(load), ms(median(addT)), median(addB), 100*float64(median(addB))/size)
	add("| of which embedding the 10 photos alone (read, decode, inference; same rounds) | %.0f ms | the collection's part: %.0f ms |", ms(median(embT)), ms(median(addT)-median(embT)))
	add("| remove 10 ids from it | %.1f ms | %d bytes = %.5f%% of the index |", ms(median(remT)), median(remB), 100*float64(median(remB))/size)

	// Query speed: 1%% of the rows replaced and 1%% added, uncompacted, against the same compacted.
	churn := c.rows / 100
	if err := churnBase(base, churn, 97, c.dim, r); err != nil {
		return err
	}
	compacted := filepath.Join(work, "compacted.simidx")
	if err := copyFile(base, compacted); err != nil {
		return err
	}
	if err := copyFile(collection.LogPath(base), collection.LogPath(compacted)); err != nil {
		return err
	}
	w, err := collection.OpenWriter(compacted, nil)
	if err != nil {
		return err
	}
	if err := w.Compact(); err != nil {
		return err
	}
	w.Close()
	vu, err := collection.Open(base)
	if err != nil {
		return err
	}
	defer vu.Release()
	vc, err := collection.Open(compacted)
	if err != nil {
		return err
	}
	defer vc.Release()
	vu.Prefault(runtime.GOMAXPROCS(0))
	vc.Prefault(runtime.GOMAXPROCS(0))
	q := randomRow(r, c.dim)
	var tu, tc []time.Duration
	var ratios []float64
	for round := range 5 * c.rounds {
		a, b := vu, vc
		if round%2 == 1 {
			a, b = vc, vu
		}
		ta, ra, err := timedSearch(a, q)
		if err != nil {
			return err
		}
		tb, rb, err := timedSearch(b, q)
		if err != nil {
			return err
		}
		if !slices.Equal(ra, rb) {
			return fmt.Errorf("the updated and the compacted collection answer differently: %v, %v", ra, rb)
		}
		if round%2 == 1 {
			ta, tb = tb, ta
		}
		tu, tc = append(tu, ta), append(tc, tb)
		ratios = append(ratios, float64(ta)/float64(tb))
	}
	add("| top-10 scan, %d rows of which %d in the log (%d replacing base rows, %d new), uncompacted / compacted (paired per round) | %.1f ms / %.1f ms | ratio %.3f (goal ≤ 1.10) |",
		vu.Len(), 2*churn, churn, churn, ms(median(tu)), ms(median(tc)), median(ratios))

	// An unchanged folder of filesN files: walk, stat, plan; the model is never needed.
	tree := filepath.Join(work, "tree")
	small := filepath.Join(work, "tree.simidx")
	if err := makeTree(tree, filesN); err != nil {
		return err
	}
	if err := indexTree(tree, small); err != nil {
		return err
	}
	var walkT []time.Duration
	for range c.rounds {
		w, err := collection.OpenWriter(small, nil)
		if err != nil {
			return err
		}
		start := time.Now()
		l, err := folder.Walk(tree, folder.Options{})
		if err != nil {
			return err
		}
		s, err := ingest.Update(w, func() (*embed.Model, error) { return nil, fmt.Errorf("nothing should be embedded") }, l, ingest.Options{})
		if err == nil {
			err = w.Commit()
		}
		walkT = append(walkT, time.Since(start))
		w.Close()
		if err != nil {
			return err
		}
		if s.Unchanged != filesN {
			return fmt.Errorf("unchanged folder: %+v", s)
		}
	}
	add("| update of an unchanged folder of %d files (walk, stat, plan, nothing written) | %.0f ms | %.0f ms per 10k files |", filesN, ms(median(walkT)), ms(median(walkT))*10_000/float64(filesN))

	// Peak RSS of a whole update process that embeds n photos, for growing n.
	for _, n := range rssPhotos {
		dir := filepath.Join(work, fmt.Sprintf("rss-%d", n))
		if _, err := benchPhotos(dir, n); err != nil {
			return err
		}
		idx := filepath.Join(work, fmt.Sprintf("rss-%d.simidx", n))
		mb, secs, err := peakRSS(c.bin, "update", "--index", idx, "--model", c.model, "--no-compact", dir)
		if err != nil {
			return err
		}
		add("| peak RSS of `update` embedding %d photos (whole process, /usr/bin/time %%M; no compaction) | %s s | %d MB |", n, secs, mb)
		os.RemoveAll(dir)
	}

	// Peak RSS of the commands that read a long change log: a fifth of the rows replaced or added.
	logged := filepath.Join(work, "logged.simidx")
	if err := writeBase(logged, c.rows, c.dim, r); err != nil {
		return err
	}
	if err := churnBase(logged, c.rows/10, 7, c.dim, r); err != nil {
		return err
	}
	lst, err := os.Stat(collection.LogPath(logged))
	if err != nil {
		return err
	}
	for _, cmd := range []struct {
		name string
		args []string
	}{
		{"query --id", []string{"query", "--index", logged, "--id", "img0000007.jpg"}},
		{"compact", []string{"compact", logged}}, // last: it folds the log
	} {
		mb, secs, err := peakRSS(c.bin, cmd.args...)
		if err != nil {
			return err
		}
		add("| peak RSS of `%s` on a %d-row index with %d rows in its log (%d MiB; whole process, /usr/bin/time %%M, counting the pages of the %d MiB index it reads) | %s s | %d MB |", cmd.name, c.rows, c.rows/5, lst.Size()>>20, st.Size()>>20, secs, mb)
	}

	loadavg, _ := os.ReadFile("/proc/loadavg")
	doc := "# Living collection: measurements\n\nWritten by `go run ./bench -collection` on this shared 2-core machine (load average at the end: " + strings.Join(strings.Fields(string(loadavg))[:3], " ") + "); medians over rounds.\n\n| measurement | time | figure |\n|---|---:|---|\n" + strings.Join(report, "\n") + "\n"
	return os.WriteFile(out, []byte(doc), 0o644)
}

// peakRSS runs bin with args under GNU time and returns its peak RSS in MB and its wall time.
func peakRSS(bin string, args ...string) (mb int, secs string, err error) {
	m, err := runMeasured(exec.Command(bin, args...))
	if err != nil {
		return 0, "", err
	}
	return int(m.rssMB), fmt.Sprintf("%.2f", m.wall.Seconds()), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median[T cmp.Ordered](v []T) T {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

func randomRow(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = r.Float32()
	}
	return v
}

// writeBase writes an index of rows random vectors whose ids are in sorted order, as update and
// compaction write them.
func writeBase(path string, rows, dim int, r *rand.Rand) error {
	w, err := index.Create(path, dim, false)
	if err != nil {
		return err
	}
	defer w.Abort()
	w.SetMeta(index.Meta{Tool: "bench", SortedIDs: true})
	const chunk = 4096
	for lo := 0; lo < rows; lo += chunk {
		var ids []string
		var vecs []float32
		for i := lo; i < min(rows, lo+chunk); i++ {
			ids = append(ids, fmt.Sprintf("img%07d.jpg", i))
			vecs = append(vecs, randomRow(r, dim)...)
		}
		if err := w.Append(ids, vecs); err != nil {
			return err
		}
	}
	return w.Commit()
}

// churnBase replaces n rows and adds n, in one committed call, without compacting.
// The rows replaced are every stride-th of the base, from the first.
func churnBase(path string, n, stride, dim int, r *rand.Rand) error {
	w, err := collection.OpenWriter(path, nil)
	if err != nil {
		return err
	}
	defer w.Close()
	var b collection.Batch
	for i := range n {
		id := fmt.Sprintf("img%07d.jpg", i*stride)
		b.Delete = append(b.Delete, id)
		b.Add = append(b.Add, collection.Row{ID: id, Vector: randomRow(r, dim)}, collection.Row{ID: fmt.Sprintf("extra%07d.jpg", i), Vector: randomRow(r, dim)})
	}
	if err := w.Apply(b); err != nil {
		return err
	}
	return w.Commit()
}

func timedCall(path string, f func(*collection.Writer) error) (time.Duration, int64, error) {
	start := time.Now()
	w, err := collection.OpenWriter(path, nil)
	if err != nil {
		return 0, 0, err
	}
	defer w.Close()
	if err := f(w); err != nil {
		return 0, 0, err
	}
	if err := w.Commit(); err != nil {
		return 0, 0, err
	}
	return time.Since(start), w.Written(), nil
}

func timedSearch(v *collection.View, q []float32) (time.Duration, []collection.Result, error) {
	start := time.Now()
	res, _, err := v.Search(q, prune.Request{K: 10, MaxDistance: prune.NoLimit, Scan: prune.Full}) // the same scan on both sides: the log's cost alone
	if err != nil {
		return 0, nil, err
	}
	return time.Since(start), res[0], nil
}

// benchPhotos fills dir with n copies of the bundled photos (readable ones, in turn).
func benchPhotos(dir string, n int) ([]folder.File, error) {
	all, err := filepath.Glob("testdata/images/*.jpg")
	if err != nil {
		return nil, err
	}
	all = slices.DeleteFunc(all, func(p string) bool { return strings.Contains(p, "broken") })
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for i := range n {
		src := all[i%len(all)]
		if err := copyFile(src, filepath.Join(dir, fmt.Sprintf("%05d_%s", i, filepath.Base(src)))); err != nil {
			return nil, err
		}
	}
	l, err := folder.Walk(dir, folder.Options{})
	return l.Files, err
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// makeTree writes n one-byte .jpg files in folders of 1,000.
func makeTree(root string, n int) error {
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("%03d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%04d.jpg", i%1000)), []byte{byte(i)}, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// indexTree makes an index of the tree's files with their current states (dim 8: the walk's cost
// does not depend on the vectors).
func indexTree(root, path string) error {
	l, err := folder.Walk(root, folder.Options{})
	if err != nil {
		return err
	}
	w, err := collection.OpenWriter(path, &collection.NewBase{Dim: 8, Meta: index.Meta{Root: root}})
	if err != nil {
		return err
	}
	defer w.Close()
	var b collection.Batch
	for _, f := range l.Files {
		b.Add = append(b.Add, collection.Row{ID: f.ID, State: collection.FileState{Size: f.Size, MtimeNS: f.MtimeNS}, Vector: make([]float32, 8)})
	}
	if err := w.Apply(b); err != nil {
		return err
	}
	if err := w.Commit(); err != nil {
		return err
	}
	return w.Compact()
}
