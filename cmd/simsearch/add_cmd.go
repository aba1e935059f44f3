package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
that is in the index already is an error, unless --replace.

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
			path := c.String("index")
			w, meta, err := openWriter(path, nil)
			if err != nil {
				return err
			}
			defer w.Close()
			files, err := filesToAdd(c, meta.Root)
			if err != nil {
				return err
			}
			var model *embed.Model
			defer func() {
				if model != nil {
					model.Close()
				}
			}()
			bar := newRateProgress(c.App.ErrWriter, "add")
			sum, err := ingest.Add(w, lazyModel(c, path, meta, &model, w.Dim()), files, c.Bool("replace"), ingest.Options{Batch: c.Int("batch"), Progress: bar.update})
			if err != nil {
				return err
			}
			return finish(c, w, sum, fmt.Sprintf("%d files", len(files)))
		},
	}
}

// filesToAdd lists the images the arguments name, with their ids for an index rooted at root.
func filesToAdd(c *cli.Context, root string) ([]folder.File, error) {
	var files []folder.File
	for _, arg := range c.Args().Slice() {
		if arg == "-" {
			return nil, errors.New(`"-": add reads image files, not standard input (a row records its file's path, size and time, which update checks): save the image in the photo folder first`)
		}
		st, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, folder.File{Path: arg, Size: st.Size(), MtimeNS: st.ModTime().UnixNano()})
			continue
		}
		found, err := folder.Walk(arg, walkOptions(c))
		if err != nil {
			return nil, err
		}
		files = append(files, found...)
	}
	for i := range files {
		f := &files[i]
		if root == "" {
			f.ID = filepath.Base(f.Path)
			continue
		}
		abs, err := filepath.Abs(f.Path)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(root, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("%s is outside %s, the folder the index's ids are relative to", f.Path, root)
		}
		f.ID = folder.ID(filepath.ToSlash(rel))
	}
	return files, nil
}
