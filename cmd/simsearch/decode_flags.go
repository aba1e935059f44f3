package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"simsearch/pil"
	"simsearch/serve"
)

// decodeFlags are the limits on image decoding, for the commands that decode images. A server
// has a smaller decode budget, and refuses an image that would take more than its share of it;
// the other commands decode such an image alone, as Pillow would open it.
func decodeFlags(server bool) []cli.Flag {
	memory, usage := int64(pil.DefaultDecodeMemory), "bytes that the images being decoded may hold at once (estimated from their headers; a quarter is kept for small images, and an image larger than the rest is decoded alone)"
	if server {
		memory, usage = serve.DefaultDecodeMemory, "bytes that the images being decoded may hold at once, all requests together (estimated from their headers; a quarter is kept for small images, and an image larger than the rest is refused)"
	}
	return []cli.Flag{
		&cli.Int64Flag{Name: "max-pixels", Value: pil.DefaultMaxPixels,
			Usage: "refuse images with more pixels than this, read from their header before decoding (default: what Pillow refuses, more than 2 x its MAX_IMAGE_PIXELS; over 1 x, a warning, as Pillow gives)"},
		&cli.Int64Flag{Name: "decode-memory", Value: memory, Usage: usage},
	}
}

// applyDecodeFlags is the Before of the commands with decodeFlags: it sets pil's defaults, and
// sends Pillow's decompression-bomb warning to stderr.
func applyDecodeFlags(server bool) cli.BeforeFunc {
	return func(c *cli.Context) error {
		if n := c.Int64("max-pixels"); n < 1 {
			return usageError(c, "--max-pixels must be at least 1, not %d", n)
		}
		if n := c.Int64("decode-memory"); n < 1 {
			return usageError(c, "--decode-memory must be at least 1 byte, not %d", n)
		}
		o := pil.Defaults()
		o.MaxPixels = c.Int64("max-pixels")
		o.Warn = func(msg string) { fmt.Fprintf(c.App.ErrWriter, "simsearch: warning: %s\n", msg) }
		pil.SetDefaults(o)
		pil.SetDecodeMemory(c.Int64("decode-memory"), server)
		return nil
	}
}
