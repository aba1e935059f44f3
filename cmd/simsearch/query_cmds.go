package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"simsearch/embed"
	"simsearch/extract"
	"simsearch/prune"
	"simsearch/query"
	"simsearch/shard"
)

func queryCommand() *cli.Command {
	return &cli.Command{
		Name:      "query",
		Usage:     "print the indexed images nearest to each query image",
		ArgsUsage: "--index INDEX IMAGE... | --index INDEX --id ID... | --index INDEX --vector FILE.npy | --engine weaviate://HOST:PORT/COLLECTION ...",
		Description: `Embeds each IMAGE with the model (preprocessed exactly as PIL's
Image.open(p).convert("RGB").resize((224, 224)) / 255 would) and prints its k nearest indexed
images, nearest first, as "ID DISTANCE" lines (Euclidean distance). With several images each
block is headed by "# IMAGE". The model and preprocessing recorded in the index are used unless
flags override them; a different model file is refused.

With --id the arguments are ids of the index: each is answered from its stored vector (no model,
no image), exactly as a query by that vector, so the photo itself comes first at distance 0
("more like this"). An IMAGE or FILE.npy of "-" is read from standard input; with --id, "-"
reads ids from standard input, one per line. --tsv prints "QUERY<TAB>ID<TAB>DISTANCE" lines,
which survive ids with spaces.

--timings reports each phase in ms (index_open, model_load split into ort_init, model_read and
session, decode, inference, scan, total) and page faults per phase (PHASE_faults_minor and
PHASE_faults_major: the thread's that ran it where one thread does, the process's meanwhile for
inference and a lone query's scan; process_faults_* for the whole process). Queries of a
--vector batch that need the full scan share one pass over the index: each reports its own
attempt as scan and the pass as shared_pass, with shared_pass_queries. With --engine the names
are the same, connect (reaching the cluster and reading the collection's record) replacing
index_open, and scan is the cluster's answer to the query (no index_wait; page faults, the
process's meanwhile, for a lone query).

--max-distance D prints every image within distance D instead (nearest first), or with -k
the k nearest of them. The answer is exact either way: an index with a PCA section (convert
writes one) is searched by visiting rows in increasing lower bound of their distance, which
reads a few percent of a collection of real embeddings; --scan full reads every row instead.

Unreadable images are reported on stderr and the others still answered; the exit status is then 1.
An id or image name holding a control character (newline, tab, ...), invalid UTF-8, or starting
with a double quote is printed quoted and escaped as Go's strconv.Quote does ("a\nb.jpg");
--json prints ids exactly.

Examples:
   simsearch query --index photos.simidx cat.jpg
   simsearch query --index photos.simidx --model mobilenet.onnx -k 5 --json a.jpg b.png
   simsearch query --index photos.simidx --vector q.npy      # precomputed vectors, no model
   simsearch query --index photos.simidx --id "2024/beach 3.jpg" --tsv
   simsearch query --index photos.simidx --max-distance 8 cat.jpg    # everything within 8
   curl -s https://example.invalid/cat.jpg | simsearch query --index photos.simidx -
   simsearch query --engine weaviate://127.0.0.1:8080/Photos cat.jpg   # a collection pushed to a cluster`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "index", Aliases: []string{"i"}, Usage: "index file (from convert)"},
			engineFlag(),
			&cli.IntFlag{Name: "k", Aliases: []string{"n"}, Usage: "number of neighbours", Value: 10},
			&cli.StringFlag{Name: "vector", Usage: "query by the vectors in this .npy file (1-D: one; 2-D: one per row)"},
			&cli.BoolFlag{Name: "id", Usage: "the arguments are ids in the index: search by their stored vectors"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per query per line"},
			&cli.BoolFlag{Name: "tsv", Usage: "print QUERY<TAB>ID<TAB>DISTANCE lines"},
			&cli.BoolFlag{Name: "timings", Usage: "report per-phase times in ms (in the JSON, or on stderr)"},
			&cli.BoolFlag{Name: "allow-model-mismatch", Usage: "accept a model other than the one the index was built with"},
			&cli.Float64Flag{Name: "max-distance", Usage: "only results within this distance (all of them, unless -k is given too)"},
			&cli.StringFlag{Name: "scan", Usage: "auto: pruned when the index has a PCA section and it pays, else full; full; pruned (--index only)", Value: "auto"},
			&cli.Int64Flag{Name: "max-stdin", Usage: "most bytes of standard input read for \"-\" (an image, or --vector -)", Value: defaultMaxStdin},
		}, append(modelFlags(false), decodeFlags(false)...)...),
		Before: applyDecodeFlags(false),
		Action: runQuery,
	}
}

