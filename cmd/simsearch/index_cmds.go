package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"simsearch/collection"
	"simsearch/convert"
	"simsearch/embed"
	"simsearch/index"
	"simsearch/prune"
	"simsearch/query"
)

func convertCommand() *cli.Command {
	return &cli.Command{
		Name:      "convert",
		Usage:     "pack feature shards (NNNN.object_ids.npy + NNNN.features.npy) into one index file",
		ArgsUsage: "SHARD_DIR -o INDEX",
		Description: `Reads the shards 0000, 0001, ... of SHARD_DIR in order and writes one index file that
query memory-maps. Features may be <f4, <f8 or <f2, C or Fortran order; ids <U…, |S… or
integers. NaN/Inf values, mismatched pairs or dims, gaps, pickles and duplicate ids are
refused with the file and row, and nothing is written. The output appears atomically: it is
written to a hidden temporary file beside it (removed on error, SIGINT or SIGTERM, and by the
next run if the writer was killed) and renamed. The shards of an extract that did not finish
are refused, and so is an output that would overwrite or join the input.
--model records the model that made the features (its SHA-256 and the preprocessing flags) so
that query uses it by default and refuses another; shards from extract carry that record already.
It also stores a PCA of the rows (--pca-rank directions, a signature per row: 2.5% of the file
at 1280 dims) with which query finds the exact nearest rows while reading a few percent of them.

--root records the photo folder the shards were made from: 'simsearch update' then keeps the
index current, embedding only photos that are not in it yet (ids in the seed's object-store
layout ab/cd/<sha1>.<ext> are the file names, as in the seed's shards).

Examples:
   simsearch convert /mnt/feature/mobilenet -o photos.simidx --model mobilenet.onnx --root /mnt/media/object
   simsearch convert shards/ -o photos.simidx --json | jq .vectors`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "index file to write", Required: true},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace an existing index file"},
			&cli.BoolFlag{Name: "allow-duplicate-ids", Usage: "keep ids that occur more than once"},
			&cli.StringFlag{Name: "root", Usage: "the photo folder the shards were made from (e.g. the object store), so that 'simsearch update' can keep the index current"},
			&cli.BoolFlag{Name: "allow-partial", Usage: "convert the shards of an extract that did not finish"},
			&cli.IntFlag{Name: "pca-rank", Usage: "principal directions stored for the pruned exact search (0: none)", Value: prune.DefaultRank},
			&cli.BoolFlag{Name: "json", Usage: `print a JSON summary on stdout: {"output", "vectors", "dim", "shards", "removed"}`},
		}, modelFlags(false)...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "want one shard directory, got %d arguments", c.NArg())
			}
			// SIGINT and SIGTERM stop the conversion and remove its temporary file.
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opt := convert.Options{AllowDuplicateIDs: c.Bool("allow-duplicate-ids"), Overwrite: c.Bool("force"), AllowPartial: c.Bool("allow-partial"), Context: ctx, PCARank: c.Int("pca-rank")}
			switch r := c.Int("pca-rank"); {
			case r < 0:
				return usageError(c, "--pca-rank must be at least 0, not %d", r)
			case r == 0:
				opt.PCARank = -1
			}
			if root := c.String("root"); root != "" {
				abs, err := filepath.Abs(root)
				if err != nil {
					return err
				}
				if st, err := os.Stat(abs); err != nil || !st.IsDir() {
					return fmt.Errorf("--root %s: not a folder", root)
				}
				opt.Root = abs
			}
			if c.String("model") != "" {
				cfg, err := modelConfig(c)
				if err != nil {
					return err
				}
				sum, err := embed.FileSHA256(cfg.Model)
				if err != nil {
					return err
				}
				if opt.Model, err = query.Record(cfg, sum); err != nil {
					return err
				}
			}
			bar := newProgress("convert")
			opt.Progress = bar.update
			st, err := convert.Run(c.Args().First(), c.String("output"), opt)
			for _, p := range st.Stale {
				fmt.Fprintf(c.App.ErrWriter, "simsearch: removed %s, left by a writer that was killed\n", p)
			}
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(convertSummary{Output: c.String("output"), Vectors: st.Rows, Dim: st.Dim, Shards: st.Shards, Removed: append([]string{}, st.Stale...)})
			}
			fmt.Fprintf(c.App.ErrWriter, "wrote %s: %d vectors of dim %d from %d shards\n", c.String("output"), st.Rows, st.Dim, st.Shards)
			return nil
		},
	}
}

// convertSummary is what convert --json prints.
type convertSummary struct {
	Output  string   `json:"output"`
	Vectors int      `json:"vectors"`
	Dim     int      `json:"dim"`
	Shards  int      `json:"shards"`
	Removed []string `json:"removed"` // temporary files of killed writers, removed
}

