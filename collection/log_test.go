package collection

import (
	"fmt"
	"testing"
)

// TestAddRecordWidth checks the rules FORMAT.md states for w, the signature width of an add
// record with signatures: 0, or rank+1 with 1 ≤ rank ≤ dim, whether or not the reader reads the
// base's PCA section (width 0 here); and, when it does, 0 or that section's width. A record of
// another width is refused; one it ignores the signatures of keeps its rows.
func TestAddRecordWidth(t *testing.T) {
	const dim = 6
	rows := []Row{{ID: "a", Vector: make([]float32, dim)}, {ID: "b", Vector: make([]float32, dim)}}
	for _, c := range []struct {
		width, sigWidth int
		ok, stored      bool // decoded; with the signatures taken
	}{
		{0, 0, true, false},
		{2, 0, true, false},
		{dim + 1, 0, true, false},
		{1, 0, false, false},
		{dim + 2, 0, false, false},
		{0, 4, true, false},
		{4, 4, true, true},
		{3, 4, false, false},
		{5, 4, false, false},
		{1, 4, false, false},
		{dim + 2, dim + 2, false, false},
	} {
		t.Run(fmt.Sprintf("w%d/section%d", c.width, c.sigWidth), func(t *testing.T) {
			body, _, _ := addBody(rows, make([]float32, len(rows)*c.width), c.width, 1)
			o, err := decodeOp(body, 100, LogVersion, dim, c.sigWidth)
			if (err == nil) != c.ok {
				t.Fatalf("decoded: %v, want ok %v", err, c.ok)
			}
			if err != nil {
				return
			}
			if len(o.rows) != len(rows) {
				t.Fatalf("%d rows, want %d", len(o.rows), len(rows))
			}
			for _, r := range o.rows {
				if (r.sig != 0) != c.stored {
					t.Errorf("row %q: signature at %d, want taken %v", r.ID, r.sig, c.stored)
				}
			}
		})
	}
}
