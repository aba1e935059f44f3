// Package thumb keeps small JPEG copies of photos on disk, so that a page of results loads a
// few hundred kilobytes instead of the originals. A thumbnail is made once, the first time it is
// asked for, and found again by a key of the photo's id, size and modification time: a photo
// that changes gets a new thumbnail, and the key doubles as an HTTP ETag.
package thumb

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"simsearch/internal/atomicfile"
	"simsearch/pil"
)

// Cache is a folder of thumbnails whose longest side is Size pixels.
type Cache struct {
	dir     string
	size    int
	cleaned sync.Map // the folders cleaned of stale temporary files
}

// Thumb is one thumbnail on disk and what was learnt about its original while making it.
type Thumb struct {
	Path   string `json:"-"`
	ETag   string `json:"-"`
	Width  int    `json:"width"`  // the original's, in pixels
	Height int    `json:"height"` // the original's, in pixels
}

// DefaultDir is where thumbnails go unless told otherwise: the user's cache folder.
func DefaultDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no folder for thumbnails (%v): give one", err)
	}
	return filepath.Join(d, "simsearch", "thumbs"), nil
}

// New returns a cache of thumbnails of the given longest side in dir, which is created when the
// first thumbnail is made (a server that never shows one writes nothing).
func New(dir string, size int) (*Cache, error) {
	if size < 16 || size > 4096 {
		return nil, fmt.Errorf("thumbnail size %d: want 16 to 4096 pixels", size)
	}
	return &Cache{dir: dir, size: size}, nil
}

// Get returns the thumbnail of the photo id whose file is described by st, making it from the
// bytes read returns when there is none yet. Concurrent calls for one photo may both make it;
// each writes a temporary file and renames it into place, so readers never see half a file.
func (c *Cache) Get(id string, st fs.FileInfo, read func() ([]byte, error)) (Thumb, error) {
	h := sha256.Sum256([]byte(id + "\x00" + strconv.FormatInt(st.Size(), 10) + "\x00" +
		strconv.FormatInt(st.ModTime().UnixNano(), 10) + "\x00" + strconv.Itoa(c.size)))
	key := hex.EncodeToString(h[:16])
	base := filepath.Join(c.dir, key[:2], key)
	t := Thumb{Path: base + ".jpg", ETag: `"` + key + `"`}
	if b, err := os.ReadFile(base + ".json"); err == nil && json.Unmarshal(b, &t) == nil {
		if _, err := os.Stat(t.Path); err == nil {
			return t, nil
		}
	}
	data, err := read()
	if err != nil {
		return t, err
	}
	// Decoded by rows into the resize where the format allows, and counted against the decode
	// budget until only the thumbnail is left: a photo of any size costs what a query of it does.
	img, err := pil.Defaults().Named(id).DecodeFit(data, func(w, h int) (int, int) {
		t.Width, t.Height = w, h
		if longest := max(w, h); longest > c.size {
			return max(1, w*c.size/longest), max(1, h*c.size/longest)
		}
		return w, h
	})
	if err != nil {
		return t, fmt.Errorf("%s: %w", id, err)
	}
	meta, _ := json.Marshal(t)
	if err := os.MkdirAll(filepath.Dir(base), 0o777); err != nil {
		return t, fmt.Errorf("thumbnail folder: %w", err)
	}
	c.clean(filepath.Dir(base))
	// The JPEG first, then the record that says it exists. A cache loses nothing by a crash:
	// no fsync.
	err = atomicfile.WriteFile(t.Path, false, func(w io.Writer) error {
		return jpeg.Encode(w, toImage(img), &jpeg.Options{Quality: 80})
	})
	if err != nil {
		return t, err
	}
	err = atomicfile.WriteFile(base+".json", false, func(w io.Writer) error {
		_, err := w.Write(meta)
		return err
	})
	if err != nil {
		return t, err
	}
	return t, nil
}

// toImage wraps the RGB pixels as an image.Image for the JPEG encoder.
func toImage(m *pil.RGB) image.Image {
	out := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255
	}
	return out
}

// clean removes, the first time this process writes into dir, the temporary files that
// writers killed before their rename left there.
func (c *Cache) clean(dir string) {
	if _, done := c.cleaned.LoadOrStore(dir, true); !done {
		atomicfile.RemoveStale(dir) // a cache can live with what it cannot remove
	}
}
