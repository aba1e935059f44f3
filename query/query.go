// Package query answers similar-image queries: it maps an index, embeds query images with the
// model the index was built with, and finds their exact nearest neighbours. It overlaps the
// start-up work that a one-shot command pays (the model file is read and hashed while ONNX
// Runtime loads, images are decoded while the session is built) so that inference and the scan
// are the only significant costs.
package query

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"simsearch/collection"
	"simsearch/embed"
	"simsearch/index"
	"simsearch/internal/fault"
	"simsearch/internal/rusage"
	"simsearch/pil"
	"simsearch/prune"
)

// Hit is one neighbour.
type Hit struct {
	ID       string  `json:"id"`
	Distance float64 `json:"distance"` // Euclidean, a float32 value widened for printing
}

// Answer is the result of one query.
type Answer struct {
	Query   string             `json:"query"`
	Results []Hit              `json:"results"`
	Timings map[string]float64 `json:"timings_ms,omitempty"`
	Err     error              `json:"-"`
}

// Searcher holds an open collection (an index file and its change log, package collection) and,
// for image queries, a model.
type Searcher struct {
	reopen        sync.Mutex // one Reopen or Refresh at a time
	c             *collection.Collection
	model         *embed.Model
	allowMismatch bool          // the model was loaded with AllowMismatch: Reopen allows it too
	ready         chan struct{} // closed once Warm has mapped the index's pages (or at once without Warm)
	warm          sync.Once
	openTime      time.Duration
	openFaults    Faults // the opening thread's, when openCounted
	openCounted   bool
}

// Open maps the index, applies its change log and checks its metadata, which every command reads
// the same way (see checkMeta). Its pages are mapped by the first scan, which for a one-shot query is cheaper than
// mapping them ahead (measured: a cold --vector query took 57 ms with a prefault overlapping
// start-up, 50 ms without); a server calls Warm.
func Open(path string) (*Searcher, error) {
	runtime.LockOSThread() // for the thread's page-fault count
	defer runtime.UnlockOSThread()
	start := time.Now()
	before, counted := rusage.Thread()
	c, err := collection.OpenCollection(path)
	if err != nil {
		return nil, err
	}
	if err := checkMeta(c.Current()); err != nil {
		c.Close()
		return nil, err
	}
	after, _ := rusage.Thread()
	s := &Searcher{c: c, ready: make(chan struct{}), openTime: time.Since(start), openFaults: after.Sub(before), openCounted: counted}
	return s, nil
}

// checkMeta checks a collection's metadata (decoded when it was opened): a model record that no
// model configuration could have (a size of 0, an unknown layout, ...) is refused here, for every
// command alike, rather than by some commands and not others.
func checkMeta(v *collection.View) error {
	if rec := v.Meta().Model; rec != nil {
		if err := recordConfig(embed.Default("(the recorded model)"), rec).Validate(); err != nil {
			return fmt.Errorf("%s: %w: metadata: the model record is invalid: %v", v.Path(), index.ErrFormat, err)
		}
	}
	return nil
}

// Warm maps all of the index's pages in the background, so that a long-running server's first
// scan runs at full speed; scans wait for it (reported as index_wait).
func (s *Searcher) Warm() {
	s.warm.Do(func() {
		v := s.c.Acquire()
		go func() {
			defer close(s.ready)
			defer v.Release()
			v.Prefault(runtime.GOMAXPROCS(0))
		}()
	})
}

// waitWarm waits for Warm to finish, if it was called.
func (s *Searcher) waitWarm() {
	s.warm.Do(func() { close(s.ready) }) // without Warm, there is nothing to wait for
	<-s.ready
}

// Index returns the collection's current view, for its size and metadata: after a Reopen or a
// Refresh it returns the new one, and the old one's Len, Dim, Path and Meta stay readable. Searches
// go through Search, which holds a view for as long as it reads it.
func (s *Searcher) Index() *collection.View { return s.c.Current() }

// Acquire returns the collection's current view and holds it until the caller's Release: for
// whole-collection passes (duplicates, the map) that must read one consistent state.
func (s *Searcher) Acquire() *collection.View { return s.c.Acquire() }

