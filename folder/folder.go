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
	"unicode/utf8"
)

// Extensions are the file name extensions (lower case) of the images a folder walk lists.
var Extensions = []string{".jpg", ".jpeg", ".png", ".gif", ".webp", ".tiff", ".tif", ".bmp"}

// File is one image found.
type File struct {
	ID      string // see ID
	Path    string // as found under the root (symbolic links not resolved)
	Size    int64  // of the file the path leads to
	MtimeNS int64
	CtimeNS int64 // its status change time: a chmod or a rename changes it, not only a write
	rel     string
}

// Stat describes the file at path (symbolic links followed), without an id.
func Stat(path string) (File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return File{}, err
	}
	if !st.Mode().IsRegular() {
		return File{}, fmt.Errorf("%s is not a regular file", path)
	}
	return fileOf(path, st), nil
}

func fileOf(path string, st os.FileInfo) File {
	f := File{Path: path, Size: st.Size(), MtimeNS: st.ModTime().UnixNano()}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		f.CtimeNS = s.Ctim.Nano()
	}
	return f
}

// Options control a walk.
type Options struct {
	Hidden  bool     // also list files and folders whose name starts with a dot
	Exclude []string // glob patterns (path.Match) matched against the id path and the base name
}

// Listing is what a walk found.
type Listing struct {
	Files []File // the images, sorted by id; every id is valid UTF-8 and unique
	// Refused are images that cannot have an id: a name that is not valid UTF-8, or two files
	// whose ids are the same (both are refused: which one the id means is not known).
	Refused []Problem
	// Unreadable are entries that could not be read (a folder without permission, a broken
	// link): what is under them is unknown, which is not the same as gone.
	Unreadable []Problem
}

// Problem is an entry a walk could not list, with the reason.
type Problem struct {
	Path string // as found under the root
	Rel  string // relative to the root, /-separated
	Err  error
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

// Under reports whether a file with this id could be at dir (a /-separated path relative to the
// root) or below it: the id's own path, or for an object-store name the path the store keeps it
// at.
func Under(id, dir string) bool {
	in := func(rel string) bool { return rel == dir || strings.HasPrefix(rel, dir+"/") }
	return in(id) || (storeName(id) && in(id[:2]+"/"+id[2:4]+"/"+id))
}

// Walk lists the images under root. Symbolic links are followed and each folder is entered once
// (a link back to a folder already seen is not followed again). Only a root that cannot be read
// is an error; entries below it that cannot be read, and images that cannot have an id, are
// listed as such.
func Walk(root string, opt Options) (Listing, error) {
	for _, g := range opt.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return Listing{}, fmt.Errorf("--exclude %q: %w", g, err)
		}
	}
	st, err := os.Stat(root)
	if err != nil {
		return Listing{}, err
	}
	if !st.IsDir() {
		return Listing{}, fmt.Errorf("%s is not a folder", root)
	}
	w := &walker{opt: opt, seen: map[[2]uint64]bool{}}
	w.enter(st)
	if err := w.dir(root, ""); err != nil {
		return Listing{}, err
	}
	l := w.out
	slices.SortFunc(l.Files, func(a, b File) int { return strings.Compare(a.ID, b.ID) })
	// Two files with one id: both are refused.
	files := l.Files[:0]
	for i := 0; i < len(l.Files); {
		j := i + 1
		for j < len(l.Files) && l.Files[j].ID == l.Files[i].ID {
			j++
		}
		if j == i+1 {
			files = append(files, l.Files[i])
		} else {
			var paths []string
			for _, f := range l.Files[i:j] {
				paths = append(paths, f.Path)
			}
			for _, f := range l.Files[i:j] {
				l.Refused = append(l.Refused, Problem{Path: f.Path, Rel: f.rel, Err: fmt.Errorf("%s: these files would have one id, %q: none of them is indexed (rename all but one)", strings.Join(paths, " and "), f.ID)})
			}
		}
		i = j
	}
	l.Files = files
	return l, nil
}

type walker struct {
	opt  Options
	seen map[[2]uint64]bool // folders entered, by device and inode
	out  Listing
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

func (w *walker) unreadable(p, rel string, err error) {
	w.out.Unreadable = append(w.out.Unreadable, Problem{Path: p, Rel: rel, Err: err})
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
		w.unreadable(dir, rel, err)
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
			w.unreadable(p, r, err)
			continue
		}
		switch {
		case st.IsDir():
			if w.enter(st) {
				if err := w.dir(p, r); err != nil {
					return err
				}
			}
		case st.Mode().IsRegular() && IsImage(name) && !utf8.ValidString(r):
			w.out.Refused = append(w.out.Refused, Problem{Path: p, Rel: r, Err: fmt.Errorf("%s: the name is not valid UTF-8, and ids are UTF-8: rename the file", p)})
		case st.Mode().IsRegular() && IsImage(name):
			f := fileOf(p, st)
			f.ID, f.rel = ID(r), r
			w.out.Files = append(w.out.Files, f)
		}
	}
	return nil
}
