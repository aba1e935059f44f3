package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"simsearch/collection"
	"simsearch/ingest"
)

func removeCommand() *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "remove rows from an index by id",
		ArgsUsage: "--index INDEX ID... | --index INDEX -",
		Description: `Removes the rows of the given ids (one per line on stdin with "-"), committing all at once.
An id that is not in the index is an error, and then nothing is removed.

Examples:
   simsearch remove --index photos.simidx 5577b0aa.jpg "2024/beach 1.jpg"
   simsearch query --index photos.simidx --json bad.jpg | jq -r '.results[0].id' | simsearch remove --index photos.simidx -`,
		Flags: changeFlags(),
		Action: func(c *cli.Context) error {
			ids := c.Args().Slice()
			if len(ids) == 1 && ids[0] == "-" {
				var err error
				if ids, err = readLines(os.Stdin); err != nil {
					return err
				}
			}
			if len(ids) == 0 {
				return usageError(c, "want at least one id")
			}
			w, err := collection.OpenWriter(c.String("index"), nil)
			if err != nil {
				return err
			}
			defer w.Close()
			sum, err := ingest.Remove(w, ids)
			if err != nil {
				return err
			}
			return finish(c, w, sum, fmt.Sprintf("%d ids", len(ids)), false)
		},
	}
}

func readLines(r io.Reader) ([]string, error) {
	var out []string
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		if line := strings.TrimRight(s.Text(), "\r"); line != "" {
			out = append(out, line)
		}
	}
	return out, s.Err()
}