// Meta returns the index's metadata, decoded and checked when it was opened.
func (s *Searcher) Meta() index.Meta { return s.Index().Meta() }

// Changed reports whether the index file was modified in place since it was opened (see
// index.Index.Changed), for a health check.
func (s *Searcher) Changed() error {
	v := s.c.Acquire()
	defer v.Release()
	return v.Changed()
}

// Dim is the index's vector dimension.
func (s *Searcher) Dim() int { return s.Index().Dim() }

// Len is the number of vectors in the index.
func (s *Searcher) Len() int { return s.Index().Len() }

// RecordOpen adds the index's opening to timings: index_open in ms and, where the system counts
// them per thread, its page faults (index_open_faults_minor, index_open_faults_major).
func (s *Searcher) RecordOpen(t map[string]float64) {
	t["index_open"] = ms(s.openTime)
	if s.openCounted {
		RecordFaults(t, "index_open", s.openFaults)
	}
}

// RecordLoad adds a model's opening (embed.LoadStats) to timings, in ms: ort_init (loading ONNX
// Runtime, beside model_read), model_read (reading, hashing and checking the file) and session,
// and each one's page faults where they are counted (PHASE_faults_minor, PHASE_faults_major).
func RecordLoad(t map[string]float64, st embed.LoadStats) {
	for _, p := range []struct {
		name   string
		took   time.Duration
		faults Faults
	}{{"ort_init", st.ORTInit, st.ORTInitFaults}, {"model_read", st.Read, st.ReadFaults}, {"session", st.Session, st.SessionFaults}} {
		t[p.name] = ms(p.took)
		if st.FaultsKnown {
			RecordFaults(t, p.name, p.faults)
		}
	}
}

// Model returns the loaded model, or nil.
func (s *Searcher) Model() *embed.Model { return s.model }

// Close releases the model and the index.
func (s *Searcher) Close() error {
	s.waitWarm()
	if s.model != nil {
		s.model.Close()
	}
	s.c.Close()
	return nil
}

// Reopen opens the index file at the searcher's path again, with its change log (an updated index
// renamed over the old one, or a committed update), maps its pages, and swaps it in: searches in
// flight finish on the old view, later ones use the new, none fails. The new index must have the
// same dim and, when a model is loaded, record the same model (or none) unless the model was
// loaded with AllowMismatch. On error the searcher keeps the old view.
func (s *Searcher) Reopen() (*collection.View, error) {
	if _, err := s.refresh(true); err != nil {
		return nil, err
	}
	return s.Index(), nil
}

// Refresh is Reopen when the index or its change log changed on disk and the change is committed;
// otherwise it costs two stats. It reports whether it moved to a new view.
func (s *Searcher) Refresh() (bool, error) { return s.refresh(false) }

func (s *Searcher) refresh(force bool) (bool, error) {
	s.reopen.Lock()
	defer s.reopen.Unlock()
	old := s.Index()
	moved, err := s.c.Refresh(force, func(v *collection.View) error {
		if err := checkMeta(v); err != nil {
			return err
		}
		switch rec := v.Meta().Model; {
		case v.Dim() != old.Dim():
			return fmt.Errorf("%s now holds %d-dim vectors, not %d: restart to serve it", v.Path(), v.Dim(), old.Dim())
		case s.model != nil && rec != nil && rec.SHA256 != "" && rec.SHA256 != s.model.SHA256() && !s.allowMismatch:
			return fmt.Errorf("%s is now built with another model (sha256 %.12s…, loaded: %.12s…): restart with that model", v.Path(), rec.SHA256, s.model.SHA256())
		}
		v.Prefault(runtime.GOMAXPROCS(0))
		return nil
	})
	return moved, err
}

// Follow calls Refresh every interval until ctx ends, so that a server moves to each committed
// update; report (if not nil) is told of each move, with the number of vectors now served, and of
// each error.
func (s *Searcher) Follow(ctx context.Context, every time.Duration, report func(vectors int, err error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		moved, err := s.Refresh()
		if report != nil && (moved || err != nil) {
			report(s.Index().Len(), err)
		}
	}
}

