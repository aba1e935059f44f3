package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"simsearch/collection"
	"simsearch/dupes"
)

func dupesCommand() *cli.Command {
	return &cli.Command{
		Name:      "dupes",
		Usage:     "list the groups of near-duplicate photos in an index",
		ArgsUsage: "--index INDEX [--max-distance D]",
		Description: fmt.Sprintf(`Compares every photo with every other one, exactly, and prints the groups of photos
within D of each other (joined through chains of such pairs), largest group first: its members,
then each pair within D with its Euclidean distance. simsearch never deletes or moves photos.

The default D, %g, was measured with the bundled MobileNet v2 model on the bundled photos:
re-encoded, recoloured, palette-converted, EXIF-rotated and cropped copies were 0.45 to 2.80
from their original, distinct photos at least 4.95 apart (a copy downscaled to 480 pixels was
4.86 away: for this model, as far as a different photo). Use a smaller D (say 1.5) for copies
that differ only in encoding, a larger one (5 to 6) for "the same scene" at the price of some
false matches; the distances printed help choose. Other models need their own D.

An id holding a control character (newline, tab, ...), invalid UTF-8, or starting with a double
quote is printed quoted and escaped as query prints it ("a\nb.jpg"); --json prints ids exactly.

Examples:
   simsearch dupes --index photos.simidx
   simsearch dupes --index photos.simidx --max-distance 1.5 --json | jq -r '.ids | join(" = ")'
   simsearch dupes --index photos.simidx --tsv | cut -f3,4     # pairs, ids may hold spaces`, dupes.DefaultMaxDistance),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "index", Aliases: []string{"i"}, Usage: "index file", Required: true},
			&cli.Float64Flag{Name: "max-distance", Aliases: []string{"d"}, Usage: "largest Euclidean distance of a near-duplicate pair", Value: dupes.DefaultMaxDistance},
			&cli.BoolFlag{Name: "json", Usage: `one JSON object per group per line: {"ids": [...], "pairs": [{"a", "b", "distance"}]}`},
			&cli.BoolFlag{Name: "tsv", Usage: "one pair per line: GROUP<TAB>DISTANCE<TAB>ID_A<TAB>ID_B"},
			&cli.IntFlag{Name: "workers", Usage: "goroutines comparing (0: one per core)"},
		},
		Action: runDupes,
	}
}

func runDupes(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageError(c, "dupes takes no arguments, got %q", c.Args().First())
	}
	if c.Bool("json") && c.Bool("tsv") {
		return usageError(c, "choose --json or --tsv")
	}
	d := c.Float64("max-distance")
	if !(d >= 0) || d > 1e30 {
		return usageError(c, "--max-distance must be a number ≥ 0, not %v", d)
	}
	ix, err := collection.Open(c.String("index")) // the index with its change log
	if err != nil {
		return err
	}
	defer ix.Release()
	start := time.Now()
	rows, idOf, err := ix.Rows()
	if err != nil {
		return err
	}
	groups, st, err := dupes.Find(rows, ix.Dim(), dupes.Options{MaxDistance: float32(d), Workers: c.Int("workers")})
	if err != nil {
		return fmt.Errorf("%s: %w", ix.Path(), err)
	}
	named, err := dupes.Name(groups, idOf)
	if err != nil {
		return err
	}
	photos := 0
	for _, g := range named {
		photos += len(g.IDs)
	}
	fmt.Fprintf(c.App.ErrWriter, "%d groups of near-duplicates (%d photos, %d pairs within %g) among %d photos; %d of %d block pairs compared in %.2f s\n",
		len(named), photos, st.PairsWithinD, d, ix.Len(), st.Computed, st.BlockPairs, time.Since(start).Seconds())
	w := c.App.Writer
	enc := json.NewEncoder(w)
	for i, g := range named {
		switch {
		case c.Bool("json"):
			if err := enc.Encode(g); err != nil {
				return err
			}
		case c.Bool("tsv"):
			for _, p := range g.Pairs {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", i+1, pyFloat(p.Distance), textField(p.A), textField(p.B))
			}
		default:
			fmt.Fprintf(w, "# group %d: %d photos\n", i+1, len(g.IDs))
			for _, id := range g.IDs {
				fmt.Fprintf(w, "%s\n", textField(id))
			}
			for _, p := range g.Pairs {
				fmt.Fprintf(w, "  %.4f  %s  ~  %s\n", p.Distance, textField(p.A), textField(p.B))
			}
		}
	}
	return nil
}
