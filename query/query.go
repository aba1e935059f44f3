// Package query answers similar-image queries: it maps an index, embeds query images with the
// model the index was built with, and finds their exact nearest neighbours. It overlaps the
// start-up work that a one-shot command pays (the model file is read and hashed while ONNX
// Runtime loads, images are decoded while the session is built) so that inference and the scan
// are the only significant costs.
package query

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"simsearch/embed"
	"simsearch/index"
	"simsearch/knn"
	"simsearch/pil"
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

// Searcher holds an open index and, for image queries, a model.
type Searcher struct {
	ix       *index.Index
	model    *embed.Model
	ready    chan struct{} // closed once Warm has mapped the index's pages (or at once without Warm)
	warm     sync.Once
	openTime time.Duration
}

// Open maps the index. Its pages are mapped by the first scan, which for a one-shot query is
// cheaper than mapping them ahead (measured: a cold --vector query took 57 ms with a prefault
// overlapping start-up, 50 ms without); a server calls Warm.
func Open(path string) (*Searcher, error) {
	start := time.Now()
	ix, err := index.Open(path)
	if err != nil {
		return nil, err
	}
	s := &Searcher{ix: ix, ready: make(chan struct{}), openTime: time.Since(start)}
	return s, nil
}

// Warm maps all of the index's pages in the background, so that a long-running server's first
// scan runs at full speed; scans wait for it (reported as index_wait).
func (s *Searcher) Warm() {
	s.warm.Do(func() {
		go func() {
			defer close(s.ready)
			s.ix.Prefault(runtime.GOMAXPROCS(0))
		}()
	})
}

// waitWarm waits for Warm to finish, if it was called.
func (s *Searcher) waitWarm() {
	s.warm.Do(func() { close(s.ready) }) // without Warm, there is nothing to wait for
	<-s.ready
}

// Index returns the open index.
func (s *Searcher) Index() *index.Index { return s.ix }

// Dim is the index's vector dimension.
func (s *Searcher) Dim() int { return s.ix.Dim() }

// Len is the number of vectors in the index.
func (s *Searcher) Len() int { return s.ix.Len() }

// OpenTime is how long mapping and validating the index took.
func (s *Searcher) OpenTime() time.Duration { return s.openTime }

// Model returns the loaded model, or nil.
func (s *Searcher) Model() *embed.Model { return s.model }

// Close releases the model and the index.
func (s *Searcher) Close() error {
	s.waitWarm()
	if s.model != nil {
		s.model.Close()
	}
	return s.ix.Close()
}

// Search finds the k nearest rows to each of the queries (row-major, Dim floats each) in one pass
// over the index. It returns the answers, how long it waited for the index's pages and how long
// the scan took.
func (s *Searcher) Search(queries []float32, k int) ([][]Hit, time.Duration, time.Duration, error) {
	if len(queries)%s.ix.Dim() != 0 || len(queries) == 0 {
		return nil, 0, 0, fmt.Errorf("query vectors have %d floats, not a multiple of the index's dim %d", len(queries), s.ix.Dim())
	}
	start := time.Now()
	s.waitWarm()
	wait := time.Since(start)
	start = time.Now()
	res, err := knn.SearchBatch(s.ix.Vectors(), s.ix.Dim(), queries, k, knn.Options{})
	scan := time.Since(start)
	if err != nil {
		return nil, wait, scan, err
	}
	out := make([][]Hit, len(res))
	for j, r := range res {
		out[j] = make([]Hit, len(r))
		for i, n := range r {
			id, err := s.ix.ID(n.Row)
			if err != nil {
				return nil, wait, scan, err
			}
			out[j][i] = Hit{ID: id, Distance: float64(n.Distance)}
		}
	}
	return out, wait, scan, nil
}

// Images answers image queries: it decodes and resizes the images on one core while the model
// loads on another (when it is not loaded yet, see LoadModel), embeds them, and searches for all
// of them in one pass over the index. A file that cannot be read gets an Answer with Err set;
// the others are answered. Each Answer's Timings holds decode, inference, index_wait and scan
// in ms; the returned duration is the model's load time (0 if it was loaded before).
func (s *Searcher) Images(req ModelRequest, paths []string, k int) ([]Answer, time.Duration, error) {
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
	size := cfg.Size
	type decoded struct {
		img *pil.RGB
		err error
		dur time.Duration
	}
	images := make(chan decoded, len(paths))
	go func() {
		for _, p := range paths {
			start := time.Now()
			img, err := pil.Open(p)
			if err == nil {
				img = img.Resize(size, size)
			}
			images <- decoded{img, err, time.Since(start)}
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
		start := time.Now()
		s.model.Tensor(d.img, input)
		v, err := s.model.Run(input)
		if err != nil {
			a.Err = fmt.Errorf("%s: %w", p, err)
			continue
		}
		a.Timings["inference"] = ms(time.Since(start))
		queries = append(queries, v...)
		ok = append(ok, i)
	}
	if len(ok) == 0 {
		return answers, load, nil
	}
	hits, wait, scan, err := s.Search(queries, k)
	if err != nil {
		return nil, load, err
	}
	for j, i := range ok {
		answers[i].Results = hits[j]
		answers[i].Timings["index_wait"] = ms(wait)
		answers[i].Timings["scan"] = ms(scan)
	}
	return answers, load, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