// Request says what each query asks for.
type Request struct {
	K int // the number of neighbours; 0 with MaxDistance: all rows in range
	// KEach, when not nil, is each query's own number of neighbours (one per query; 0, with
	// MaxDistance, for all rows in range, as K); K must then be at least the largest of them.
	KEach       []int
	MaxDistance float64    // the largest distance returned; prune.NoLimit for none
	Scan        prune.Scan // the pruned or the full scan, or the choice per query (prune.Auto)
	// Cap, when above 0, is the most rows the caller keeps of a query with k 0: a Searcher may
	// then answer such a query with its Cap+1 nearest in range (which say that the range holds
	// more than Cap) rather than with every row in range, or with an error where it cannot
	// return them all (a cluster). A local index returns them all.
	Cap int
}

// Scanned describes how one query's rows were found, for --timings: the search's figures (its own
// time and page faults, and those of a full pass it shared with other queries of its batch).
type Scanned struct {
	prune.Stats
	Wait time.Duration // waiting for the index's pages (Warm)
	// Remote says that a cluster answered (Stats.Time is its answer's wait): there were no
	// index pages here to wait for.
	Remote bool
}

// Search finds the nearest live rows of the collection to each of the queries (row-major, Dim
// floats each): pruned queries run one per core, the others share one pass over the index. It
// returns the answers and, per query, how they were found. An index file modified in place fails
// the search with index.ErrChanged (or, when the change races with the scan, fault.ErrFault)
// instead of crashing the process.
func (s *Searcher) Search(queries []float32, req Request) ([][]Hit, []Scanned, error) {
	v := s.c.Acquire()
	defer v.Release()
	if len(queries)%v.Dim() != 0 || len(queries) == 0 {
		return nil, nil, fmt.Errorf("query vectors have %d floats, not a multiple of the index's dim %d", len(queries), v.Dim())
	}
	if err := index.CheckVectors(queries, v.Dim()); err != nil {
		return nil, nil, fmt.Errorf("query %w", err)
	}
	if req.KEach != nil {
		if len(req.KEach) != len(queries)/v.Dim() {
			return nil, nil, fmt.Errorf("%d numbers of neighbours for %d queries", len(req.KEach), len(queries)/v.Dim())
		}
		if m := slices.Max(req.KEach); m > req.K {
			return nil, nil, fmt.Errorf("a query asks for %d neighbours, more than k %d", m, req.K)
		}
	}
	if req.Scan == prune.Pruned && !prune.Readable(v.Base()) {
		// Forcing the pruned path is for measuring it: a full scan answering in its place
		// would be measured under the wrong name.
		return nil, nil, fmt.Errorf("%s has no PCA section this version reads (convert writes one): the pruned scan cannot run; use the automatic or the full scan", v.Path())
	}
	start := time.Now()
	s.waitWarm()
	wait := time.Since(start)
	if err := v.Changed(); err != nil {
		return nil, nil, err
	}
	var (
		res   [][]collection.Result
		stats []prune.Stats
		err   error
	)
	ferr := fault.Guard(func() {
		res, stats, err = v.Search(queries, prune.Request{K: req.K, KEach: req.KEach, MaxDistance: req.MaxDistance, Scan: req.Scan})
	})
	if ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", v.Path(), err)
	}
	out := make([][]Hit, len(res))
	scanned := make([]Scanned, len(res))
	for j, r := range res {
		scanned[j] = Scanned{Stats: stats[j], Wait: wait}
		if req.KEach != nil && req.KEach[j] > 0 {
			r = r[:min(req.KEach[j], len(r))] // the collection merges its parts up to K
		}
		out[j] = make([]Hit, len(r))
		for i, n := range r {
			out[j][i] = Hit{ID: n.ID, Distance: float64(n.Distance)}
		}
	}
	return out, scanned, nil
}

