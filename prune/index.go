package prune

import (
	"fmt"

	"simsearch/index"
)

// FromIndex returns the PCA section of an open index, or nil when it has none or one of a
// version this build does not read (FORMAT.md: readers ignore those; the full scan answers). A
// section of the current version aliases the index's mapping: it is valid until the index is
// closed. A version 1 section (written before the signatures were packed) is packed into memory
// here, a copy of 4·(rank+1) bytes a row; convert again to avoid it.
func FromIndex(ix *index.Index) (*Section, error) {
	if !Readable(ix) {
		return nil, nil
	}
	data, version, _ := ix.Section(index.SectionPCA)
	s, err := decode(data, int(version), ix.Len(), ix.Dim())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ix.Path(), err)
	}
	return s, nil
}

// Readable reports whether ix has a PCA section of a version this build reads, without decoding
// it: whether the pruned search can run on it at all.
func Readable(ix *index.Index) bool {
	_, version, ok := ix.Section(index.SectionPCA)
	return ok && (version == Version || version == version1)
}

// Verify checks an index's PCA section, if it has one, against the index's rows (it reads every
// row: run it with index.Verify, not on the query path).
func Verify(ix *index.Index) error {
	s, err := FromIndex(ix)
	if err != nil || s == nil {
		return err
	}
	if err := s.Check(ix.Vectors()); err != nil {
		return fmt.Errorf("%s: %w", ix.Path(), err)
	}
	return nil
}
