package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"simsearch/cluster"
	"simsearch/query"
	"simsearch/serve"
	"simsearch/shard"
)

// engineFlag is --engine, shared by query and serve.
func engineFlag() cli.Flag {
	return &cli.StringFlag{Name: "engine", Usage: "search a collection pushed to a Weaviate cluster (weaviate://HOST:PORT/COLLECTION, see push) instead of --index"}
}

// indexOrEngine checks that exactly one of --index and --engine is given and returns --engine.
func indexOrEngine(c *cli.Context) (string, error) {
	engine := c.String("engine")
	if (engine == "") == (c.String("index") == "") {
		return "", usageError(c, "give either --index INDEX or --engine weaviate://HOST:PORT/COLLECTION")
	}
	return engine, nil
}

// openEngine connects to the collection --engine names and warns on stderr when the cluster is
// not whole.
func openEngine(c *cli.Context, engine string) (*cluster.Searcher, error) {
	t, err := cluster.ParseURL(engine)
	if err != nil {
		return nil, fmt.Errorf("--engine %w", err)
	}
	s, err := cluster.Open(c.Context, t)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	if w := s.Client().HealthWarning(ctx); w != "" {
		fmt.Fprintf(c.App.ErrWriter, "simsearch: warning: %s: %s\n", t, w)
	}
	return s, nil
}

// runEngineQuery is query with --engine: the same output, answered by the cluster.
func runEngineQuery(c *cli.Context, engine string, start time.Time) error {
	if c.Bool("id") {
		return usageError(c, "--id works with --index only, not --engine")
	}
	s, err := openEngine(c, engine)
	if err != nil {
		return err
	}
	defer s.Close()
	first := map[string]float64{"connect": ms(time.Since(start))}
	find, err := findRequest(c)
	if err != nil {
		return err
	}
	var answers []query.Answer
	if path := c.String("vector"); path != "" {
		v, dim, err := shard.ReadVectors(path)
		if err != nil {
			return err
		}
		if dim != s.Dim() {
			return fmt.Errorf("%s: vectors of dim %d, but %s holds dim %d", path, dim, engine, s.Dim())
		}
		hits, scanned, err := s.Search(v, find)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i, h := range hits {
			name := path
			if len(hits) > 1 {
				name = fmt.Sprintf("%s[%d]", path, i)
			}
			answers = append(answers, query.Answer{Query: name, Results: h, Timings: map[string]float64{"search": ms(scanned[i].Time)}})
		}
	} else {
		req, err := modelRequest(c)
		if err != nil {
			return err
		}
		load, err := s.LoadModel(req)
		if err != nil {
			return err
		}
		first["model_load"] = ms(load)
		if answers, err = s.Images(c.Args().Slice(), find); err != nil {
			return err
		}
	}
	return printAnswers(c.App.Writer, c.App.ErrWriter, answers, first, start, answerFormat(c), c.Bool("timings"))
}

// serveSearcher is what serve needs of a local index or of a cluster's collection.
type serveSearcher interface {
	serve.Searcher
	LoadModel(query.ModelRequest) (time.Duration, error)
	Close() error
}

// openServeSearcher opens --index, returned twice (as the local searcher for what only an index
// file has: its recorded decoding, warming, following updates), or connects to --engine (local
// is then nil), and says what it serves.
func openServeSearcher(c *cli.Context) (s serveSearcher, local *query.Searcher, what string, err error) {
	engine, err := indexOrEngine(c)
	if err != nil {
		return nil, nil, "", err
	}
	if engine != "" {
		s, err := openEngine(c, engine)
		return s, nil, engine, err
	}
	if local, err = query.Open(c.String("index")); err != nil {
		return nil, nil, "", err
	}
	return local, local, c.String("index"), nil
}
