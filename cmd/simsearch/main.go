// Command simsearch finds similar images: it packs feature shards into a memory-mapped index,
// embeds query images with an ONNX model exactly as the Python pipeline does, and scans the
// index exactly with SIMD kernels. Run `simsearch help` for the commands.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"simsearch/kernel"
)

// exitError carries an exit status for errors already reported (a query batch in which some
// images failed).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run runs the command line args with the given outputs and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp()
	cli.VersionPrinter = func(c *cli.Context) { printBuildInfo(c.App.Writer, false) }
	app.Writer, app.ErrWriter = stdout, stderr
	args, err := flagsFirst(app, args)
	if err == nil {
		err = app.Run(args)
	}
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintf(stderr, "simsearch: %v\n", err)
		return 1
	}
	return 0
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "simsearch",
		Usage: "similar-image search over a memory-mapped index of feature vectors",
		Description: `A typical session:

   simsearch extract photos/ -o shards/ --model model.onnx   # images -> feature shards (or use your own)
   simsearch convert shards/ -o photos.simidx                # shards -> one index file, once
   simsearch query --index photos.simidx cat.jpg             # the 10 nearest images, with distances
   simsearch dupes --index photos.simidx                     # the groups of near-duplicate photos
   simsearch serve --index photos.simidx --objects photos/   # a page: more like this, duplicates, a map

Environment: ONNXRUNTIME_LIB points at libonnxruntime.so (default: the user cache dir, where
'make setup' installs it); SIMSEARCH_KERNEL=generic|avx2|avx512 forces a distance kernel.`,
		Version: appVersion(),
		Before: func(*cli.Context) error {
			return kernel.Check()
		},
		Commands: []*cli.Command{
			convertCommand(),
			infoCommand(),
			verifyCommand(),
			queryCommand(),
			extractCommand(),
			serveCommand(),
			updateCommand(),
			addCommand(),
			removeCommand(),
			compactCommand(),
			dupesCommand(),
			versionCommand(),
			pushCommand(),
		},
	}
}

// usageError reports a command-line mistake with the command's usage line.
func usageError(c *cli.Context, format string, args ...any) error {
	return fmt.Errorf("%s (usage: simsearch %s %s)", fmt.Sprintf(format, args...), c.Command.Name, c.Command.ArgsUsage)
}
