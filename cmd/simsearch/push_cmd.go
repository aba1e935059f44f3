package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"simsearch/cluster"
	"simsearch/collection"
)

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "copy an index into a collection of a Weaviate cluster, for collections past one machine",
		ArgsUsage: "--index INDEX --to weaviate://HOST:PORT/COLLECTION [--shards N] [--replicas N] [--exact]",
		Description: `Creates the collection if it does not exist (no vectorizer, squared-L2 distance, an HNSW
index, or a flat exact one with --exact, sharded and replicated as asked), then sends every vector
of INDEX (its current rows: those that add, update and remove changed are included before any
compaction) with its id through batched gRPC, with progress on stderr.

A push compares INDEX with what the collection holds (objects are keyed by their id, and carry a
digest of their vector): an interrupted push resumes instead of starting over, and a push after
INDEX changed sends only the changed vectors and deletes the removed ids. The comparison holds
about 36 bytes per row in memory (3.6 GB for 100 million rows).

Then query the cluster with 'simsearch query --engine weaviate://…' or serve it with
'simsearch serve --engine weaviate://…'. scripts/weaviate-cluster.sh starts a cluster on this
machine. Several nodes may be listed (weaviate://HOST:PORT,HOST:PORT/COLLECTION): the first one that
answers is used. A node's gRPC port is taken to be its REST port + 41971 (8080 -> 50051, Weaviate's
defaults); ?grpc=PORT,... says otherwise.

Examples:
   scripts/weaviate-cluster.sh start 3 /var/tmp/wv
   simsearch push --index photos.simidx --to weaviate://127.0.0.1:8080/Photos --shards 3 --replicas 2
   simsearch push --index photos.simidx --to weaviate://127.0.0.1:8080/PhotosExact --exact`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "index", Aliases: []string{"i"}, Usage: "index file (from convert)", Required: true},
			&cli.StringFlag{Name: "to", Usage: "the collection: weaviate://HOST:PORT/COLLECTION", Required: true},
			&cli.IntFlag{Name: "shards", Usage: "shards of a new collection", Value: 1},
			&cli.IntFlag{Name: "replicas", Usage: "copies of each shard in a new collection (at most the number of nodes)", Value: 1},
			&cli.BoolFlag{Name: "exact", Usage: "a flat vector index: exact results, each query scans every vector of each shard"},
			&cli.IntFlag{Name: "batch", Usage: "objects per gRPC batch", Value: 256},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as JSON"},
		},
		Action: runPush,
	}
}

func runPush(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageError(c, "push takes no arguments")
	}
	for _, f := range []string{"shards", "replicas", "batch"} {
		if c.Int(f) < 1 {
			return usageError(c, "--%s must be at least 1, not %d", f, c.Int(f))
		}
	}
	t, err := cluster.ParseURL(c.String("to"))
	if err != nil {
		return fmt.Errorf("--to %w", err)
	}
	// The collection's current rows: the base index with its change log's committed changes.
	v, err := collection.Open(c.String("index"))
	if err != nil {
		return err
	}
	defer v.Release()
	cl, err := cluster.Connect(c.Context, t)
	if err != nil {
		return err
	}
	bar := newProgress("push")
	st, err := cl.Push(c.Context, v, cluster.PushOptions{
		Shards:    c.Int("shards"),
		Replicas:  c.Int("replicas"),
		Exact:     c.Bool("exact"),
		BatchSize: c.Int("batch"),
		Progress:  bar.update,
		Note:      func(s string) { fmt.Fprintf(c.App.ErrWriter, "simsearch: %s\n", s) },
	})
	if err != nil {
		return err
	}
	rate := float64(st.Sent) / max(st.Sending.Seconds(), 1e-9)
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(map[string]any{
			"collection": t.String(), "rows": st.Rows, "sent": st.Sent, "unchanged": st.Unchanged,
			"deleted": st.Deleted, "created": st.Created, "listing_ms": ms(st.Listing), "sending_ms": ms(st.Sending),
			"vectors_per_s": rate,
		})
	}
	fmt.Fprintf(c.App.ErrWriter, "pushed %s to %s: %d sent (%.0f vectors/s), %d unchanged, %d deleted\n",
		v.Path(), t, st.Sent, rate, st.Unchanged, st.Deleted)
	return nil
}
