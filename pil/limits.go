package pil

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// PillowMaxImagePixels is Pillow's Image.MAX_IMAGE_PIXELS. Pillow checks an image's size when it
// opens the file, before any pixel is decoded: above twice this it raises DecompressionBombError;
// between once and twice it only warns (DecompressionBombWarning) and loads the image.
const PillowMaxImagePixels = 89_478_485

// DefaultMaxPixels is the largest image Decode accepts by default: exactly what Pillow refuses
// (more than twice MAX_IMAGE_PIXELS), simsearch refuses, and what Pillow loads after a warning,
// simsearch loads (after the same warning, see Options.Warn), so that every image the Python
// pipeline embeds is embedded here too.
const DefaultMaxPixels = 2 * PillowMaxImagePixels

// DefaultDecodeMemory is the default budget, shared by every decode in the process, for the
// memory that decoding images in flight may hold at once (see SetDecodeMemory).
const DefaultDecodeMemory = 1 << 30

// ErrTooLarge is wrapped by errors about images refused for their size before decoding.
var ErrTooLarge = errors.New("image too large")

// Options say how images are decoded. The zero value is Pillow's behaviour, without its warning.
type Options struct {
	// MaxPixels refuses images with more pixels than this, from the size in their header, before
	// any pixel is decoded. 0 means DefaultMaxPixels.
	MaxPixels int64
	// ExifTranspose turns and flips images as their EXIF orientation tag says (as
	// PIL.ImageOps.exif_transpose does) before they are resized. Off by default, because the
	// Python pipeline ignores the tag.
	ExifTranspose bool
	// Warn, when set, is given Pillow's DecompressionBombWarning for an image over
	// PillowMaxImagePixels (but within MaxPixels) before it is decoded. Open and OpenResized
	// prefix it with the file's name (see Named).
	Warn func(msg string)
}

var defaults atomic.Pointer[Options]

// SetDefaults sets the options that Open and Decode use (the command line's flags).
func SetDefaults(o Options) { defaults.Store(&o) }

// Defaults returns the options that Open and Decode use.
func Defaults() Options {
	if o := defaults.Load(); o != nil {
		return *o
	}
	return Options{}
}

func (o Options) maxPixels() int64 {
	if o.MaxPixels <= 0 {
		return DefaultMaxPixels
	}
	return o.MaxPixels
}

// Named returns o with its warnings prefixed by name: a file's, an upload's.
func (o Options) Named(name string) Options {
	if warn := o.Warn; warn != nil {
		o.Warn = func(msg string) { warn(name + ": " + msg) }
	}
	return o
}

// checkSize refuses an image whose header gives an impossible or too large size.
func (o Options) checkSize(format string, w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: %s: size %dx%d", ErrFormat, format, w, h)
	}
	if n := int64(w) * int64(h); n > o.maxPixels() {
		return fmt.Errorf("%w: %s: %dx%d = %d pixels exceeds the limit of %d (a decompression bomb? Pillow refuses it too; --max-pixels raises the limit)",
			ErrTooLarge, format, w, h, n, o.maxPixels())
	}
	return nil
}

// warnSize gives Pillow's warning for an image over MAX_IMAGE_PIXELS, in Pillow's words.
func (o Options) warnSize(w, h int) {
	if n := int64(w) * int64(h); n > PillowMaxImagePixels && o.Warn != nil {
		o.Warn(fmt.Sprintf("Image size (%d pixels) exceeds limit of %d pixels, could be decompression bomb DOS attack (Pillow's DecompressionBombWarning: Pillow loads it, and so does simsearch)",
			n, PillowMaxImagePixels))
	}
}

// checkResize refuses to resize an image to w×h when Pillow's intermediate image (the
// horizontal pass: w × the source's height) or a table of filter weights would hold more values
// than the pixel limit (MaxPixels, or DefaultMaxPixels if that is higher). At 224×224 and the
// default limit, that is an image over 798,000 pixels tall or 44 million wide: its resize would
// cost hundreds of times the work of decoding it, and Pillow gigabytes of memory.
func (o Options) checkResize(format string, sw, sh, w, h int) error {
	limit := max(o.maxPixels(), DefaultMaxPixels)
	n := max(int64(w)*int64(sh), int64(w)*int64(kernelSize(sw, w)), int64(h)*int64(kernelSize(sh, h)))
	if n > limit {
		return fmt.Errorf("%w: %s: %dx%d is too elongated to resize to %dx%d (%d intermediate values, over the limit of %d; --max-pixels raises it)",
			ErrTooLarge, format, sw, sh, w, h, n, limit)
	}
	return nil
}

// budget is a counting semaphore over bytes: the memory that decodes in flight may hold at once.
// It has two lanes, so that large images never keep small ones waiting: an image estimated at
// no more than a sixteenth of the budget is small and draws on a quarter of it kept for small
// images; the others share the rest.
type budget struct {
	mu     sync.Mutex
	cond   *sync.Cond
	limit  int64
	refuse bool     // refuse an image larger than its lane, rather than decode it alone
	held   [2]int64 // small lane, large lane
	// For tests: the most ever held, and how many decodes wait now.
	peak, waiting int64
}

var decodeBudget = newBudget(DefaultDecodeMemory)

func newBudget(limit int64) *budget {
	b := &budget{limit: limit}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// SetDecodeMemory sets the process-wide budget, in bytes, for the memory that image decodes in
// flight may hold at once, estimated from each image's header before it is decoded: a decode
// waits until its estimate fits in what its lane has left. A quarter of the budget is kept for
// small images (a sixteenth of the budget or less). A large image bigger than the other three
// quarters is refused (ErrTooLarge) when refuseLarger is set — a server's choice, where one
// request must not take the memory of all — and otherwise waits until it is the only large
// image being decoded, so that what Pillow opens still opens: memory held is then at most the
// budget or that image plus the small lane.
func SetDecodeMemory(bytes int64, refuseLarger bool) {
	if bytes <= 0 {
		bytes = DefaultDecodeMemory
	}
	decodeBudget.mu.Lock()
	decodeBudget.limit = bytes
	decodeBudget.refuse = refuseLarger
	decodeBudget.mu.Unlock()
	decodeBudget.cond.Broadcast()
}

// grant is memory taken from the budget: give it back with release.
type grant struct {
	lane int
	n    int64
}

func (b *budget) lanes() (small, large, smallMax int64) {
	return b.limit / 4, b.limit - b.limit/4, b.limit / 16
}

// acquire waits until n bytes fit in their lane and takes them.
func (b *budget) acquire(format string, n int64) (grant, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	small, large, smallMax := b.lanes()
	g := grant{lane: 1, n: n}
	capacity := large
	if n <= smallMax {
		g.lane, capacity = 0, small
	} else if n > large && b.refuse {
		return grant{}, fmt.Errorf("%w: %s: decoding it would hold about %d MB, more than one image may hold here (%d MB: three quarters of --decode-memory %d MB)",
			ErrTooLarge, format, (n+1<<20-1)>>20, large>>20, b.limit>>20)
	}
	for b.held[g.lane]+n > capacity && b.held[g.lane] > 0 {
		b.waiting++
		b.cond.Wait()
		b.waiting--
	}
	b.held[g.lane] += n
	b.peak = max(b.peak, b.held[0]+b.held[1])
	return g, nil
}

func (b *budget) release(g grant) {
	b.mu.Lock()
	b.held[g.lane] -= g.n
	b.mu.Unlock()
	b.cond.Broadcast()
}
