package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"simsearch/internal/atomicfile"
)

// FailuresPath is the file beside the index at path where update remembers the files it could
// not embed: a JSON object {"version": 1, "failed": [memo...]}, replaced whole (written under a
// temporary name, synced, renamed) after each update's commit, removed when nothing failed. It
// is a cache: without it (deleted, or written by another version) every file is tried again. A
// path that is not valid UTF-8 does not survive JSON, so such a file is simply tried again.
func FailuresPath(path string) string { return path + ".failed" }

const failuresVersion = 1

// memo is a file that failed: where it is, what a stat told (a failure is remembered while all
// three stay the same: rewriting, touching, chmod-ing or renaming the file retries it), why,
// and when.
type memo struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
	CtimeNS int64  `json:"ctime_ns"`
	Error   string `json:"error"`
	Time    string `json:"time"` // RFC 3339, UTC
}

type failuresFile struct {
	Version int    `json:"version"`
	Failed  []memo `json:"failed"`
}

// loadFailures reads the failures remembered beside the index at path, by file path.
func loadFailures(path string) (map[string]memo, error) {
	b, err := os.ReadFile(FailuresPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f failuresFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != failuresVersion {
		return nil, nil // damaged or foreign: a cache, so every file is tried again
	}
	out := make(map[string]memo, len(f.Failed))
	for _, m := range f.Failed {
		out[m.Path] = m
	}
	return out, nil
}

// saveFailures replaces the failures remembered beside the index at path by ms.
func saveFailures(path string, ms []memo) error {
	name := FailuresPath(path)
	if len(ms) == 0 {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.MarshalIndent(failuresFile{Version: failuresVersion, Failed: ms}, "", "  ")
	if err != nil {
		return err
	}
	err = atomicfile.WriteFile(name, true, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
