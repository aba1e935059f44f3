package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/weaviate/weaviate-go-client/v5/weaviate"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/fault"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/graphql"
	"golang.org/x/sync/errgroup"

	"simsearch/embed"
	"simsearch/index"
	"simsearch/internal/rusage"
	"simsearch/prune"
	"simsearch/query"
)

// Searcher answers queries with a collection of a cluster, as query.Searcher does with a local
// index: the same ids, Euclidean distances, order (ties by id) and model checks. It satisfies
// serve.Searcher.
type Searcher struct {
	c       *Client
	info    Info
	model   *embed.Model
	timeout time.Duration // the longest a search may take, whatever its caller's context says

	health         sync.Mutex // guards the three below
	healthAt       time.Time  // when healthErr was found
	healthErr      error      // what Changed last found
	healthChecking bool       // a check runs in the background
}

// Open connects to the collection at t and reads what simsearch recorded about it.
func Open(ctx context.Context, t Target) (*Searcher, error) {
	c, err := Connect(ctx, t)
	if err != nil {
		return nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	return &Searcher{c: c, info: info, timeout: time.Minute}, nil
}

// Client is the searcher's connection.
func (s *Searcher) Client() *Client { return s.c }

// Meta is what push recorded as an index's metadata: the model and how the images were decoded.
func (s *Searcher) Meta() index.Meta {
	return index.Meta{Model: s.info.Model, ExifTranspose: s.info.ExifTranspose}
}

// Dim is the collection's vector dimension.
func (s *Searcher) Dim() int { return s.info.Dim }

// Len counts the collection's objects, or returns -1 when the cluster does not answer.
func (s *Searcher) Len() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := -1
	s.c.on(ctx, func(_ Node, wc *weaviate.Client) error {
		res, err := wc.GraphQL().Aggregate().WithClassName(s.c.t.Collection).
			WithFields(graphql.Field{Name: "meta", Fields: []graphql.Field{{Name: "count"}}}).Do(ctx)
		if err != nil {
			return err
		}
		if len(res.Errors) > 0 {
			return errors.New(res.Errors[0].Message)
		}
		agg, _ := res.Data["Aggregate"].(map[string]any)
		rows, _ := agg[s.c.t.Collection].([]any)
		if len(rows) != 1 {
			return errors.New("no count")
		}
		meta, _ := rows[0].(map[string]any)["meta"].(map[string]any)
		count, ok := meta["count"].(float64)
		if !ok {
			return errors.New("no count")
		}
		n = int(count)
		return nil
	})
	return n
}

// Model returns the loaded model, or nil.
func (s *Searcher) Model() *embed.Model { return s.model }

// LoadModel loads the model for image queries: by default the one the collection's vectors were
// made with, as recorded by push; it returns how long that took.
func (s *Searcher) LoadModel(req query.ModelRequest) (time.Duration, error) {
	m, d, err := query.OpenModel(req, s.info.Model, s.c.t.String(), s.info.Dim)
	if err != nil {
		return 0, err
	}
	s.model = m
	return d, nil
}

// healthEvery is how old an answer of Changed may be before a new check starts: a server asks
// with every search, and the cluster itself takes seconds to notice a node gone.
const healthEvery = 2 * time.Second

// Changed says why answers would be incomplete now: the cluster does not answer, or a shard has
// no live replica. A node down while every shard still has a replica is not an error. The first
// call checks the cluster (concurrent first callers wait for it); later calls answer at once
// with what the last check found and, when that is older than healthEvery, start the next check
// in the background: a check is several requests to the nodes (up to 5 s when one hangs), and
// the searches of a server must not wait for it.
func (s *Searcher) Changed() error {
	s.health.Lock()
	defer s.health.Unlock()
	switch {
	case s.healthAt.IsZero():
		s.healthErr, s.healthAt = s.checkHealth(), time.Now()
	case time.Since(s.healthAt) >= healthEvery && !s.healthChecking:
		s.healthChecking = true
		go func() {
			err := s.checkHealth()
			s.health.Lock()
			s.healthErr, s.healthAt, s.healthChecking = err, time.Now(), false
			s.health.Unlock()
		}()
	}
	return s.healthErr
}