func runQuery(c *cli.Context) error {
	start := time.Now()
	find, err := findRequest(c)
	if err != nil {
		return err
	}
	vec := c.String("vector")
	if (vec == "") == (c.NArg() == 0) {
		return usageError(c, "give either images, ids with --id, or --vector")
	}
	if vec != "" && c.Bool("id") {
		return usageError(c, "give either --id or --vector")
	}
	if c.Bool("json") && c.Bool("tsv") {
		return usageError(c, "choose --json or --tsv")
	}
	if n := c.Int64("max-stdin"); n < 1 {
		return usageError(c, "--max-stdin must be at least 1 (bytes), not %d", n)
	}
	if engine, err := indexOrEngine(c); err != nil {
		return err
	} else if engine != "" {
		return runEngineQuery(c, engine, start)
	}
	s, err := query.Open(c.String("index"))
	if err != nil {
		return err
	}
	defer s.Close()
	decodeAsRecorded(s.Meta()) // query images are decoded as the indexed ones were
	first := map[string]float64{}
	s.RecordOpen(first)

	var answers []query.Answer
	switch {
	case vec != "":
		var path string
		var done func()
		if path, done, err = stdinFile(vec, c.App.Reader, c.Int64("max-stdin")); err != nil {
			return err
		}
		defer done()
		answers, err = vectorQueries(s, vec, path, find)
	case c.Bool("id"):
		var ids []string
		if ids, err = idArgs(c.Args().Slice(), c.App.Reader); err != nil {
			return err
		}
		answers, err = s.IDs(ids, find)
	default:
		var req query.ModelRequest
		if req, err = modelRequest(c); err != nil {
			return err
		}
		var paths []string
		var done func()
		if paths, done, err = stdinPaths(c, c.Args().Slice()); err != nil {
			return err
		}
		defer done()
		var load time.Duration
		answers, load, err = s.Images(req, paths, find)
		for i := range answers {
			answers[i].Query = c.Args().Get(i) // "-", not the temporary file
		}
		first["model_load"] = ms(load)
		if m := s.Model(); m != nil && load > 0 {
			query.RecordLoad(first, m.LoadStats())
		}
	}
	if err != nil {
		return err
	}
	return printAnswers(c.App.Writer, c.App.ErrWriter, answers, first, start, answerFormat(c), c.Bool("timings"))
}

// findRequest reads -k, --max-distance and --scan.
func findRequest(c *cli.Context) (query.Request, error) {
	r := query.Request{K: c.Int("k"), MaxDistance: prune.NoLimit}
	var err error
	if r.Scan, err = prune.ParseScan(c.String("scan")); err != nil {
		return r, usageError(c, "--%v", err)
	}
	if c.IsSet("max-distance") {
		r.MaxDistance = c.Float64("max-distance")
		if !(r.MaxDistance >= 0) || math.IsInf(r.MaxDistance, 0) {
			return r, usageError(c, "--max-distance must be a finite number at least 0, not %v", r.MaxDistance)
		}
		if !c.IsSet("k") {
			r.K = 0 // every row in range
		}
	}
	if r.K <= 0 && (c.IsSet("k") || !c.IsSet("max-distance")) {
		return r, usageError(c, "-k must be at least 1, not %d", r.K)
	}
	return r, nil
}

// vectorQueries answers the queries of the npy file at path, which the command line named name
// ("-": standard input, copied to path), naming the answers after name as query --engine does.
func vectorQueries(s *query.Searcher, name, path string, find query.Request) ([]query.Answer, error) {
	v, dim, err := shard.ReadVectors(path)
	if err != nil {
		return nil, err
	}
	if dim != s.Index().Dim() {
		return nil, fmt.Errorf("%s: vectors of dim %d, but %s holds dim %d", name, dim, s.Index().Path(), s.Index().Dim())
	}
	hits, scanned, err := s.Search(v, find)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return answersOf(hits, scanned, func(i, n int) string {
		if n > 1 {
			return fmt.Sprintf("%s[%d]", name, i)
		}
		return name
	}), nil
}

// answersOf makes the answers of a search, each with its scan's timings (query.Scanned.Record:
// a cluster's answer is reported as scan, as a local search is), naming the i-th of n.
func answersOf(hits [][]query.Hit, scanned []query.Scanned, name func(i, n int) string) []query.Answer {
	answers := make([]query.Answer, len(hits))
	for i, h := range hits {
		answers[i] = query.Answer{Query: name(i, len(hits)), Results: h, Timings: map[string]float64{}}
		scanned[i].Record(answers[i].Timings)
	}
	return answers
}

// outputFormat is how query prints its answers.
type outputFormat int

const (
	formatText outputFormat = iota // the seed's "ID DISTANCE" lines
	formatJSON                     // one object per query per line
	formatTSV                      // QUERY<TAB>ID<TAB>DISTANCE lines
)

// answerFormat is the output format query's flags ask for.
func answerFormat(c *cli.Context) outputFormat {
	switch {
	case c.Bool("json"):
		return formatJSON
	case c.Bool("tsv"):
		return formatTSV
	}
	return formatText
}

