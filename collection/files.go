package collection

import (
	"fmt"

	"simsearch/index"
)

// filesVersion is the layout of the base's Files section that this package reads and writes:
// one 48-byte FileState per row, in row order (FORMAT.md, "Files").
const filesVersion = 1

// filesSection returns the base's Files section, or nil when it has none (version 1 files,
// indexes converted from shards) or one of a version this package does not know.
func filesSection(ix *index.Index) ([]byte, error) {
	b, ver, ok := ix.Section(index.SectionFiles)
	if !ok || ver != filesVersion {
		return nil, nil
	}
	if want := ix.Len() * stateSize; len(b) != want {
		return nil, fmt.Errorf("%s: %w: Files section of %d bytes, want %d rows × %d", ix.Path(), index.ErrFormat, len(b), ix.Len(), stateSize)
	}
	return b, nil
}