// checkHealth asks the cluster for its health, as Changed reports it.
func (s *Searcher) checkHealth() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	down, missing, err := s.c.Health(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w: results may be partial", s.c.t, err)
	case missing > 0:
		return fmt.Errorf("%s: %s", s.c.t, healthWarning(down, missing, nil))
	}
	return nil
}

// Close releases the model.
func (s *Searcher) Close() error {
	if s.model != nil {
		s.model.Close()
	}
	return nil
}

// maxRange caps the answer of a range query (Request.K of 0) through a cluster: Weaviate's
// search takes a limit, and the server's largest k is 1000 too. A range holding more is an
// error, not a truncated answer.
const maxRange = 1000

// maxLimit is the most results Weaviate returns for one search (its QUERY_MAXIMUM_RESULTS).
const maxLimit = 10000

// tieMargin is how many results past the k-th a search asks for: objects at the same distance as
// the k-th (duplicate photos) come back in any order, and the ones simsearch keeps are those of
// smallest id, as the local search does, so the cluster must return them all.
func tieMargin(k int) int { return max(10, k/4) }

// Search is SearchContext without a caller's context (the command line's queries).
func (s *Searcher) Search(queries []float32, req query.Request) ([][]query.Hit, []query.Scanned, error) {
	return s.SearchContext(context.Background(), queries, req)
}

