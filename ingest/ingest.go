// Package ingest brings image files into a living collection (package collection): it works out
// what changed in a photo folder since the last call, embeds only new and changed files, batch by
// batch, appending each batch to the collection's log durably, and commits once at the end. A
// call that dies loses at most the batch it was embedding: the next call finds the rest in the
// log and does not embed it again. Files that cannot be embedded are reported, not fatal; update
// remembers them (failures.go) so that an unchanged broken file costs nothing the next time.
package ingest

import (
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"simsearch/collection"
	"simsearch/embed"
	"simsearch/folder"
)

// Options control a call.
type Options struct {
	Batch    int              // images per inference and per durable log append; 0 means 16
	Workers  int              // decoding goroutines; 0 means GOMAXPROCS
	Progress func(p Progress) // called after each batch; nil for none
	// RetryFailed makes update try again the files that failed before and have not changed
	// since (it skips them otherwise).
	RetryFailed bool
}

// ModelFunc returns the model to embed with. It is called only when there is something to
// embed, so that a call with nothing to do does not pay for loading a model.
type ModelFunc func() (*embed.Model, error)

// Progress describes a call under way.
type Progress struct {
	Done, Total int // files handled (embedded, reused or failed) of those to embed
	Embedded    int // images run through the model so far
	Elapsed     time.Duration
}

// Failure is a file that could not be embedded, or a part of the folder that could not be read.
type Failure struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Summary is what a call did.
type Summary struct {
	Added     int       `json:"added"`     // new ids
	Changed   int       `json:"changed"`   // ids whose file changed, embedded again
	Removed   int       `json:"removed"`   // ids dropped
	Unchanged int       `json:"unchanged"` // rows left as they were
	Embedded  int       `json:"embedded"`  // images run through the model in this call
	Reused    int       `json:"reused"`    // vectors found in the log, left by a call that did not finish
	Failed    []Failure `json:"failed"`    // files not in the collection, and folders not read
	// update is set by Update: Commit then remembers its failures (memo).
	update bool
	memo   []memo
}

// job is one file to embed.
type job struct {
	file    folder.File
	replace bool // its id has a row, to be deleted when the new one is added
	// drop: when the new file cannot be embedded, its id's row goes too (update: the collection
	// follows the folder, where the file is no longer a readable image); otherwise (add
	// --replace) the row stays as it was.
	drop bool
	hash *[32]byte
}

// Update brings w's collection in step with l, a folder's listing (folder.Walk): rows of files
// that are gone are deleted, new and changed files are embedded with the model m returns, and
// touched but identical files (same size and content, other mtime) get their new state only.
// Rows under a part of the folder that could not be read are kept as they were. A file that
// failed before (see Commit) and has not changed since is reported as failed again without being
// read, unless opt.RetryFailed. An empty listing for a collection that has rows is refused (an
// unmounted disk looks like that). It does not commit.
func Update(w *collection.Writer, m ModelFunc, l folder.Listing, opt Options) (Summary, error) {
	sum := Summary{Failed: []Failure{}, update: true}
	live, err := w.States()
	if err != nil {
		return sum, err
	}
	if len(l.Files)+len(l.Refused) == 0 && len(live) > 0 {
		return sum, fmt.Errorf("the folder has no images but the index holds %d: not removing them all (is the disk mounted?)", len(live))
	}
	var known map[string]memo
	if !opt.RetryFailed {
		if known, err = loadFailures(w.Path()); err != nil {
			return sum, err
		}
	}
	for _, p := range l.Refused {
		sum.Failed = append(sum.Failed, Failure{p.Path, p.Err.Error()})
	}
	var jobs []job
	var first collection.Batch
	// failedBefore reports (and remembers again) a file that failed before and has not changed.
	failedBefore := func(f folder.File) bool {
		k, ok := known[f.Path]
		if !ok || k.Size != f.Size || k.MtimeNS != f.MtimeNS || k.CtimeNS != f.CtimeNS {
			return false
		}
		sum.Failed = append(sum.Failed, Failure{f.Path, fmt.Sprintf("%s (unchanged since it failed on %s; --retry-failed tries again)", k.Error, k.Time)})
		sum.memo = append(sum.memo, k)
		return true
	}
	for _, f := range l.Files {
		st, ok := live[f.ID]
		delete(live, f.ID)
		switch {
		case !ok:
			if failedBefore(f) {
				continue
			}
			sum.Added++
			jobs = append(jobs, job{file: f})
		case !st.Known():
			// Converted from shards: nothing is known of the file it came from. Its vector is
			// kept (re-embedding a collection that was just converted would defeat the purpose)
			// and its state recorded, so that later changes are seen.
			sum.Unchanged++
			first.Touch = append(first.Touch, collection.Touch{ID: f.ID, State: collection.FileState{Size: f.Size, MtimeNS: f.MtimeNS}})
		case st.Size == f.Size && st.MtimeNS == f.MtimeNS:
			sum.Unchanged++
		case failedBefore(f):
			sum.Removed++
			first.Delete = append(first.Delete, f.ID)
		case st.Size == f.Size && st.SHA256 != [32]byte{}:
			// Touched: the content decides, read now (a changed file is read again to embed it).
			h, err := hashFile(f.Path)
			if err != nil {
				sum.fail(f, err)
				sum.Removed++
				first.Delete = append(first.Delete, f.ID)
				continue
			}
			if h == st.SHA256 {
				sum.Unchanged++
				first.Touch = append(first.Touch, collection.Touch{ID: f.ID, State: collection.FileState{Size: f.Size, MtimeNS: f.MtimeNS, SHA256: h}})
				continue
			}
			sum.Changed++
			jobs = append(jobs, job{file: f, replace: true, drop: true, hash: &h})
		default:
			sum.Changed++
			jobs = append(jobs, job{file: f, replace: true, drop: true})
		}
	}
	for _, p := range l.Unreadable {
		kept := 0
		for id := range live {
			if folder.Under(id, p.Rel) {
				delete(live, id)
				kept++
			}
		}
		sum.Unchanged += kept
		sum.Failed = append(sum.Failed, Failure{p.Path, fmt.Sprintf("%v: not read, so the %d rows of files under it are kept as they were", p.Err, kept)})
	}
	for id := range live {
		first.Delete = append(first.Delete, id)
		sum.Removed++
	}
	// Rows that calls which did not finish embedded for files that are gone or changed since are
	// no use any more: a compaction need not carry them over.
	current := make(map[string]folder.File, len(l.Files))
	for _, f := range l.Files {
		current[f.ID] = f
	}
	w.ForgetReusable(func(id string, size, mtimeNS int64) bool {
		f, ok := current[id]
		return ok && f.Size == size && f.MtimeNS == mtimeNS
	})
	slices.Sort(first.Delete)
	if err := w.Apply(first); err != nil {
		return sum, err
	}
	err = embedAll(w, m, jobs, opt, &sum)
	sortFailures(sum.Failed)
	return sum, err
}

