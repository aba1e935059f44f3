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
// simsearch loads, so that every image the Python pipeline embeds is embedded here too.
const DefaultMaxPixels = 2 * PillowMaxImagePixels

// DefaultDecodeMemory is the default budget, shared by every decode in the process, for the
// memory that decoding images in flight may hold at once (see SetDecodeMemory).
const DefaultDecodeMemory = 1 << 30

// ErrTooLarge is wrapped by errors about images refused for their size before decoding.
var ErrTooLarge = errors.New("image too large")

// Options say how images are decoded. The zero value is Pillow's behaviour.
type Options struct {
	// MaxPixels refuses images with more pixels than this, from the size in their header, before
	// any pixel is decoded. 0 means DefaultMaxPixels.
	MaxPixels int64
	// ExifTranspose turns and flips images as their EXIF orientation tag says (as
	// PIL.ImageOps.exif_transpose does) before they are resized. Off by default, because the
	// Python pipeline ignores the tag.
	ExifTranspose bool
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

// budget is a counting semaphore over bytes: the memory that decodes in flight may hold at once.
type budget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	limit int64
	held  int64
	peak  int64 // the most ever held, for tests
}

var decodeBudget = newBudget(DefaultDecodeMemory)

func newBudget(limit int64) *budget {
	b := &budget{limit: limit}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// SetDecodeMemory sets the process-wide budget, in bytes, for the memory that image decodes in
// flight may hold at once, estimated from each image's header before it is decoded. A decode
// waits until its estimate fits in what is left. A single image larger than the whole budget
// (which MaxPixels bounds) waits until it is alone, so that what Pillow opens still opens; the
// memory held is then at most max(budget, largest image allowed).
func SetDecodeMemory(bytes int64) {
	if bytes <= 0 {
		bytes = DefaultDecodeMemory
	}
	decodeBudget.mu.Lock()
	decodeBudget.limit = bytes
	decodeBudget.mu.Unlock()
	decodeBudget.cond.Broadcast()
}

// acquire waits until n bytes (at most the whole budget) fit and takes them; release(the
// returned amount) gives them back.
func (b *budget) acquire(n int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, b.limit)
	for b.held+n > b.limit && b.held > 0 {
		b.cond.Wait()
	}
	b.held += n
	b.peak = max(b.peak, b.held)
	return n
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.held -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}
