package cluster

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/weaviate/weaviate-go-client/v5/weaviate/graphql"
	"golang.org/x/sync/errgroup"

	"simsearch/embed"
	"simsearch/query"
)

// Searcher answers queries with a collection of a cluster, as query.Searcher does with a local
// index: the same ids, Euclidean distances, order and model checks. It satisfies serve.Searcher.
type Searcher struct {
	c       *Client
	info    Info
	model   *embed.Model
	timeout time.Duration
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

// Dim is the collection's vector dimension.
func (s *Searcher) Dim() int { return s.info.Dim }

// Len counts the collection's objects, or returns -1 when the cluster does not answer.
func (s *Searcher) Len() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := s.c.client.GraphQL().Aggregate().WithClassName(s.c.t.Collection).
		WithFields(graphql.Field{Name: "meta", Fields: []graphql.Field{{Name: "count"}}}).Do(ctx)
	if err != nil || len(res.Errors) > 0 {
		return -1
	}
	agg, _ := res.Data["Aggregate"].(map[string]any)
	rows, _ := agg[s.c.t.Collection].([]any)
	if len(rows) != 1 {
		return -1
	}
	meta, _ := rows[0].(map[string]any)["meta"].(map[string]any)
	n, ok := meta["count"].(float64)
	if !ok {
		return -1
	}
	return int(n)
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

// Changed says why answers would be incomplete now: the cluster does not answer, or a shard has
// no live replica. A node down while every shard still has a replica is not an error.
func (s *Searcher) Changed() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	down, missing, err := s.c.Health(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", s.c.t, err)
	case missing > 0:
		return fmt.Errorf("%s: nodes %s down, %d shards have no live replica: answers would be partial", s.c.t, strings.Join(down, ", "), missing)
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
// search takes a limit, and the server's largest k is 1000 too.
const maxRange = 1000

// Search finds the req.K nearest objects to each query (row-major, Dim floats each), nearest
// first with ties by id, the distances Euclidean; with req.MaxDistance only those within it (at
// most maxRange when K is 0). req.Scan does not apply: the cluster's index answers. Each query's
// Scanned holds the time the cluster took for it; there is no local data to wait for.
func (s *Searcher) Search(queries []float32, req query.Request) ([][]query.Hit, []query.Scanned, error) {
	dim := s.info.Dim
	if len(queries)%dim != 0 || len(queries) == 0 {
		return nil, nil, fmt.Errorf("query vectors have %d floats, not a multiple of %s's dim %d", len(queries), s.c.t, dim)
	}
	k := req.K
	if k <= 0 {
		k = maxRange
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	n := len(queries) / dim
	out := make([][]query.Hit, n)
	scanned := make([]query.Scanned, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for j := range n {
		g.Go(func() (err error) {
			start := time.Now()
			hits, err := s.c.nearest(gctx, queries[j*dim:(j+1)*dim], k)
			for len(hits) > 0 && hits[len(hits)-1].Distance > req.MaxDistance {
				hits = hits[:len(hits)-1]
			}
			out[j] = hits
			scanned[j].Path, scanned[j].Time = "weaviate", time.Since(start)
			return err
		})
	}
	err := g.Wait()
	return out, scanned, err
}

// nearest asks the cluster for the k nearest objects to v. Reads ask one replica per shard, so
// that they still answer, completely, while a node is down.
func (c *Client) nearest(ctx context.Context, v []float32, k int) ([]query.Hit, error) {
	res, err := c.client.Experimental().Search().WithCollection(c.t.Collection).
		WithNearVector((&graphql.NearVectorArgumentBuilder{}).WithVector(v)).
		WithLimit(k).WithProperties(propID).WithConsistencyLevel("ONE").
		WithMetadata(&graphql.Metadata{Distance: true}).Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: search failed: %w%s", c.t, err, c.healthSuffix())
	}
	hits := make([]query.Hit, len(res))
	for i, r := range res {
		id, ok := r.Properties[propID].(string)
		if !ok {
			return nil, fmt.Errorf("%s: object %s has no %q property: it was not pushed by simsearch", c.t, r.ID, propID)
		}
		// Weaviate reports the squared L2 distance; simsearch prints the Euclidean one.
		hits[i] = query.Hit{ID: id, Distance: float64(float32(math.Sqrt(float64(max(r.Metadata.Distance, 0)))))}
	}
	sort.SliceStable(hits, func(a, b int) bool {
		if hits[a].Distance != hits[b].Distance {
			return hits[a].Distance < hits[b].Distance
		}
		return hits[a].ID < hits[b].ID
	})
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

// Images answers image queries as query.Searcher.Images does, with the model loaded first (see
// LoadModel): each image is decoded, embedded and searched; an unreadable image gets an Answer
// with Err set and the others are answered.
func (s *Searcher) Images(paths []string, find query.Request) ([]query.Answer, error) {
	if s.model == nil {
		return nil, fmt.Errorf("%s: no model loaded for image queries", s.c.t)
	}
	answers := make([]query.Answer, len(paths))
	input := make([]float32, s.model.InputLen())
	for i, p := range paths {
		a := &answers[i]
		a.Query, a.Timings = p, map[string]float64{}
		start := time.Now()
		if err := s.model.PrepareFile(p, input); err != nil {
			a.Err = err
			continue
		}
		a.Timings["decode"] = ms(time.Since(start))
		start = time.Now()
		v, err := s.model.Run(input)
		if err != nil {
			a.Err = fmt.Errorf("%s: %w", p, err)
			continue
		}
		a.Timings["inference"] = ms(time.Since(start))
		hits, scanned, err := s.Search(v, find)
		if err != nil {
			return nil, err
		}
		a.Results = hits[0]
		a.Timings["search"] = ms(scanned[0].Time)
	}
	return answers, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