// SearchContext finds the req.K nearest objects to each query (row-major, Dim floats each),
// nearest first with ties by id, the distances Euclidean; with req.MaxDistance only those within
// it (at most maxRange when K is 0: more is an error, unless req.Cap asks for the Cap+1
// nearest). req.Scan does not apply: the cluster's index answers. The searches end with ctx (a
// server's request gone or out of time). Each query's Scanned (Remote) holds the time the
// cluster took for it and, for a lone query, the process's page faults meanwhile; there is no
// local data to wait for.
func (s *Searcher) SearchContext(ctx context.Context, queries []float32, req query.Request) ([][]query.Hit, []query.Scanned, error) {
	dim := s.info.Dim
	if len(queries)%dim != 0 || len(queries) == 0 {
		return nil, nil, fmt.Errorf("query vectors have %d floats, not a multiple of %s's dim %d", len(queries), s.c.t, dim)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n := len(queries) / dim
	// As the local search refuses them: non-finite queries, and requests no search can answer
	// (one bounded by neither a k nor a distance would ask the cluster for everything).
	if err := index.CheckVectors(queries, dim); err != nil {
		return nil, nil, fmt.Errorf("query %w", err)
	}
	if err := (&prune.Request{K: req.K, KEach: req.KEach, MaxDistance: req.MaxDistance}).Check(n); err != nil {
		return nil, nil, err
	}
	out := make([][]query.Hit, n)
	scanned := make([]query.Scanned, n)
	if n == 1 { // a lone query's faults are the process's while it runs; a batch's run side by side
		before := rusage.Process()
		defer func() { scanned[0].Faults, scanned[0].FaultsKnown = rusage.Process().Sub(before), true }()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for j := range n {
		g.Go(func() (err error) {
			start := time.Now()
			rj := req
			if req.KEach != nil { // each query's own k, as query.Request says
				rj.K, rj.KEach = req.KEach[j], nil
			}
			out[j], err = s.c.nearest(gctx, queries[j*dim:(j+1)*dim], rj)
			scanned[j].Path, scanned[j].Time, scanned[j].Remote = "weaviate", time.Since(start), true
			if err != nil && n > 1 {
				err = fmt.Errorf("query %d: %w", j, err)
			}
			return err
		})
	}
	err := g.Wait()
	return out, scanned, err
}

// hit is a result as Weaviate gives it: the squared distance, compared exactly for ties.
type hit struct {
	id string
	sq float32
}

// nearest answers one query of req (see SearchContext).
func (c *Client) nearest(ctx context.Context, v []float32, req query.Request) ([]query.Hit, error) {
	var hits []hit
	var err error
	if req.K <= 0 {
		// A range query: the cluster filters by the squared distance. One result more than
		// maxRange (or than the caller's cap) tells a range that holds too many.
		limit := maxRange + 1
		capped := req.Cap > 0 && req.Cap < maxLimit
		if capped {
			limit = req.Cap + 1
		}
		if hits, err = c.search(ctx, v, limit, float32(req.MaxDistance*req.MaxDistance)); err != nil {
			return nil, err
		}
		hits = within(hits, req.MaxDistance)
		if !capped && len(hits) > maxRange {
			return nil, fmt.Errorf("%s: more than %d objects within distance %g: a cluster answers at most %d per range query; give -k N for the N nearest of them, or a smaller --max-distance", c.t, maxRange, req.MaxDistance, maxRange)
		}
	} else {
		if req.K > maxLimit {
			return nil, fmt.Errorf("%s: k = %d: a cluster answers at most %d nearest per query", c.t, req.K, maxLimit)
		}
		for limit := min(req.K+tieMargin(req.K), maxLimit); ; limit = min(2*limit, maxLimit) {
			if hits, err = c.search(ctx, v, limit, -1); err != nil {
				return nil, err
			}
			// Done when the cluster has no more, or when the last result is farther than the
			// k-th: every object tied with the k-th is then among the results.
			if len(hits) < limit || len(hits) <= req.K || hits[len(hits)-1].sq > hits[req.K-1].sq {
				break
			}
			if limit == maxLimit {
				return nil, fmt.Errorf("%s: more than %d objects are at the same distance as the %d-th nearest: the cluster cannot tell which come first by id", c.t, maxLimit-req.K, req.K)
			}
		}
		hits = within(hits[:min(req.K, len(hits))], req.MaxDistance)
	}
	out := make([]query.Hit, len(hits))
	for i, h := range hits {
		out[i] = query.Hit{ID: h.id, Distance: euclidean(h.sq)}
	}
	return out, nil
}

// euclidean is the distance simsearch prints for Weaviate's squared L2 distance.
func euclidean(sq float32) float64 { return float64(float32(math.Sqrt(float64(max(sq, 0))))) }

// within drops the hits (sorted) farther than d.
func within(hits []hit, d float64) []hit {
	for len(hits) > 0 && euclidean(hits[len(hits)-1].sq) > d {
		hits = hits[:len(hits)-1]
	}
	return hits
}

// sortHits orders hits nearest first, ties by id: the local search's order.
func sortHits(hits []hit) {
	sort.Slice(hits, func(a, b int) bool {
		if hits[a].sq != hits[b].sq {
			return hits[a].sq < hits[b].sq
		}
		return hits[a].id < hits[b].id
	})
}

// search asks the cluster for the limit nearest objects to v (within the squared distance sq
// unless it is negative), sorted. Reads ask one replica per shard, so that they still answer,
// completely, while a node is down.
func (c *Client) search(ctx context.Context, v []float32, limit int, sq float32) ([]hit, error) {
	near := (&graphql.NearVectorArgumentBuilder{}).WithVector(v)
	if sq >= 0 {
		near = near.WithDistance(sq)
	}
	var hits []hit
	err := c.on(ctx, func(_ Node, wc *weaviate.Client) error {
		res, err := wc.Experimental().Search().WithCollection(c.t.Collection).
			WithNearVector(near).WithLimit(limit).WithProperties(propID).WithConsistencyLevel("ONE").
			WithMetadata(&graphql.Metadata{Distance: true}).Do(ctx)
		if err != nil {
			return err
		}
		hits = make([]hit, len(res))
		for i, r := range res {
			id, ok := r.Properties[propID].(string)
			if !ok {
				return fmt.Errorf("object %s has no %q property: it was not pushed by simsearch", r.ID, propID)
			}
			hits[i] = hit{id, r.Metadata.Distance}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: search: %w", c.t, ctx.Err())
		}
		return nil, fmt.Errorf("%s: search failed: %w%s", c.t, err, c.healthSuffix())
	}
	sortHits(hits)
	return hits, nil
}

// healthSuffix explains a failure by the cluster's state, when it can.
func (c *Client) healthSuffix() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if w := c.HealthWarning(ctx); w != "" {
		return " (" + w + ")"
	}
	return ""
}

// ErrNoObject is returned (wrapped) by Vector for an id the collection does not hold: the
// searchers' common query.ErrNoID, so that serve tells "not there" from "not answering".
var ErrNoObject = query.ErrNoID

// Vector returns the vector the collection holds for id, for "more like this" (a search by it).
func (s *Searcher) Vector(id string) ([]float32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var vec []float32
	err := s.c.on(ctx, func(_ Node, wc *weaviate.Client) error {
		objs, err := wc.Data().ObjectsGetter().WithClassName(s.c.t.Collection).WithID(ObjectUUID(id)).
			WithVector().WithConsistencyLevel("ONE").Do(ctx)
		var we *fault.WeaviateClientError
		if errors.As(err, &we) && we.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s holds %w %q", s.c.t, ErrNoObject, id)
		}
		if err != nil {
			return fmt.Errorf("%s: reading the vector of %q: %w", s.c.t, id, err)
		}
		if len(objs) != 1 || objs[0].Properties == nil {
			return fmt.Errorf("%s holds %w %q", s.c.t, ErrNoObject, id)
		}
		if got, _ := objs[0].Properties.(map[string]any)[propID].(string); got != id {
			return fmt.Errorf("%s holds %w %q (its object %s is %q)", s.c.t, ErrNoObject, id, objs[0].ID, got)
		}
		if len(objs[0].Vector) != s.info.Dim {
			return fmt.Errorf("%s: the object of %q has %d floats, not %d", s.c.t, id, len(objs[0].Vector), s.info.Dim)
		}
		vec = []float32(objs[0].Vector)
		return nil
	})
	return vec, err
}

// Images answers image queries as query.Searcher.Images does, with the model loaded first (see
// LoadModel): each image is decoded, embedded and searched; an unreadable image gets an Answer
// with Err set and the others are answered. Each Answer's Timings holds decode, inference and
// the search's figures (query.Scanned.Record: scan is the cluster's answer), each with its page
// faults: the decoding thread's, the process's during inference and during the search.
func (s *Searcher) Images(paths []string, find query.Request) ([]query.Answer, error) {
	if s.model == nil {
		return nil, fmt.Errorf("%s: no model loaded for image queries", s.c.t)
	}
	runtime.LockOSThread() // for the decoding thread's page faults
	defer runtime.UnlockOSThread()
	answers := make([]query.Answer, len(paths))
	input := make([]float32, s.model.InputLen())
	for i, p := range paths {
		a := &answers[i]
		a.Query, a.Timings = p, map[string]float64{}
		start := time.Now()
		before, counted := rusage.Thread()
		if err := s.model.PrepareFile(p, input); err != nil {
			a.Err = err
			continue
		}
		a.Timings["decode"] = ms(time.Since(start))
		if after, _ := rusage.Thread(); counted {
			query.RecordFaults(a.Timings, "decode", after.Sub(before))
		}
		start, before = time.Now(), rusage.Process() // ONNX Runtime runs on threads of its own
		v, err := s.model.Run(input)
		if err != nil {
			a.Err = fmt.Errorf("%s: %w", p, err)
			continue
		}
		a.Timings["inference"] = ms(time.Since(start))
		query.RecordFaults(a.Timings, "inference", rusage.Process().Sub(before))
		hits, scanned, err := s.Search(v, find)
		if err != nil {
			return nil, err
		}
		a.Results = hits[0]
		scanned[0].Record(a.Timings)
	}
	return answers, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
