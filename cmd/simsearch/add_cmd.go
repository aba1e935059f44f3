package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"simsearch/embed"
	"simsearch/folder"
	"simsearch/ingest"
)

func addCommand() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "embed images and add them to an index",
		ArgsUsage: "--index INDEX [--model MODEL] IMAGE|DIR...",
		Description: `Embeds each IMAGE (and the images under each DIR) and adds it to INDEX, committing all at
once. Ids are paths relative to the folder the index records (as update gives them), or, for an
index without one (converted from shards), the file names, as the seed's shards have them. An id
that is in the index already is an error, unless --replace; a replaced row whose new file cannot
be embedded is kept as it was.

Files that cannot be added (not readable images, ids shared by two files, outside the index's
folder) are listed under "failed" and the rest is committed; the exit status is then 1.

Examples:
   simsearch add --index photos.simidx new/cat.jpg new/dog.png
   simsearch add --index photos.simidx --replace --json ~/Pictures/2025`,
		Flags: append(append(append(changeFlags(), walkFlags()...),
			&cli.BoolFlag{Name: "replace", Usage: "replace the rows of ids that are present"},
			&cli.BoolFlag{Name: "allow-model-mismatch", Usage: "accept a model other than the one the index was built with"},
		), append(modelFlags(false), decodeFlags(false)...)...),
		Before: applyDecodeFlags(false),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError(c, "want at least one image or folder")
			}
			if slices.Contains(c.Args().Slice(), "-") {
				return errors.New(`"-": add reads image files, not standard input (a row records its file's path, size and time, which update checks): save the image in the photo folder first`)
			}
			path := c.String("index")
			w, meta, err := openWriter(path, nil)
			if err != nil {
				return err
			}
			defer w.Close()
			l := filesToAdd(c, meta.Root)
			var model *embed.Model
			defer func() {
				if model != nil {
					model.Close()
				}
			}()
			bar := newRateProgress(c.App.ErrWriter, "add")
			sum, err := ingest.Add(w, lazyModel(c, path, meta, &model, w.Dim()), l, c.Bool("replace"), ingest.Options{Batch: c.Int("batch"), Progress: bar.update})
			if err != nil {
				return err
			}
			return finish(c, w, sum, filesPhrase(len(l.Files)+len(l.Refused)+len(l.Unreadable)), true)
		},
	}
}

// filesToAdd lists the images the arguments name, with their ids for an index rooted at root.
// What cannot be listed (a path that does not exist, a file outside root) is in Unreadable.
func filesToAdd(c *cli.Context, root string) folder.Listing {
	var l folder.Listing
	problem := func(p string, err error) {
		l.Unreadable = append(l.Unreadable, folder.Problem{Path: p, Err: err})
	}
	var files []folder.File
	for _, arg := range c.Args().Slice() {
		st, err := os.Stat(arg)
		if err != nil {
			problem(arg, err)
			continue
		}
		if !st.IsDir() {
			f, err := folder.Stat(arg)
			if err != nil {
				problem(arg, err)
				continue
			}
			files = append(files, f)
			continue
		}
		found, err := folder.Walk(arg, walkOptions(c))
		if err != nil {
			problem(arg, err)
			continue
		}
		files = append(files, found.Files...)
		l.Refused = append(l.Refused, found.Refused...)
		l.Unreadable = append(l.Unreadable, found.Unreadable...)
	}
	for _, f := range files {
		if root == "" {
			f.ID = filepath.Base(f.Path)
			l.Files = append(l.Files, f)
			continue
		}
		abs, err := filepath.Abs(f.Path)
		if err != nil {
			problem(f.Path, err)
			continue
		}
		rel, err := filepath.Rel(root, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			problem(f.Path, fmt.Errorf("%s is outside %s, the folder the index's ids are relative to", f.Path, root))
			continue
		}
		f.ID = folder.ID(filepath.ToSlash(rel))
		l.Files = append(l.Files, f)
	}
	return l
}

// filesPhrase is "1 file" or "N files", the subject of add's summary.
func filesPhrase(n int) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}