// indexInfo is what info prints; the JSON form is for scripts.
type indexInfo struct {
	Path   string     `json:"path"`
	Count  int        `json:"count"`
	Dim    int        `json:"dim"`
	Bytes  int64      `json:"bytes"`
	Format int        `json:"format_version"`
	Meta   index.Meta `json:"meta"`
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:        "info",
		Usage:       "describe an index file",
		ArgsUsage:   "INDEX",
		Description: "Prints the count (the change log's rows included), dim, size and metadata of INDEX (checking only its header).\n\nExample:\n   simsearch info --json photos.simidx | jq .count",
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "want one index file")
			}
			// query.Open checks the metadata as query and serve do, so that all three accept
			// and refuse the same files.
			s, err := query.Open(c.Args().First())
			if err != nil {
				return err
			}
			defer s.Close()
			ix, meta := s.Index(), s.Meta()
			in := indexInfo{Path: ix.Path(), Count: ix.Len(), Dim: ix.Dim(), Bytes: ix.Bytes(), Format: index.Version, Meta: meta}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(in)
			}
			fmt.Fprintf(c.App.Writer, "path:     %s\nformat:   simsearch index v%d\nvectors:  %d × %d float32\nsize:     %d bytes\n", in.Path, in.Format, in.Count, in.Dim, in.Bytes)
			if meta.Created != "" {
				fmt.Fprintf(c.App.Writer, "created:  %s by %s\n", meta.Created, meta.Tool)
			}
			if len(meta.Sources) > 0 {
				fmt.Fprintf(c.App.Writer, "sources:  %d shards (%s … %s)\n", len(meta.Sources), meta.Sources[0].Features, meta.Sources[len(meta.Sources)-1].Features)
			}
			if meta.DuplicateIDs {
				fmt.Fprintln(c.App.Writer, "ids:      duplicates allowed")
			}
			if m := meta.Model; m != nil {
				fmt.Fprintf(c.App.Writer, "model:    %s (sha256 %.16s…)\n          input %q %s %dx%d, scale %g", m.File, m.SHA256, m.Input, m.Layout, m.Size, m.Size, m.Scale)
				if m.Mean != nil {
					fmt.Fprintf(c.App.Writer, ", mean %v, std %v", m.Mean, m.Std)
				}
				fmt.Fprintf(c.App.Writer, ", output %q, resize %s\n", m.Output, m.Resize)
			}
			return nil
		},
	}
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:        "verify",
		Usage:       "check an index file's checksums and contents",
		ArgsUsage:   "INDEX...",
		Description: "Reads each INDEX whole: section checksums, id offsets and encoding, duplicate ids,\nfinite values, metadata, the PCA section against the rows, and its change log INDEX.log (every\nrecord's checksum, ids unique across the index and the log). Exits non-zero if any file is\ndamaged. --json prints one {\"path\", \"ok\", \"error\", \"log\"} object per file (\"log\": what the\nchange log holds, as the text output reports it).\n\nExample:\n   simsearch verify photos.simidx",
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print one JSON object per file"}},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError(c, "want at least one index file")
			}
			failed := 0
			enc := json.NewEncoder(c.App.Writer)
			for _, path := range c.Args().Slice() {
				rep, err := verify(path)
				if c.Bool("json") {
					res := map[string]any{"path": path, "ok": err == nil}
					if err != nil {
						res["error"] = err.Error()
						failed++
					} else {
						res["log"] = rep
					}
					if err := enc.Encode(res); err != nil {
						return err
					}
					continue
				}
				if err != nil {
					fmt.Fprintf(c.App.ErrWriter, "simsearch: %v\n", err)
					failed++
					continue
				}
				fmt.Fprintf(c.App.Writer, "%s: ok\n", path)
				if rep.Exists && rep.Commits > 0 {
					fmt.Fprintf(c.App.ErrWriter, "%s: %d rows; its change log adds %d and deletes %d in %d commits (%d bytes)\n", path, rep.Rows, rep.AddedRows, rep.DeletedRows, rep.Commits, rep.Committed)
				}
				if rep.Tail > 0 || rep.Reusable > 0 {
					fmt.Fprintf(c.App.ErrWriter, "%s: calls that did not commit left %d uncommitted bytes in the change log, with %d embedded rows that readers ignore and later calls reuse\n", path, rep.Tail, rep.Reusable)
				}
				if rep.Torn > 0 {
					fmt.Fprintf(c.App.ErrWriter, "%s: the change log ends in %d bytes of an interrupted write: ignored, and cut by the next call that changes the index\n", path, rep.Torn)
				}
				if rep.Stale {
					fmt.Fprintf(c.App.ErrWriter, "%s: the change log belongs to an older version of the index: ignored, and replaced by the next update\n", path)
				}
			}
			if failed > 0 {
				return exitError{1}
			}
			return nil
		},
	}
}

func verify(path string) (collection.LogReport, error) {
	s, err := query.Open(path) // the metadata checks every command makes
	if err != nil {
		return collection.LogReport{}, err
	}
	s.Close()
	return collection.Verify(path)
}