// fail records that f could not be embedded.
func (s *Summary) fail(f folder.File, err error) {
	s.Failed = append(s.Failed, Failure{f.Path, err.Error()})
	if s.update {
		s.memo = append(s.memo, memo{Path: f.Path, Size: f.Size, MtimeNS: f.MtimeNS, CtimeNS: f.CtimeNS, Error: err.Error(), Time: time.Now().UTC().Format(time.RFC3339)})
	}
}

// sortFailures orders failures by path: decoders finish in any order.
func sortFailures(fs []Failure) {
	slices.SortFunc(fs, func(a, b Failure) int { return strings.Compare(a.Path, b.Path) })
}

// Add embeds the files of l with m and adds them under their ids. An id that has a row already
// is an error unless replace, in which case the row is replaced (and kept if the new file cannot
// be embedded); nothing is embedded when an id is refused. Files that cannot be embedded, files
// whose id is not valid or is shared with another file, and the parts of the listing that could
// not be read are reported in the summary's Failed, and the rest is added. It does not commit.
func Add(w *collection.Writer, m ModelFunc, l folder.Listing, replace bool, opt Options) (Summary, error) {
	sum := Summary{Failed: []Failure{}}
	for _, p := range append(slices.Clone(l.Refused), l.Unreadable...) {
		sum.Failed = append(sum.Failed, Failure{p.Path, p.Err.Error()})
	}
	byID := map[string][]string{}
	for _, f := range l.Files {
		byID[f.ID] = append(byID[f.ID], f.Path)
	}
	var jobs []job
	for _, f := range l.Files {
		if err := collection.ValidID(f.ID); err != nil {
			sum.Failed = append(sum.Failed, Failure{f.Path, fmt.Sprintf("%s: %v (ids are the paths relative to the index's folder, or file names)", f.Path, err)})
			continue
		}
		if ps := byID[f.ID]; len(ps) > 1 {
			sum.Failed = append(sum.Failed, Failure{f.Path, fmt.Sprintf("%s: these files would have one id, %q: none of them is added", strings.Join(ps, " and "), f.ID)})
			continue
		}
		j := job{file: f, replace: w.Has(f.ID)}
		if j.replace && !replace {
			return sum, fmt.Errorf("%s: the id %q is in the index already (--replace replaces it)", f.Path, f.ID)
		}
		if j.replace {
			sum.Changed++
		} else {
			sum.Added++
		}
		jobs = append(jobs, j)
	}
	err := embedAll(w, m, jobs, opt, &sum)
	sortFailures(sum.Failed)
	return sum, err
}

// Remove deletes the rows of ids. An id without a row is an error, and then nothing is removed.
// It does not commit.
func Remove(w *collection.Writer, ids []string) (Summary, error) {
	sum := Summary{Failed: []Failure{}}
	seen := map[string]bool{}
	var del []string
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if !w.Has(id) {
			return sum, fmt.Errorf("no row has the id %q (nothing was removed)", id)
		}
		del = append(del, id)
	}
	sum.Removed = len(del)
	return sum, w.Apply(collection.Batch{Delete: del})
}

