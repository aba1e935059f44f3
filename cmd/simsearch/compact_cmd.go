package main

import (
	"github.com/urfave/cli/v2"

	"simsearch/collection"
)

func compactCommand() *cli.Command {
	return &cli.Command{
		Name:      "compact",
		Usage:     "fold an index's change log into the index file",
		ArgsUsage: "INDEX",
		Description: `Writes a new index file holding every row (sorted by id) and the state of its file, and
renames it over INDEX; the change log INDEX.log is then removed. update, add and remove do this
by themselves when the log passes a tenth of the index's size. Readers are not disturbed.

Example:
   simsearch compact photos.simidx`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "want one index file")
			}
			w, err := collection.OpenWriter(c.Args().First(), nil)
			if err != nil {
				return err
			}
			defer w.Close()
			return w.Compact()
		},
	}
}
