package main

import (
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"simsearch/pil"
	"simsearch/prune"
	"simsearch/serve"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve searches over HTTP, with a results page at /",
		ArgsUsage: "--index INDEX | --engine weaviate://HOST:PORT/COLLECTION [--model MODEL] [--addr HOST:PORT] [--objects DIR]",
		Description: `Loads the model and maps the index once, then answers:

   POST /search?k=10          the body is an image (or a multipart form with a field "image")
   POST /search/vector?k=10   the body is {"vector": [...]}
   GET  /healthz              200 once ready
   GET  /capabilities         the page's views this server answers ({"views": [...]})
   GET  /search/id/ID?k=10    more like the indexed photo ID (its stored vector; no model)
   GET  /objects/ID           the image ID from --objects (55/77/5577….jpg fan-out, or flat)
   GET  /thumbs/ID            its thumbnail, made once and kept in --thumbs
   GET  /dupes?max_distance=4 the groups of near-duplicates, with file sizes and resolutions
   GET  /map?id=ID&k=60       2-D positions of a photo's neighbours (or of the collection)
   GET  /                     the page: drop an image, more like this, duplicates, the map

Answers are {"results": [{"id", "distance"}], "timings_ms": {...}}, the same results as query,
with "warning" when they may be incomplete (a cluster's shard on no live node). The searches
take &max_distance=D too: the k nearest within D, or without k all within D, as query
--max-distance (up to 1000, the nearest: more are cut, and the answer says "truncated": true).
With --engine, /dupes and /map are not served: they read every vector, which the cluster keeps.

Concurrent requests are batched into one inference, one search for their top-k queries and one
for their range queries; a request's failure is its own (an image the model refuses fails
alone). timings_ms holds queue, batch (the batch's requests), decode, inference (the batch's
one inference, of inference_images images), inference_wait (a vector query's wait for it),
search_wait (a range query's wait for the batch's top-k search), the scan's figures as query
--timings names them (index_wait, scan, visited, shared_pass, ...), and total.

SIGTERM or SIGINT stops accepting, lets requests in flight finish, and exits 0. SIGHUP reloads
the index: update it by renaming a new file over INDEX (convert -f does), then send SIGHUP;
requests in flight finish on the old one. An index modified in place is never read again:
requests fail with 500 until a reload (or restart). Updates made by update, add, remove and
compact are picked up by themselves within --poll, with the same care for requests in flight.

Example:
   simsearch serve --index photos.simidx --objects /mnt/media/object --addr 127.0.0.1:8080
   curl -s --data-binary @cat.jpg 'http://127.0.0.1:8080/search?k=5'
   simsearch serve --engine weaviate://127.0.0.1:8080/Photos --addr 127.0.0.1:9090   # a cluster's collection`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "index", Aliases: []string{"i"}, Usage: "index file (from convert)"},
			engineFlag(),
			&cli.StringFlag{Name: "addr", Usage: "address to listen on", Value: "127.0.0.1:8080"},
			&cli.StringFlag{Name: "objects", Usage: "folder of the indexed images, for /objects/ and the page's thumbnails"},
			&cli.StringFlag{Name: "thumbs", Usage: "folder for the page's thumbnails, made once each (default: the user cache dir)"},
			&cli.Int64Flag{Name: "max-body", Usage: "largest request body in bytes", Value: 20 << 20},
			&cli.DurationFlag{Name: "timeout", Usage: "per-request time limit", Value: 30 * time.Second},
			&cli.DurationFlag{Name: "drain", Usage: "how long shutdown waits for requests in flight", Value: 30 * time.Second},
			&cli.BoolFlag{Name: "quiet", Usage: "no request log on stderr"},
			&cli.DurationFlag{Name: "poll", Usage: "how often to look for a committed update of the index (update, add, remove, compact); 0: never (--index only)", Value: 2 * time.Second},
			&cli.BoolFlag{Name: "allow-model-mismatch", Usage: "accept a model other than the one the index was built with"},
			&cli.StringFlag{Name: "scan", Usage: "auto: pruned when the index has a PCA section and it pays, else full; full; pruned (--index only)", Value: "auto"},
		}, append(modelFlags(false), decodeFlags(true)...)...),
		Before: applyDecodeFlags(true),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usageError(c, "serve takes no arguments")
			}
			// The server's options take 0 to mean "the default"; a person who writes 0 or -1
			// means something else, so say so rather than serve with 20 MiB or 30 s.
			if n := c.Int64("max-body"); n < 1 {
				return usageError(c, "--max-body must be at least 1 (bytes), not %d", n)
			}
			if d := c.Duration("timeout"); d <= 0 {
				return usageError(c, "--timeout must be positive, not %v", d)
			}
			if d := c.Duration("drain"); d < 0 {
				return usageError(c, "--drain must not be negative, not %v", d)
			}
			scan, err := prune.ParseScan(c.String("scan"))
			if err != nil {
				return usageError(c, "--%v", err)
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			// SIGHUP reloads the index (below); caught from the start, so that one sent while
			// the model loads does not kill the server.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			s, local, what, err := openServeSearcher(c)
			if err != nil {
				return err
			}
			defer s.Close()
			decodeAsRecorded(s.Meta()) // query images are decoded as the indexed ones were
			if local != nil && scan == prune.Pruned && !prune.Readable(local.Index().Base()) {
				return fmt.Errorf("--scan pruned: %s has no PCA section this version reads (convert writes one)", local.Index().Path())
			}
			if local != nil {
				local.Warm() // maps the index while the model loads
			}
			req, err := modelRequest(c)
			if err != nil {
				return err
			}
			if _, err := s.LoadModel(req); err != nil {
				return err
			}
			logger := log.New(c.App.ErrWriter, "", log.LstdFlags)
			o := pil.Defaults() // Pillow's decompression-bomb warning goes to the log, --quiet or not
			o.Warn = func(msg string) { logger.Printf("warning: %s", msg) }
			pil.SetDefaults(o)
			opt := serve.Options{Objects: c.String("objects"), ThumbDir: c.String("thumbs"), MaxBody: c.Int64("max-body"), Timeout: c.Duration("timeout"), Log: logger, Scan: scan}
			if c.Bool("quiet") {
				opt.Log = nil
			}
			srv, err := serve.New(s, opt)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", c.String("addr"))
			if err != nil {
				return err
			}
			if every := c.Duration("poll"); every > 0 && local != nil {
				go local.Follow(ctx, every, func(n int, err error) {
					if err != nil {
						fmt.Fprintf(c.App.ErrWriter, "simsearch: following updates: %v (still serving the index loaded before)\n", err)
						return
					}
					fmt.Fprintf(c.App.ErrWriter, "simsearch: updated %s (%d vectors)\n", c.String("index"), n)
				})
			}
			fmt.Fprintf(c.App.ErrWriter, "simsearch: serving %s (%d vectors) on http://%s/\n", what, s.Len(), ln.Addr())
			go func() {
				for range hup {
					if n, err := srv.Reload(); err != nil {
						fmt.Fprintf(c.App.ErrWriter, "simsearch: reloading: %v (still serving the index loaded before)\n", err)
					} else {
						fmt.Fprintf(c.App.ErrWriter, "simsearch: reloaded %s (%d vectors)\n", what, n)
					}
				}
			}()
			if err := srv.Run(ctx, ln, c.Duration("drain")); err != nil {
				return err
			}
			fmt.Fprintln(c.App.ErrWriter, "simsearch: stopped")
			return nil
		},
	}
}
