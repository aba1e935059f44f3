package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"simsearch/collection"
	"simsearch/embed"
	"simsearch/folder"
	"simsearch/index"
	"simsearch/ingest"
	"simsearch/pil"
	"simsearch/query"
)

// walkFlags choose the files of a folder.
func walkFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "hidden", Usage: "also index files and folders whose name starts with a dot"},
		&cli.StringSliceFlag{Name: "exclude", Usage: "leave out files and folders matching this glob (on the path from the root, or the name); repeatable"},
	}
}

// changeFlags are the flags of the commands that change a collection.
func changeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "index", Aliases: []string{"i"}, Usage: "index file", Required: true},
		&cli.BoolFlag{Name: "json", Usage: "print a JSON summary on stdout"},
		&cli.IntFlag{Name: "batch", Usage: "images per inference and per durable step", Value: 16},
		&cli.BoolFlag{Name: "no-compact", Usage: "never fold the change log into the index file in this call"},
	}
}

func updateCommand() *cli.Command {
	return &cli.Command{
		Name:      "update",
		Usage:     "bring an index in step with a photo folder, embedding only new and changed files",
		ArgsUsage: "--index INDEX [--model MODEL] [PHOTO_DIR]",
		Description: `Walks PHOTO_DIR (the folder the index records, when omitted), embeds the images that are new
or changed since the last update (another size or modification time, confirmed by content),
drops the rows of files that are gone, and commits all of it at once: readers (query, serve)
see the old collection or the new one, never a mix. Creates INDEX when it does not exist,
recording the folder and the model. Images: jpg jpeg png gif webp tiff tif bmp; symbolic links
are followed; hidden files and folders are skipped unless --hidden.

Ids are paths relative to the folder ("2024/beach 1.jpg"); in the seed's object-store layout
(ab/cd/abcd….jpg) they are the file names, as the seed's shards have them, so an index converted
with 'convert --root' is updated without embedding again what it holds.

Interrupted (a crash, kill -9, power loss), it leaves the index as it was, and the next update
goes on from where it stopped: every batch it embedded is kept in the change log, whatever runs
in between (a remove, a compact, an update that fails), until a call adds it.

Files that cannot be embedded are listed under "failed" and left out; the rest carries on. They
are remembered (INDEX.failed) and not read again while they stay the same (size, modification
and status-change time): --retry-failed tries them anyway. A subfolder that cannot be read, or a
broken link, is reported and the rows of the files under it are kept as they were.

An index without a folder (converted from shards without --root) is given one by naming it:
every id of the index must then be a file of the folder, and the folder is recorded in the index
file at the compaction that ends the call.

Examples:
   simsearch update --index photos.simidx --model mobilenet.onnx ~/Pictures   # the first time
   simsearch update --index photos.simidx                                     # from then on
   simsearch update --index photos.simidx --json --exclude 'thumbs' | jq .embedded`,
		Flags: append(append(append(changeFlags(), walkFlags()...),
			&cli.BoolFlag{Name: "exif-transpose", Usage: "when creating the index: turn images upright by their EXIF orientation (the Python pipeline does not)"},
			&cli.BoolFlag{Name: "allow-model-mismatch", Usage: "accept a model other than the one the index was built with"},
			&cli.BoolFlag{Name: "retry-failed", Usage: "try again the files that failed before, even if they have not changed"},
		), append(modelFlags(false), decodeFlags(false)...)...),
		Before: applyDecodeFlags(false),
		Action: runUpdate,
	}
}

