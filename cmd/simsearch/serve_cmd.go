package main

import (
	"fmt"
	"log"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

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
   GET  /objects/ID           the image ID from --objects (55/77/5577….jpg fan-out, or flat)
   GET  /                     a page to drop an image on and see its nearest images

Answers are {"results": [{"id", "distance"}], "timings_ms": {...}}, the same results as query.
Concurrent requests are batched into one inference and one scan. SIGTERM or SIGINT stops
accepting, lets requests in flight finish, and exits 0.

Example:
   simsearch serve --index photos.simidx --objects /mnt/media/object --addr 127.0.0.1:8080
   curl -s --data-binary @cat.jpg 'http://127.0.0.1:8080/search?k=5'
   simsearch serve --engine weaviate://127.0.0.1:8080/Photos --addr 127.0.0.1:9090   # a cluster's collection`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "index", Aliases: []string{"i"}, Usage: "index file (from convert)"},
			engineFlag(),
			&cli.StringFlag{Name: "addr", Usage: "address to listen on", Value: "127.0.0.1:8080"},
			&cli.StringFlag{Name: "objects", Usage: "folder of the indexed images, for /objects/ and the page's thumbnails"},
			&cli.Int64Flag{Name: "max-body", Usage: "largest request body in bytes", Value: 20 << 20},
			&cli.DurationFlag{Name: "timeout", Usage: "per-request time limit", Value: 30 * time.Second},
			&cli.DurationFlag{Name: "drain", Usage: "how long shutdown waits for requests in flight", Value: 30 * time.Second},
			&cli.BoolFlag{Name: "quiet", Usage: "no request log on stderr"},
			&cli.BoolFlag{Name: "allow-model-mismatch", Usage: "accept a model other than the one the index was built with"},
		}, modelFlags(false)...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usageError(c, "serve takes no arguments")
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			s, what, err := openServeSearcher(c)
			if err != nil {
				return err
			}
			defer s.Close()
			req, err := modelRequest(c)
			if err != nil {
				return err
			}
			if _, err := s.LoadModel(req); err != nil {
				return err
			}
			logger := log.New(c.App.ErrWriter, "", log.LstdFlags)
			opt := serve.Options{Objects: c.String("objects"), MaxBody: c.Int64("max-body"), Timeout: c.Duration("timeout"), Log: logger}
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
			fmt.Fprintf(c.App.ErrWriter, "simsearch: serving %s (%d vectors) on http://%s/\n", what, s.Len(), ln.Addr())
			if err := srv.Run(ctx, ln, c.Duration("drain")); err != nil {
				return err
			}
			fmt.Fprintln(c.App.ErrWriter, "simsearch: stopped")
			return nil
		},
	}
}
