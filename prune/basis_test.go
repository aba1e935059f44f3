package prune

import (
	"math/rand/v2"
	"testing"
)

// TestProjectRowsEqualsProject checks that the four-row path of ProjectRows gives every row the
// same bits as projecting it alone, including the rows left over after the groups of four.
func TestProjectRowsEqualsProject(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct{ n, dim, rank int }{{1, 3, 1}, {7, 5, 2}, {1031, 67, 9}, {600, 1280, 31}} {
		data := make([]float32, tc.n*tc.dim)
		for i := range data {
			data[i] = float32(rng.NormFloat64()) * float32(1+i%tc.dim)
		}
		b, err := Fit(data, tc.dim, tc.rank)
		if err != nil {
			t.Fatal(err)
		}
		w := b.Width()
		rows := make([]float32, tc.n*w)
		maxNorm := b.ProjectRows(data, rows)
		one := make([]float32, w)
		want := 0.0
		for r := range tc.n {
			want = max(want, b.Project(data[r*tc.dim:(r+1)*tc.dim], one))
			for i, x := range one {
				if rows[r*w+i] != x {
					t.Fatalf("%+v: row %d value %d: ProjectRows %v, Project %v", tc, r, i, rows[r*w+i], x)
				}
			}
		}
		if maxNorm != want {
			t.Errorf("%+v: ProjectRows max norm %v, Project's %v", tc, maxNorm, want)
		}
	}
}