// Commit commits w's changes, then, for a summary of Update, remembers the files that failed
// (so that the next update skips them while they stay as they are). The commit comes first: a
// crash between the two forgets failures, which costs a retry, never a file left out wrongly.
func Commit(w *collection.Writer, sum Summary) error {
	if err := w.Commit(); err != nil {
		return err
	}
	if !sum.update {
		return nil
	}
	return saveFailures(w.Path(), sum.memo)
}

func hashFile(path string) ([32]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// prepared is a job's outcome before inference: a model input, a vector from the log, or an error.
type prepared struct {
	job
	state  collection.FileState
	input  []float32
	reused []float32
	err    error
}

// embedAll adds the jobs' rows in batches; each batch's rows (and the deletions of the rows they
// replace, and of changed files that are no longer readable) are one durable Apply. Rows that a
// call which did not finish embedded come first, without the model: a call that then fails (a
// model that does not load) or dies has them in the log again, and a call that needs nothing
// else does not load the model at all.
func embedAll(w *collection.Writer, load ModelFunc, jobs []job, opt Options, sum *Summary) error {
	if opt.Batch <= 0 {
		opt.Batch = 16
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	start := time.Now()
	done := 0
	var batch []prepared
	var m *embed.Model
	flush := func() error {
		var inputs []float32
		for _, p := range batch {
			if p.input != nil {
				inputs = append(inputs, p.input...)
			}
		}
		var vecs []float32
		if len(inputs) > 0 {
			var err error
			if vecs, err = m.Run(inputs); err != nil {
				return err
			}
		}
		var b collection.Batch
		next := 0
		for _, p := range batch {
			if p.err != nil {
				switch {
				case p.replace && p.drop:
					sum.fail(p.file, p.err)
					b.Delete = append(b.Delete, p.file.ID)
					sum.Changed--
					sum.Removed++
				case p.replace:
					sum.fail(p.file, fmt.Errorf("%w (its id's row is kept as it was)", p.err))
					sum.Changed--
					sum.Unchanged++
				default:
					sum.fail(p.file, p.err)
					sum.Added--
				}
				continue
			}
			if p.replace {
				b.Delete = append(b.Delete, p.file.ID)
			}
			if p.reused != nil {
				b.Add = append(b.Add, collection.Row{ID: p.file.ID, State: p.state, Vector: p.reused})
				sum.Reused++
				continue
			}
			dim := m.Dim()
			b.Add = append(b.Add, collection.Row{ID: p.file.ID, State: p.state, Vector: vecs[next*dim : (next+1)*dim]})
			next++
			sum.Embedded++
		}
		if err := w.Apply(b); err != nil {
			return err
		}
		done += len(batch)
		batch = batch[:0]
		if opt.Progress != nil {
			opt.Progress(Progress{Done: done, Total: len(jobs), Embedded: sum.Embedded, Elapsed: time.Since(start)})
		}
		return nil
	}

	// Rows embedded by a call that did not commit go in first, in batches far larger than the
	// model's: each batch is one fsync, and these need no inference.
	reuseBatch := max(opt.Batch, 1024)
	var rest []job
	for _, j := range jobs {
		row, ok := w.Reused(j.file.ID, j.file.Size, j.file.MtimeNS)
		if !ok || (j.hash != nil && *j.hash != row.State.SHA256) {
			rest = append(rest, j)
			continue
		}
		batch = append(batch, prepared{job: j, state: row.State, reused: row.Vector})
		if len(batch) == reuseBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return err
		}
	}
	if len(rest) == 0 {
		return nil
	}
	var err error
	if m, err = load(); err != nil {
		return err
	}

	// Decoders run ahead of inference, bounded to two batches in flight so that memory stays
	// bounded however many files there are.
	todo := make(chan job)
	out := make(chan prepared, 2*opt.Batch)
	var wg sync.WaitGroup
	for range opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range todo {
				out <- prepare(m, j)
			}
		}()
	}
	stop := make(chan struct{})
	go func() {
		defer close(todo)
		for _, j := range rest {
			select {
			case todo <- j:
			case <-stop:
				return
			}
		}
	}()
	go func() { wg.Wait(); close(out) }()
	defer func() {
		close(stop)
		for range out {
		}
	}()
	for p := range out {
		batch = append(batch, p)
		if len(batch) == opt.Batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(batch) > 0 {
		return flush()
	}
	return nil
}

// prepare reads, hashes and decodes a job's file into a model input.
func prepare(m *embed.Model, j job) prepared {
	p := prepared{job: j}
	data, err := os.ReadFile(j.file.Path)
	if err != nil {
		p.err = err
		return p
	}
	p.state = collection.FileState{Size: int64(len(data)), MtimeNS: j.file.MtimeNS, SHA256: sha256.Sum256(data)}
	if int64(len(data)) != j.file.Size {
		// Written to since the walk: record what was read, so that the next call sees the change.
		p.state.MtimeNS = 0
	}
	p.input = make([]float32, m.InputLen())
	if err := m.PrepareBytes(data, p.input); err != nil {
		p.input, p.err = nil, fmt.Errorf("%s: %w", j.file.Path, err)
	}
	return p
}
