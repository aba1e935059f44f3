package layout

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestPCAIsometryOfAPlane puts points on a plane tilted inside 12 dimensions: their projection
// on the first two principal components is the plane itself, so every distance on the map must
// be the distance in the space times one common scale.
func TestPCAIsometryOfAPlane(t *testing.T) {
	const n, dim = 40, 12
	rng := rand.New(rand.NewPCG(3, 4))
	u, v := make([]float64, dim), make([]float64, dim)
	for j := range u {
		u[j], v[j] = rng.NormFloat64(), rng.NormFloat64()
	}
	orthonormalise(u, v)
	data := make([]float32, n*dim)
	for r := 0; r < n; r++ {
		a, b := rng.NormFloat64()*3, rng.NormFloat64() // more spread along u than v
		for j := range dim {
			data[r*dim+j] = float32(5 + a*u[j] + b*v[j])
		}
	}
	xy := PCA(data, dim)
	dist := func(i, k int) (space, plane float64) {
		for j := range dim {
			d := float64(data[i*dim+j] - data[k*dim+j])
			space += d * d
		}
		dx, dy := xy[2*i]-xy[2*k], xy[2*i+1]-xy[2*k+1]
		return math.Sqrt(space), math.Sqrt(dx*dx + dy*dy)
	}
	s0, p0 := dist(0, 1)
	scale := p0 / s0
	for i := 0; i < n; i++ {
		for k := i + 1; k < n; k++ {
			s, p := dist(i, k)
			if math.Abs(p-s*scale) > 1e-4 {
				t.Fatalf("rows %d, %d: %v apart in space, %v on the map (scale %v)", i, k, s, p, scale)
			}
		}
	}
	for i, c := range xy {
		if c < 0 || c > 1 {
			t.Fatalf("coordinate %d = %v outside [0, 1]", i, c)
		}
	}
}

func TestSpreadKeepsOrder(t *testing.T) {
	// On a line, with one far outlier: the order along x survives, and the crowded points are
	// no longer squeezed together.
	xs := []float32{0, 1, 2, 3, 4, 1000}
	data := make([]float32, 0, len(xs)*2)
	for _, x := range xs {
		data = append(data, x, 0)
	}
	pca, spread := PCA(data, 2), Spread(data, 2)
	flip := pca[2*5] < pca[0] // a principal direction's sign is arbitrary
	for i := 1; i < len(xs); i++ {
		if (spread[2*i] > spread[2*i-2]) == flip {
			t.Errorf("order lost at %d: %v", i, spread)
		}
	}
	if math.Abs(spread[2*4]-spread[0]) < 5*math.Abs(pca[2*4]-pca[0]) {
		t.Errorf("points 0..4 span %v after spreading, %v before", spread[2*4]-spread[0], pca[2*4]-pca[0])
	}
}

func TestDegenerate(t *testing.T) {
	for _, data := range [][]float32{{}, {1, 2, 3}, {1, 2, 3, 1, 2, 3}} {
		for i, c := range Spread(data, 3) {
			if c != 0.5 {
				t.Errorf("%v: coordinate %d = %v, want the centre", data, i, c)
			}
		}
	}
}

func orthonormalise(u, v []float64) {
	norm := func(x []float64) {
		s := math.Sqrt(dot(x, x))
		for j := range x {
			x[j] /= s
		}
	}
	norm(u)
	axpy(v, u, -dot(u, v))
	norm(v)
}

// overlap is the total area by which squares of side size centred on the points overlap, pair
// by pair.
func overlap(xy []float64, size float64) float64 {
	var a float64
	for i := 0; i < len(xy)/2; i++ {
		for j := i + 1; j < len(xy)/2; j++ {
			ox, oy := size-math.Abs(xy[2*i]-xy[2*j]), size-math.Abs(xy[2*i+1]-xy[2*j+1])
			if ox > 0 && oy > 0 {
				a += ox * oy
			}
		}
	}
	return a
}

// TestSeparate crowds 150 points into a small patch, as the map's principal components put a
// collection's many similar photos: Separate removes nearly all the overlap of their squares,
// keeps them inside the unit square and in their order along each axis; points that do not
// overlap stay where they are.
func TestSeparate(t *testing.T) {
	const n, size = 150, 0.05 // the squares cover a third of the unit square
	rng := rand.New(rand.NewPCG(5, 6))
	xy := make([]float64, 2*n)
	for i := range xy {
		xy[i] = 0.5 + 0.08*rng.NormFloat64()
	}
	before := overlap(xy, size)
	out := Separate(xy, size)
	after := overlap(out, size)
	if after > before/50 {
		t.Errorf("overlap %.4f before, %.4f after: want it cut 50-fold", before, after)
	}
	for i := range out {
		if out[i] < size/2-1e-12 || out[i] > 1-size/2+1e-12 {
			t.Fatalf("coordinate %d = %v: the square leaves the unit square", i, out[i])
		}
	}
	// The layout survives: of the pairs of points two squares or more apart on an axis, nearly
	// all keep their order on it (neighbours closer than that may trade places).
	kept, pairs := 0, 0
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			for c := 0; c < 2; c++ {
				if d := xy[2*j+c] - xy[2*i+c]; math.Abs(d) >= 2*size {
					pairs++
					if (out[2*j+c]-out[2*i+c] > 0) == (d > 0) {
						kept++
					}
				}
			}
		}
	}
	if float64(kept) < 0.95*float64(pairs) {
		t.Errorf("%d of %d pairs kept their order: the layout is lost", kept, pairs)
	}
	t.Logf("overlap %.4f -> %.4f; %d of %d pairs in order", before, after, kept, pairs)

	// Squares that do not overlap once in the plane are only scaled into it.
	apart := []float64{0, 0.1, 0.5, 1, 0.8, 0.5}
	want := []float64{0.1, 0.18, 0.5, 0.9, 0.74, 0.5}
	got := Separate(apart, 0.2)
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("squares that do not overlap: %v -> %v, want %v", apart, got, want)
		}
	}
}
