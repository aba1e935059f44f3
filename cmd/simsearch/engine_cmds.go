package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"simsearch/cluster"
	"simsearch/index"
	"simsearch/query"
	"simsearch/serve"
	"simsearch/shard"
)

// engineFlag is --engine, shared by query and serve.
func engineFlag() cli.Flag {
	return &cli.StringFlag{Name: "engine", Usage: "search a collection pushed to a Weaviate cluster (weaviate://HOST:PORT/COLLECTION, see push) instead of --index"}
}

// indexOnly are the flags of query and serve that only an index file has a use for, and why.
var indexOnly = []struct{ flag, why string }{
	{"scan", "the cluster's own index answers every query"},
	{"poll", "push updates a cluster's collection in place, and every search reads it as it is"},
}

// indexOrEngine checks that exactly one of --index and --engine is given and returns --engine.
// A flag that only applies to an index file is refused with --engine rather than ignored.
func indexOrEngine(c *cli.Context) (string, error) {
	engine := c.String("engine")
	if (engine == "") == (c.String("index") == "") {
		return "", usageError(c, "give either --index INDEX or --engine weaviate://HOST:PORT/COLLECTION")
	}
	if engine != "" {
		for _, f := range indexOnly {
			if c.IsSet(f.flag) {
				return "", usageError(c, "--%s applies to --index only: with --engine %s", f.flag, f.why)
			}
		}
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
	s, err := openEngine(c, engine)
	if err != nil {
		return err
	}
	defer s.Close()
	decodeAsRecorded(s.Meta()) // query images are decoded as the pushed ones were
	first := map[string]float64{"connect": ms(time.Since(start))}
	find, err := findRequest(c)
	if err != nil {
		return err
	}
	var answers []query.Answer
	switch {
	case c.String("vector") != "":
		name := c.String("vector")
		path, done, err := stdinFile(name, c.App.Reader, c.Int64("max-stdin"))
		if err != nil {
			return err
		}
		defer done()
		v, dim, err := shard.ReadVectors(path)
		if err != nil {
			return err
		}
		if dim != s.Dim() {
			return fmt.Errorf("%s: vectors of dim %d, but %s holds dim %d", name, dim, engine, s.Dim())
		}
		if answers, err = engineAnswers(s, v, find, func(i, n int) string {
			if n > 1 {
				return fmt.Sprintf("%s[%d]", name, i)
			}
			return name
		}); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	case c.Bool("id"):
		ids, err := idArgs(c.Args().Slice(), c.App.Reader)
		if err != nil {
			return err
		}
		var v []float32
		for _, id := range ids {
			vec, err := s.Vector(id)
			if err != nil {
				return err
			}
			v = append(v, vec...)
		}
		if answers, err = engineAnswers(s, v, find, func(i, _ int) string { return ids[i] }); err != nil {
			return err
		}
	default:
		req, err := modelRequest(c)
		if err != nil {
			return err
		}
		load, err := s.LoadModel(req)
		if err != nil {
			return err
		}
		first["model_load"] = ms(load)
		query.RecordLoad(first, s.Model().LoadStats())
		var paths []string
		var done func()
		if paths, done, err = stdinPaths(c, c.Args().Slice()); err != nil {
			return err
		}
		defer done()
		if answers, err = s.Images(paths, find); err != nil {
			return err
		}
		for i := range answers {
			answers[i].Query = c.Args().Get(i) // "-", not the temporary file
		}
	}
	return printAnswers(c.App.Writer, c.App.ErrWriter, answers, first, start, answerFormat(c), c.Bool("timings"))
}

// engineAnswers searches the cluster for the vectors v (row-major), naming the i-th of n answers.
func engineAnswers(s *cluster.Searcher, v []float32, find query.Request, name func(i, n int) string) ([]query.Answer, error) {
	hits, scanned, err := s.Search(v, find)
	if err != nil {
		return nil, err
	}
	return answersOf(hits, scanned, name), nil
}

// serveSearcher is what serve needs of a local index or of a cluster's collection.
type serveSearcher interface {
	serve.Searcher
	Meta() index.Meta // the model and the decoding the vectors were made with
	LoadModel(query.ModelRequest) (time.Duration, error)
	Close() error
}

// openServeSearcher opens --index, returned twice (as the local searcher for what only an index
// file has: warming, following updates), or connects to --engine (local is then nil), and says
// what it serves.
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