func printAnswers(w, errw io.Writer, answers []query.Answer, first map[string]float64, start time.Time, format outputFormat, timings bool) error {
	failed := 0
	enc := json.NewEncoder(w)
	for i, a := range answers {
		if a.Err != nil {
			fmt.Fprintf(errw, "simsearch: %v\n", a.Err)
			failed++
			continue
		}
		t := a.Timings
		if i == 0 {
			for k, v := range first {
				t[k] = v
			}
			t["total"] = ms(time.Since(start))
			f := query.ProcessFaults() // the whole process's, start-up included
			t["process_faults_minor"], t["process_faults_major"] = float64(f.Minor), float64(f.Major)
		} else {
			t["total"] = t["decode"] + t["inference"] + t["index_wait"] + t["scan"]
		}
		if !timings {
			a.Timings = nil
		}
		switch format {
		case formatJSON:
			if err := enc.Encode(a); err != nil {
				return err
			}
			continue
		case formatTSV:
			for _, h := range a.Results {
				fmt.Fprintf(w, "%s\t%s\t%s\n", a.Query, h.ID, pyFloat(h.Distance))
			}
			if timings {
				printTimings(errw, a.Query, t)
			}
			continue
		}
		if len(answers) > 1 {
			fmt.Fprintf(w, "# %s\n", textField(a.Query))
		}
		for _, h := range a.Results {
			fmt.Fprintf(w, "%s %s\n", textField(h.ID), pyFloat(h.Distance))
		}
		if timings {
			printTimings(errw, a.Query, t)
		}
	}
	if failed > 0 {
		return exitError{1}
	}
	return nil
}

func printTimings(w io.Writer, q string, t map[string]float64) {
	order := []string{"index_open", "model_load", "ort_init", "model_read", "session", "decode", "inference", "index_wait", "scan", "total"}
	var parts []string
	for _, k := range order {
		if v, ok := t[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%.2f", k, v))
		}
	}
	var rest []string
	for k := range t {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest) // visited, the page faults per phase, a shared pass: in a stable order
	for _, k := range rest {
		parts = append(parts, fmt.Sprintf("%s=%.2f", k, t[k]))
	}
	fmt.Fprintf(w, "timings_ms %s: %s\n", q, strings.Join(parts, " "))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func extractCommand() *cli.Command {
	return &cli.Command{
		Name:      "extract",
		Usage:     "embed a folder of images into feature shards (the seed's layout)",
		ArgsUsage: "IMAGE_DIR -o SHARD_DIR --model MODEL",
		Description: `Embeds every image under IMAGE_DIR (recursively; other files are skipped with a warning)
into SHARD_DIR/0000.object_ids.npy + 0000.features.npy, ... (10,000 images per shard), ids being
the paths relative to IMAGE_DIR. Also writes SHARD_DIR/simsearch-model.json, which convert
records in the index so that query uses the same model and preprocessing.

A file name holding a control character is printed quoted and escaped, as query prints ids.

Examples:
   simsearch extract photos/ -o shards/ --model mobilenet.onnx && simsearch convert shards/ -o photos.simidx
   simsearch extract photos/ -o shards/ --model mobilenet.onnx --json | jq -r '.skipped[].path'`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "shard directory to write", Required: true},
			&cli.BoolFlag{Name: "json", Usage: `print a JSON summary on stdout: {"output", "images", "shards", "skipped": [{"path", "error"}]}`},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace shards already in the output directory"},
			&cli.IntFlag{Name: "batch", Usage: "images per inference", Value: 16},
			&cli.IntFlag{Name: "shard-size", Usage: "images per shard", Value: 10000},
		}, append(modelFlags(true), decodeFlags(false)...)...),
		Before: applyDecodeFlags(false),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "want one image directory")
			}
			cfg, err := modelConfig(c)
			if err != nil {
				return err
			}
			m, _, err := embed.OpenModel(cfg, c.String("ort-lib"), embed.DefaultCacheDir())
			if err != nil {
				return err
			}
			defer m.Close()
			rec, err := query.Record(cfg, m.SHA256())
			if err != nil {
				return err
			}
			// SIGINT and SIGTERM stop after the shard being written, leaving the folder marked
			// unfinished and no temporary file.
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			bar := newProgress("extract")
			sum := extractSummary{Output: c.String("output"), Skipped: []skippedFile{}}
			st, err := extract.Run(m, c.Args().First(), c.String("output"), extract.Options{
				ShardSize: c.Int("shard-size"),
				BatchSize: c.Int("batch"),
				Overwrite: c.Bool("force"),
				Record:    rec,
				Warn: func(path string, err error) {
					sum.Skipped = append(sum.Skipped, skippedFile{Path: path, Error: err.Error()})
					// The error names the file: escaped there as the text output escapes names.
					fmt.Fprintf(c.App.ErrWriter, "simsearch: skipping %s\n", strings.ReplaceAll(err.Error(), path, textField(path)))
				},
				Progress: bar.update,
				Context:  ctx,
			})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				sum.Images, sum.Shards = st.Images, st.Shards
				return json.NewEncoder(c.App.Writer).Encode(sum)
			}
			fmt.Fprintf(c.App.ErrWriter, "wrote %d shards of %d images to %s (%d files skipped)\n", st.Shards, st.Images, c.String("output"), st.Skipped)
			return nil
		},
	}
}

// extractSummary is what extract --json prints.
type extractSummary struct {
	Output  string        `json:"output"`
	Images  int           `json:"images"`
	Shards  int           `json:"shards"`
	Skipped []skippedFile `json:"skipped"`
}

// skippedFile is a file extract did not embed, and why.
type skippedFile struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}
