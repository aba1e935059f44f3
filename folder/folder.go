// Package folder lists the images of a photo folder with the ids a collection gives them and what
// a stat tells about them (size, modification time), following symbolic links without looping.
package folder

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Extensions are the file name extensions (lower case) of the images a folder walk lists.
var Extensions = []string{".jpg", ".jpeg", ".png", ".gif", ".webp", ".tiff", ".tif", ".bmp"}

// File is one image found.
type File struct {
	ID      string // see ID
	Path    string // as found under the root (symbolic links not resolved)
	Size    int64  // of the file the path leads to
	MtimeNS int64
}

// Options control a walk.
type Options struct {
	Hidden  bool     // also list files and folders whose name starts with a dot
	Exclude []string // glob patterns (path.Match) matched against the id path and the base name
	// Warn is told about entries that cannot be read (a broken link, a folder without
	// permission) and are left out; nil ignores them.
	Warn func(path string, err error)
}

// IsImage reports whether name has one of Extensions.
func IsImage(name string) bool {
	return slices.Contains(Extensions, strings.ToLower(filepath.Ext(name)))
}

// ID is the id of the file at rel, a /-separated path relative to the collection's root: in the
// seed's object-store layout (ab/cd/abcd….jpg: a name of 40 lowercase hex digits, the SHA-1 of
// the file, and an extension, under two folders named by its first two pairs of digits) it is
// the bare file name, as the seed's shards have it; otherwise the path itself.
func ID(rel string) string {
	parts := strings.Split(rel, "/")
	if len(parts) == 3 && storeName(parts[2]) && parts[0] == parts[2][:2] && parts[1] == parts[2][2:4] {
		return parts[2]
	}
	return rel
}

// storeName reports whether name is an object-store file name: 40 lowercase hex digits, then an
// extension.
func storeName(name string) bool {
	if len(name) < 42 || name[40] != '.' {
		return false
	}
	for i := range 40 {
		if c := name[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Walk lists the images under root, sorted by id. Symbolic links are followed, each folder is
// entered once (a link back to a folder already seen is not followed again), and two files with
// the same id are an error.
func Walk(root string, opt Options) ([]File, error) {
	for _, g := range opt.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("--exclude %q: %w", g, err)
		}
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", root)
	}
	w := &walker{opt: opt, seen: map[[2]uint64]bool{}}
	w.enter(st)
	if err := w.dir(root, ""); err != nil {
		return nil, err
	}
	slices.SortFunc(w.files, func(a, b File) int { return strings.Compare(a.ID, b.ID) })
	for i := 1; i < len(w.files); i++ {
		if w.files[i].ID == w.files[i-1].ID {
			return nil, fmt.Errorf("%s and %s would both have the id %q", w.files[i-1].Path, w.files[i].Path, w.files[i].ID)
		}
	}
	return w.files, nil
}

type walker struct {
	opt   Options
	seen  map[[2]uint64]bool // folders entered, by device and inode
	files []File
}

// enter marks a folder as entered and reports whether it was new.
func (w *walker) enter(st os.FileInfo) bool {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	key := [2]uint64{uint64(s.Dev), s.Ino}
	if w.seen[key] {
		return false
	}
	w.seen[key] = true
	return true
}

func (w *walker) warn(p string, err error) {
	if w.opt.Warn != nil {
		w.opt.Warn(p, err)
	}
}

func (w *walker) excluded(rel string) bool {
	for _, g := range w.opt.Exclude {
		if ok, _ := path.Match(g, rel); ok {
			return true
		}
		if ok, _ := path.Match(g, path.Base(rel)); ok {
			return true
		}
	}
	return false
}

func (w *walker) dir(dir, rel string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if rel == "" {
			return err
		}
		w.warn(dir, err)
		return nil
	}
	for _, e := range entries {
		name := e.Name()
		if !w.opt.Hidden && strings.HasPrefix(name, ".") {
			continue
		}
		p, r := filepath.Join(dir, name), path.Join(rel, name)
		if w.excluded(r) {
			continue
		}
		var st os.FileInfo
		if e.Type()&fs.ModeSymlink != 0 {
			st, err = os.Stat(p)
		} else if e.IsDir() || IsImage(name) {
			st, err = e.Info()
		} else {
			continue
		}
		if err != nil {
			w.warn(p, err)
			continue
		}
		switch {
		case st.IsDir():
			if w.enter(st) {
				if err := w.dir(p, r); err != nil {
					return err
				}
			}
		case st.Mode().IsRegular() && IsImage(name):
			w.files = append(w.files, File{ID: ID(r), Path: p, Size: st.Size(), MtimeNS: st.ModTime().UnixNano()})
		}
	}
	return nil
}
