package main

import (
	"github.com/urfave/cli/v2"

	"simsearch/pil"
)

// decodeFlags are the limits on image decoding, for the commands that decode images.
func decodeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Int64Flag{Name: "max-pixels", Value: pil.DefaultMaxPixels,
			Usage: "refuse images with more pixels than this, read from their header before decoding (default: what Pillow refuses, more than 2 x its MAX_IMAGE_PIXELS)"},
		&cli.Int64Flag{Name: "decode-memory", Value: pil.DefaultDecodeMemory,
			Usage: "bytes that the images being decoded may hold at once, all requests together (estimated from their headers; an image larger than this is decoded alone)"},
	}
}

// applyDecodeFlags is the Before of the commands with decodeFlags: it sets pil's defaults.
func applyDecodeFlags(c *cli.Context) error {
	if n := c.Int64("max-pixels"); n < 1 {
		return usageError(c, "--max-pixels must be at least 1, not %d", n)
	}
	if n := c.Int64("decode-memory"); n < 1 {
		return usageError(c, "--decode-memory must be at least 1 byte, not %d", n)
	}
	o := pil.Defaults()
	o.MaxPixels = c.Int64("max-pixels")
	pil.SetDefaults(o)
	pil.SetDecodeMemory(c.Int64("decode-memory"), false)
	return nil
}