// Record adds a query's scan to its timings: index_wait (not for a cluster's answer) and scan
// (the query's own search, or the cluster's answer to it) in ms, the rows whose exact distance
// was computed (visited; the full scan computes them all), the scan's page faults
// (scan_faults_minor, scan_faults_major: see prune.Stats for whose), and, when a full pass over
// the rows answered this query and others of its batch at once, that pass's time, number of
// queries and faults (shared_pass, shared_pass_queries, shared_pass_faults_*), which are no one
// query's.
func (sc Scanned) Record(t map[string]float64) {
	if !sc.Remote {
		t["index_wait"] = ms(sc.Wait)
	}
	t["scan"] = ms(sc.Time)
	if sc.Path == "pruned" {
		t["visited"] = float64(sc.Visited)
	}
	if sc.FaultsKnown {
		RecordFaults(t, "scan", sc.Faults)
	}
	if sc.SharedBy > 0 {
		t["shared_pass"] = ms(sc.SharedPass)
		t["shared_pass_queries"] = float64(sc.SharedBy)
		RecordFaults(t, "shared_pass", sc.SharedFaults)
	}
}

// RecordFaults adds a phase's page faults to timings as PHASE_faults_minor and PHASE_faults_major.
func RecordFaults(t map[string]float64, phase string, f Faults) {
	t[phase+"_faults_minor"], t[phase+"_faults_major"] = float64(f.Minor), float64(f.Major)
}

// Images answers image queries: it decodes and resizes the images on one core while the model
// loads on another (when it is not loaded yet, see LoadModel), embeds them, and searches for all
// of them in one pass over the index. A file that cannot be read gets an Answer with Err set;
// the others are answered. Each Answer's Timings holds decode, inference and the scan's figures
// (Scanned.Record); the returned duration is the model's load time (0 if it was loaded before).
func (s *Searcher) Images(req ModelRequest, paths []string, find Request) ([]Answer, time.Duration, error) {
	var (
		cfg embed.Config
		rec *index.Model
		err error
	)
	if s.model != nil {
		cfg = s.model.Config()
	} else if cfg, rec, err = s.modelConfig(req); err != nil {
		return nil, 0, err
	}
	type decoded struct {
		img     *pil.RGB
		err     error
		dur     time.Duration
		faults  Faults // the decoding thread's, when counted
		counted bool
	}
	images := make(chan decoded, len(paths))
	go func() {
		runtime.LockOSThread() // for the thread's page-fault counts
		defer runtime.UnlockOSThread()
		for _, p := range paths {
			start := time.Now()
			before, counted := rusage.Thread()
			img, err := cfg.ReadImage(p)
			after, _ := rusage.Thread()
			images <- decoded{img, err, time.Since(start), after.Sub(before), counted}
		}
	}()
	var load time.Duration
	if s.model == nil {
		if load, err = s.loadModel(req, cfg, rec); err != nil {
			return nil, 0, err
		}
	}

	answers := make([]Answer, len(paths))
	var queries []float32
	var ok []int
	input := make([]float32, s.model.InputLen())
	for i, p := range paths {
		a := &answers[i]
		a.Query = p
		a.Timings = map[string]float64{}
		d := <-images
		if d.err != nil {
			a.Err = d.err
			continue
		}
		a.Timings["decode"] = ms(d.dur)
		if d.counted {
			RecordFaults(a.Timings, "decode", d.faults)
		}
		start, before := time.Now(), rusage.Process()
		s.model.Tensor(d.img, input)
		v, err := s.model.Run(input)
		if err != nil {
			a.Err = fmt.Errorf("%s: %w", p, err)
			continue
		}
		a.Timings["inference"] = ms(time.Since(start))
		// ONNX Runtime runs the graph on threads of its own: the process's faults meanwhile
		// (which include the next image's decoding, when there is one).
		RecordFaults(a.Timings, "inference", rusage.Process().Sub(before))
		queries = append(queries, v...)
		ok = append(ok, i)
	}
	if len(ok) == 0 {
		return answers, load, nil
	}
	hits, scanned, err := s.Search(queries, find)
	if err != nil {
		return nil, load, err
	}
	for j, i := range ok {
		answers[i].Results = hits[j]
		scanned[j].Record(answers[i].Timings)
	}
	return answers, load, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// SearchContext is Search for a server's request: a request whose context has ended (its client
// left, or its time ran out while it waited) is not scanned. A scan once started runs to its end,
// which the index's size bounds.
func (s *Searcher) SearchContext(ctx context.Context, queries []float32, req Request) ([][]Hit, []Scanned, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	return s.Search(queries, req)
}
