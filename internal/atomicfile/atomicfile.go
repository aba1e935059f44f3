// Package atomicfile names, creates and cleans up the temporary files that simsearch writes its
// outputs through (write, fsync, rename), so that a reader never sees half a file.
//
// A temporary file is named .BASE.tmp-PID-RANDOM beside its target BASE. The writer's process id
// in the name lets a later run remove what a killed process (SIGKILL, power loss) left behind,
// without touching a file another live process is still writing. Files are created with mode
// 0666 less the umask, as any other program's output would be (os.CreateTemp's 0600 would make
// every index and shard private to its writer).
package atomicfile

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
)

// WriteFile writes path through a temporary file beside it: write fills the file, which is
// then synced (when durable), closed, renamed over path, and path's folder synced (when durable,
// so that the rename too survives a power loss). On failure the temporary file is removed and
// path is as it was. A cache, which loses nothing by a crash, passes durable false.
func WriteFile(path string, durable bool, write func(io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	if durable {
		SyncDir(filepath.Dir(path))
	}
	return nil
}

// SyncDir syncs the folder dir, so that the files renamed or created in it stay after a power
// loss. It is best effort: a folder that cannot be opened or synced is left as it is.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Create creates a new, empty temporary file for path, in path's directory.
func Create(path string) (*os.File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	for range 100 {
		var r [4]byte
		rand.Read(r[:])
		name := filepath.Join(dir, fmt.Sprintf(".%s.tmp-%d-%d", base, os.Getpid(), binary.LittleEndian.Uint32(r[:])))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		switch {
		case errors.Is(err, fs.ErrExist):
			continue
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("cannot write %s: the folder %s does not exist", path, filepath.Dir(path))
		case err != nil:
			return nil, fmt.Errorf("cannot write %s: %w", path, err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("%s: cannot find an unused temporary file name", path)
}

var tempName = regexp.MustCompile(`^\..+\.tmp-([0-9]+)-[0-9]+$`)

// IsTemp reports whether name (a base name) is a temporary file name that Create makes.
func IsTemp(name string) bool { return tempName.MatchString(name) }

// RemoveStale removes the temporary files in dir whose writing process no longer runs, and
// returns their paths. Files of live processes (this one included) are left alone. A dir that
// does not exist holds none.
func RemoveStale(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		m := tempName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || alive(pid) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// alive reports whether a process with this id exists. A process that exists but belongs to
// another user (EPERM) is alive too.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
