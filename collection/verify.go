package collection

import (
	"fmt"
	"os"

	"simsearch/index"
	"simsearch/prune"
)

// LogReport describes a change log found by Verify.
type LogReport struct {
	Exists      bool   `json:"exists"`          // a log for this base is there
	Stale       bool   `json:"stale"`           // a log for another base is there (ignored; the next writer replaces it)
	Version     int    `json:"version"`         // its format version (0: no log)
	Committed   int64  `json:"committed_bytes"` // bytes through the last commit
	Commits     uint64 `json:"commits"`
	Tail        int64  `json:"uncommitted_bytes"` // intact records after the last commit: ignored by readers
	Torn        int64  `json:"torn_bytes"`        // bytes after the intact records: an interrupted append, cut by the next writer
	Reusable    int    `json:"reusable_rows"`     // rows of uncommitted records that the next writer offers for reuse
	Rows        int    `json:"rows"`              // live rows, base and log
	AddedRows   int    `json:"added_rows"`        // rows the log adds
	DeletedRows int    `json:"deleted_rows"`      // base rows the log deletes or replaces
}

// Verify checks the whole collection at path: the base (index.Verify: every checksum, id and
// value; prune.Verify: its PCA section against its rows) and its change log (its header, every
// record's checksum, that no damaged record precedes a commit, that every committed record
// applies: ids unique across base and log, deletions of present ids, finite values; and the
// signatures the log stores for added rows, recomputed from the rows).
func Verify(path string) (LogReport, error) {
	var r LogReport
	ix, err := index.Open(path)
	if err != nil {
		return r, err
	}
	if err := ix.Verify(); err != nil {
		ix.Close()
		return r, err
	}
	if err := prune.Verify(ix); err != nil {
		ix.Close()
		return r, err
	}
	f, err := openLog(path, os.O_RDONLY)
	if err != nil {
		ix.Close()
		return r, err
	}
	defer closeFile(f)
	st, err := readLogState(ix, f, true)
	if err != nil {
		ix.Close()
		return r, err
	}
	v, err := st.view()
	if err != nil {
		ix.Close()
		return r, err
	}
	defer v.Release()
	if v.addPCA != nil {
		if err := v.addPCA.Check(v.added); err != nil {
			return r, fmt.Errorf("%s: the signatures of the rows it adds: %w", LogPath(path), err)
		}
	}
	r.Exists, r.Stale, r.Version, r.Committed, r.Commits = st.logExists, st.stale, st.version, st.logEnd, st.seq
	if st.logExists {
		r.Tail, r.Torn = st.intact-st.logEnd, st.size-st.intact
	}
	seen := map[reuseKey]bool{}
	for _, s := range st.spare {
		k := reuseKey{s.ID, s.State.Size, s.State.MtimeNS}
		if cur, ok := st.stateOf(s.ID); (!ok || cur != s.State) && !seen[k] {
			seen[k] = true
			r.Reusable++
		}
	}
	r.AddedRows, r.DeletedRows = len(st.adds), st.deleted
	r.Rows = ix.Len() - st.deleted + len(st.adds)
	if r.Rows < 0 {
		return r, fmt.Errorf("%s: %w: more deletions than rows", LogPath(path), ErrFormat)
	}
	return r, nil
}