func runUpdate(c *cli.Context) error {
	if c.NArg() > 1 {
		return usageError(c, "want at most one photo folder")
	}
	path := c.String("index")
	dir := c.Args().First()
	var create *collection.NewBase
	var model *embed.Model
	defer func() {
		if model != nil {
			model.Close()
		}
	}()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if dir == "" || c.String("model") == "" {
			return usageError(c, "%s does not exist: to create it, give the photo folder and --model", path)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return err
		}
		cfg, err := modelConfig(c)
		if err != nil {
			return err
		}
		if model, err = openModel(cfg, c.String("ort-lib")); err != nil {
			return err
		}
		rec, err := query.Record(cfg, model.SHA256())
		if err != nil {
			return err
		}
		create = &collection.NewBase{Dim: model.Dim(), Meta: index.Meta{Tool: "simsearch update", Model: rec, Root: abs, ExifTranspose: c.Bool("exif-transpose")}}
	}
	w, meta, err := openWriter(path, create)
	if err != nil {
		return err
	}
	defer w.Close()
	root := meta.Root
	adopt := root == ""
	switch {
	case adopt && dir == "":
		return fmt.Errorf("%s records no photo folder (it was converted from shards without --root): name it (update --index %s PHOTO_DIR), or use add", path, path)
	case adopt && c.Bool("no-compact"):
		return usageError(c, "recording %s as the folder of %s rewrites the index file: leave out --no-compact", dir, path)
	case adopt:
		if root, err = filepath.Abs(dir); err != nil {
			return err
		}
	case dir != "" && !sameDir(dir, root):
		return fmt.Errorf("%s is the index of %s, not of %s: use another index for another folder", path, root, dir)
	}
	if c.Bool("exif-transpose") && create == nil && !meta.ExifTranspose {
		return fmt.Errorf("--exif-transpose is chosen when an index is created: %s was made without it", path)
	}
	start := time.Now()
	l, err := folder.Walk(root, walkOptions(c))
	if err != nil {
		return err
	}
	walk := time.Since(start)
	if adopt {
		if err := checkAdoption(w, l, path, root); err != nil {
			return err
		}
		w.SetRoot(root)
	}
	bar := newRateProgress(c.App.ErrWriter, "update")
	opt := ingest.Options{Batch: c.Int("batch"), Progress: bar.update, RetryFailed: c.Bool("retry-failed")}
	sum, err := ingest.Update(w, lazyModel(c, path, meta, &model, w.Dim()), l, opt)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%d files in %s (walked in %.2fs)", len(l.Files), root, walk.Seconds())
	if adopt {
		what += "; recording it as the index's folder"
	}
	return finish(c, w, sum, what, false)
}

// checkAdoption checks that the folder root can be the folder of the index at path, which
// records none: every id of the index is a file of it, so that recording it deletes nothing.
func checkAdoption(w *collection.Writer, l folder.Listing, path, root string) error {
	live, err := w.States()
	if err != nil {
		return err
	}
	for _, f := range l.Files {
		delete(live, f.ID)
	}
	if len(live) == 0 {
		return nil
	}
	var example string
	for id := range live {
		if example == "" || id < example {
			example = id
		}
	}
	return fmt.Errorf("%s records no photo folder, and %d of its ids are not files of %s (%q is not): not taking it as the index's folder (is it the right one?)", path, len(live), root, example)
}

