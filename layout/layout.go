// Package layout places vectors on a plane for the page's map: the first two principal
// components of the rows, so that rows near each other in the space tend to be near on the map.
package layout

import (
	"cmp"
	"math"
	"slices"
)

// PCA returns, for each of the n rows of data (row-major, dim floats each), its coordinates
// along the two directions of largest variance, as x0, y0, x1, y1, ..., scaled into [0, 1] (the
// same scale on both axes, so that distances keep their proportions). Fewer than two rows, or
// rows that do not vary, give the centre.
func PCA(data []float32, dim int) []float64 {
	return normalise(project(data, dim))
}

// Spread is PCA with each coordinate averaged with its rank on its axis: the order along each
// axis is kept, but a few outlying photos no longer squeeze all the others into a corner, and
// thumbnails overlap less.
func Spread(data []float32, dim int) []float64 {
	xy := PCA(data, dim)
	n := len(xy) / 2
	if n < 2 {
		return xy
	}
	for c := 0; c < 2; c++ {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(xy[2*a+c], xy[2*b+c]) })
		ranks := make([]float64, n)
		for lo := 0; lo < n; {
			hi := lo + 1
			for hi < n && xy[2*idx[hi]+c] == xy[2*idx[lo]+c] {
				hi++
			}
			for _, i := range idx[lo:hi] { // equal coordinates share their mean rank
				ranks[i] = float64(lo+hi-1) / 2 / float64(n-1)
			}
			lo = hi
		}
		for i, r := range ranks {
			xy[2*i+c] = (xy[2*i+c] + r) / 2
		}
	}
	return xy
}

// Separate places squares of side size at the points xy (x0, y0, x1, y1, ..., in [0, 1]) inside
// the unit square, overlapping little and in their places relative to each other: the points are
// scaled into [size/2, 1 - size/2], then, in rounds, every pair of overlapping squares is pushed
// apart along the line between their centres, each by half its smaller overlap (identical
// points: the lower index goes left). Points whose squares do not overlap are only scaled. The
// map draws a thumbnail of that size at each point; overlapping thumbnails hide each other.
func Separate(xy []float64, size float64) []float64 {
	const rounds = 200
	n := len(xy) / 2
	lo, hi := size/2, 1-size/2
	if lo > hi { // squares larger than the plane: all at the centre
		lo, hi = 0.5, 0.5
	}
	out := make([]float64, len(xy))
	for i, v := range xy {
		out[i] = lo + v*(hi-lo)
	}
	for range rounds {
		moved := false
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				dx, dy := out[2*j]-out[2*i], out[2*j+1]-out[2*i+1]
				o := min(size-math.Abs(dx), size-math.Abs(dy))
				if o <= 1e-9 {
					continue
				}
				moved = true
				dist := math.Hypot(dx, dy)
				if dist == 0 {
					dx, dy, dist = 1, 0, 1
				}
				px, py := dx/dist*o/2, dy/dist*o/2
				out[2*i], out[2*i+1] = clamp(out[2*i]-px, lo, hi), clamp(out[2*i+1]-py, lo, hi)
				out[2*j], out[2*j+1] = clamp(out[2*j]+px, lo, hi), clamp(out[2*j+1]+py, lo, hi)
			}
		}
		if !moved {
			break
		}
	}
	return out
}

func clamp(v, lo, hi float64) float64 { return max(lo, min(hi, v)) }

// project returns the rows' coordinates on their two principal components.
func project(data []float32, dim int) []float64 {
	n := len(data) / dim
	mean := make([]float64, dim)
	for r := 0; r < n; r++ {
		for j, v := range data[r*dim : (r+1)*dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(max(n, 1))
	}
	x := make([]float64, n*dim) // centred copy: n is at most a few thousand here
	for r := 0; r < n; r++ {
		for j, v := range data[r*dim : (r+1)*dim] {
			x[r*dim+j] = float64(v) - mean[j]
		}
	}
	var comps [][]float64
	for c := 0; c < 2; c++ {
		comps = append(comps, topComponent(x, n, dim, comps))
	}
	xy := make([]float64, 2*n)
	for r := 0; r < n; r++ {
		for c, v := range comps {
			xy[2*r+c] = dot(x[r*dim:(r+1)*dim], v)
		}
	}
	return xy
}

// topComponent finds the direction of largest variance of the centred rows x orthogonal to the
// directions in done, by power iteration on XᵀX (never formed: two products with X per step).
func topComponent(x []float64, n, dim int, done [][]float64) []float64 {
	v := make([]float64, dim)
	for j := range v {
		v[j] = 1 / math.Sqrt(float64(dim)) * (1 + 0.01*float64(j%7)) // fixed start: the same map every time
	}
	proj := make([]float64, n)
	for iter := 0; iter < 100; iter++ {
		for _, u := range done {
			axpy(v, u, -dot(v, u))
		}
		for r := 0; r < n; r++ {
			proj[r] = dot(x[r*dim:(r+1)*dim], v)
		}
		next := make([]float64, dim)
		for r := 0; r < n; r++ {
			axpy(next, x[r*dim:(r+1)*dim], proj[r])
		}
		for _, u := range done {
			axpy(next, u, -dot(next, u))
		}
		norm := math.Sqrt(dot(next, next))
		if norm == 0 {
			return next // no variance left
		}
		for j := range next {
			next[j] /= norm
		}
		diff := 0.0
		for j := range next {
			diff += math.Abs(next[j] - v[j])
		}
		v = next
		if diff < 1e-9 {
			break
		}
	}
	return v
}

func normalise(xy []float64) []float64 {
	if len(xy) == 0 {
		return xy
	}
	lo := [2]float64{math.Inf(1), math.Inf(1)}
	hi := [2]float64{math.Inf(-1), math.Inf(-1)}
	for i, v := range xy {
		lo[i%2], hi[i%2] = min(lo[i%2], v), max(hi[i%2], v)
	}
	span := max(hi[0]-lo[0], hi[1]-lo[1])
	for i := range xy {
		if span == 0 {
			xy[i] = 0.5
			continue
		}
		// Centre the shorter axis.
		c := i % 2
		xy[i] = (xy[i]-lo[c])/span + (1-(hi[c]-lo[c])/span)/2
	}
	return xy
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func axpy(y, x []float64, a float64) {
	for i := range y {
		y[i] += a * x[i]
	}
}
