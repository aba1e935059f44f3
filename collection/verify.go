package collection

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"simsearch/index"
	"simsearch/prune"
)

// LogReport describes a change log found by Verify.
type LogReport struct {
	Exists      bool  // a log for this base is there
	Stale       bool  // a log for another base is there (ignored; the next writer replaces it)
	Committed   int64 // bytes through the last commit
	Commits     uint64
	Tail        int64 // bytes after the last commit: a crashed writer's, ignored by readers
	TailRows    int   // rows added by the intact records of the tail (the next writer reuses them)
	Rows        int   // live rows, base and log
	AddedRows   int   // rows the log adds
	DeletedRows int   // base rows the log deletes or replaces
}

// Verify checks the whole collection at path: the base (index.Verify: every checksum, id and
// value; prune.Verify: its PCA section against its rows) and its change log (its header, every record's checksum up to the last commit, that
// every record applies: ids unique across base and log, deletions of present ids, finite values).
func Verify(path string) (LogReport, error) {
	var r LogReport
	ix, err := index.Open(path)
	if err != nil {
		return r, err
	}
	defer ix.Close()
	if err := ix.Verify(); err != nil {
		return r, err
	}
	if err := prune.Verify(ix); err != nil {
		return r, err
	}
	if _, err := filesSection(ix); err != nil {
		return r, err
	}
	st, err := readLogState(ix)
	if err != nil {
		return r, err
	}
	r.Exists, r.Stale, r.Committed, r.Commits = st.logExists, st.stale, st.logEnd, st.seq
	if st.logExists {
		fi, err := os.Stat(LogPath(path))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return r, err
		}
		if fi != nil {
			r.Tail = fi.Size() - st.logEnd
		}
	}
	for _, o := range st.tail {
		r.TailRows += len(o.rows)
	}
	r.AddedRows, r.DeletedRows = len(st.adds), st.deleted
	r.Rows = ix.Len() - st.deleted + len(st.adds)
	if r.Rows < 0 {
		return r, fmt.Errorf("%s: %w: more deletions than rows", LogPath(path), ErrFormat)
	}
	return r, nil
}