func sameDir(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

func walkOptions(c *cli.Context) folder.Options {
	return folder.Options{Hidden: c.Bool("hidden"), Exclude: c.StringSlice("exclude")}
}

// lazyModel loads the model the index records (or the flags name) the first time there is
// something to embed, checked against the index as query checks it.
func lazyModel(c *cli.Context, path string, meta index.Meta, model **embed.Model, dim int) ingest.ModelFunc {
	return func() (*embed.Model, error) {
		if *model != nil {
			return *model, nil
		}
		req, err := modelRequest(c)
		if err != nil {
			return nil, err
		}
		cfg, err := query.ResolveModel(req, meta.Model, path)
		if err != nil {
			return nil, err
		}
		m, err := openModel(cfg, req.ORTLib)
		if err != nil {
			return nil, err
		}
		if rec := meta.Model; rec != nil && rec.SHA256 != "" && rec.SHA256 != m.SHA256() && !req.AllowMismatch {
			m.Close()
			return nil, fmt.Errorf("%s (sha256 %.12s…) is not the model %s was built with (%s, sha256 %.12s…): pass that model, or --allow-model-mismatch", cfg.Model, m.SHA256(), path, rec.File, rec.SHA256)
		}
		if m.Dim() != dim {
			m.Close()
			return nil, fmt.Errorf("%s produces %d-dim vectors but %s holds %d-dim vectors", cfg.Model, m.Dim(), path, dim)
		}
		*model = m
		return m, nil
	}
}

func openModel(cfg embed.Config, ortLib string) (*embed.Model, error) {
	m, _, err := embed.OpenModel(cfg, ortLib, embed.DefaultCacheDir())
	return m, err
}

// openWriter opens the collection at path for changes (creating it as create says, if not nil)
// and makes images decode as its rows' were.
func openWriter(path string, create *collection.NewBase) (*collection.Writer, index.Meta, error) {
	w, err := collection.OpenWriter(path, create)
	if err != nil {
		return nil, index.Meta{}, err
	}
	meta, err := w.Meta()
	if err != nil {
		w.Close()
		return nil, index.Meta{}, err
	}
	decodeAsRecorded(meta)
	return w, meta, nil
}

// decodeAsRecorded makes images decode as the index's were: turned upright by their EXIF
// orientation when the index records so (update --exif-transpose), else as Pillow opens them.
func decodeAsRecorded(meta index.Meta) {
	o := pil.Defaults()
	o.ExifTranspose = meta.ExifTranspose
	pil.SetDefaults(o)
}

// finish commits, compacts when the log has grown enough, and prints the summary. With
// failIfAny, a failed file makes the call's exit status non-zero once the summary is printed.
func finish(c *cli.Context, w *collection.Writer, sum ingest.Summary, what string, failIfAny bool) error {
	if err := ingest.Commit(w, sum); err != nil {
		return err
	}
	written := w.Written()
	compacted := false
	if !c.Bool("no-compact") && w.NeedsCompaction() {
		if err := w.Compact(); err != nil {
			return fmt.Errorf("committed, but compacting failed (the next call compacts): %w", err)
		}
		compacted = true
	}
	for _, f := range sum.Failed {
		fmt.Fprintf(c.App.ErrWriter, "simsearch: not indexed: %s\n", f.Error)
	}
	var failed error
	if failIfAny && len(sum.Failed) > 0 {
		failed = fmt.Errorf("%d of the files given could not be added (listed above); the others are committed", len(sum.Failed))
	}
	if c.Bool("json") {
		if err := json.NewEncoder(c.App.Writer).Encode(sum); err != nil {
			return err
		}
		return failed
	}
	fmt.Fprintf(c.App.ErrWriter, "%s: %d added, %d changed, %d removed, %d unchanged; %d embedded", what, sum.Added, sum.Changed, sum.Removed, sum.Unchanged, sum.Embedded)
	if sum.Reused > 0 {
		fmt.Fprintf(c.App.ErrWriter, ", %d taken from an interrupted call", sum.Reused)
	}
	if len(sum.Failed) > 0 {
		fmt.Fprintf(c.App.ErrWriter, ", %d failed", len(sum.Failed))
	}
	fmt.Fprintf(c.App.ErrWriter, "; %d bytes logged", written)
	if compacted {
		fmt.Fprint(c.App.ErrWriter, ", index compacted")
	}
	fmt.Fprintln(c.App.ErrWriter)
	return failed
}

// rateProgress reports a call's progress on stderr: count, rate and time left. On a terminal it
// redraws one line; otherwise (cron, logs) it writes a line every 10 seconds.
type rateProgress struct {
	w     io.Writer
	label string
	tty   bool
	last  time.Time
}

func newRateProgress(w io.Writer, label string) *rateProgress {
	p := &rateProgress{w: w, label: label, last: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *rateProgress) update(g ingest.Progress) {
	every := 10 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.last) < every && g.Done < g.Total {
		return
	}
	p.last = time.Now()
	rate := float64(g.Done) / g.Elapsed.Seconds()
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(g.Total-g.Done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("%s: %d/%d images (%d embedded), %.1f/s, %s left", p.label, g.Done, g.Total, g.Embedded, rate, eta)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\033[K", line)
		if g.Done >= g.Total {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, line)
}
