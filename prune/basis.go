// Package prune answers exact nearest-neighbour queries without reading every row. A PCA basis
// (the mean and the top principal directions of the rows) gives every row a short signature: its
// coordinates in the basis and the norm of its residual, the part the basis does not capture.
// For a query q and a row x, the distance between their signatures is a lower bound of |x − q|²
// (the coordinates are an orthogonal projection; the residuals live in the orthogonal
// complement, where the norms' difference bounds their distance). The search scans the small
// signatures, visits rows in increasing bound, computes exact distances with the kernel package
// and stops when the next bound exceeds the k-th exact distance found: its answer is the full
// scan's answer, by construction and with float32 rounding accounted for (see margin).
package prune

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"

	"gonum.org/v1/gonum/mat"

	"simsearch/internal/parallel"
)

// Basis is a mean and Rank orthonormal directions in a space of Dim floats.
type Basis struct {
	Dim, Rank  int
	Mean       []float32 // Dim floats
	Components []float32 // Rank rows of Dim floats, orthonormal up to float32 rounding

	// ginv is the inverse Gram matrix of the components (Rank × Rank): the float32 components
	// are not exactly orthonormal, and the residual norm must be measured against the exact
	// orthogonal projector onto their span.
	ginv []float64
	// eta is the Frobenius norm of Gram − I: how far the stored components are from orthonormal.
	eta float64
}

// DefaultRank is the number of directions convert keeps: with the residual norm, a signature is
// 32 floats (128 bytes per row, 2.5% of a 1280-float row), one SIMD-friendly row for the kernel.
const DefaultRank = 31

const (
	fitSample  = 4096 // rows the directions are fitted on, evenly spaced through the data
	oversample = 10   // extra directions carried through the subspace iteration
	iterations = 4    // power iterations: enough to separate the leading directions of embeddings
	maxEta     = 1e-4 // a basis further from orthonormal than this is damaged, not rounded
)

// Fit computes the mean of all rows and the rank leading principal directions of an evenly
// spaced sample of them, by randomized subspace iteration from a fixed seed: the same data gives
// the same basis, bit for bit. rank is capped at dim.
func Fit(data []float32, dim, rank int) (*Basis, error) {
	if dim <= 0 || len(data)%dim != 0 || len(data) == 0 {
		return nil, fmt.Errorf("prune: data of %d floats is not a non-empty set of rows of %d", len(data), dim)
	}
	s := NewSampler(len(data)/dim, dim)
	s.Add(data)
	return s.Fit(rank)
}

// Sampler gathers what Fit needs in one pass over rows that arrive in pieces (a writer
// streaming shards): the sum of all rows, for the mean, and the rows Fit samples. Fit on a
// Sampler fed all rows in order equals Fit on the whole matrix.
type Sampler struct {
	n, dim, seen int
	sum          []float64
	sample       []float32 // the rows taken so far, row-major
}

// NewSampler prepares for n rows of dim floats.
func NewSampler(n, dim int) *Sampler {
	return &Sampler{n: n, dim: dim, sum: make([]float64, dim)}
}

// Add takes the next rows, in order.
func (s *Sampler) Add(rows []float32) {
	m := min(s.n, fitSample)
	for r := 0; r*s.dim < len(rows); r++ {
		row := rows[r*s.dim : (r+1)*s.dim]
		for j, v := range row {
			s.sum[j] += float64(v)
		}
		// Sample i is row i*n/m; the next one due is sample len(sample).
		if i := len(s.sample) / s.dim; i < m && i*s.n/m == s.seen {
			s.sample = append(s.sample, row...)
		}
		s.seen++
	}
}

// Fit fits a basis of rank directions (capped at dim) to the rows added; it needs all n.
func (s *Sampler) Fit(rank int) (*Basis, error) {
	switch {
	case s.seen != s.n || s.n == 0:
		return nil, fmt.Errorf("prune: %d rows added of %d", s.seen, s.n)
	case rank <= 0:
		return nil, fmt.Errorf("prune: rank %d: want at least 1", rank)
	}
	dim := s.dim
	rank = min(rank, dim)
	mean := make([]float32, dim)
	for j := range mean {
		mean[j] = float32(s.sum[j] / float64(s.n))
	}
	ns := len(s.sample) / dim
	a := mat.NewDense(ns, dim, nil)
	for i := range ns {
		for j := range dim {
			a.Set(i, j, float64(s.sample[i*dim+j])-float64(mean[j]))
		}
	}
	l := min(rank+oversample, dim)
	rng := rand.New(rand.NewPCG(0x5349_4d53, 0x5043_4131)) // fixed: Fit is deterministic
	z := mat.NewDense(dim, l, nil)
	for i := range dim {
		for j := range l {
			z.Set(i, j, rng.NormFloat64())
		}
	}
	orthonormalize(z, rng)
	y := mat.NewDense(ns, l, nil)
	for range iterations {
		y.Mul(a, z)
		z.Mul(a.T(), y)
		orthonormalize(z, rng)
	}
	// Rayleigh–Ritz: the principal directions within span(z) are the eigenvectors of
	// (a z)ᵀ(a z), a small l × l problem.
	y.Mul(a, z)
	var g mat.SymDense
	g.SymOuterK(1, y.T())
	var es mat.EigenSym
	if !es.Factorize(&g, true) {
		return nil, errors.New("prune: the eigen-decomposition of the sample did not converge")
	}
	var v mat.Dense
	es.VectorsTo(&v) // columns by increasing eigenvalue
	var c mat.Dense
	c.Mul(z, v.Slice(0, l, l-rank, l))
	// Leading direction first; each with a fixed sign (its largest entry positive), so that the
	// basis does not depend on the eigen-solver's sign choices.
	comps := make([]float32, rank*dim)
	for i := range rank {
		src := rank - 1 - i // c's columns go by increasing eigenvalue
		big := 0.0
		for j := range dim {
			if x := c.At(j, src); math.Abs(x) > math.Abs(big) {
				big = x
			}
		}
		sign := 1.0
		if big < 0 {
			sign = -1
		}
		for j := range dim {
			comps[i*dim+j] = float32(sign * c.At(j, src))
		}
	}
	return NewBasis(dim, rank, mean, comps)
}

// orthonormalize makes the columns of z orthonormal by modified Gram–Schmidt, twice (once is
// not enough in floating point). A column that vanishes (the data has fewer directions than z
// has columns: all-equal rows, say) is replaced by a random one, so the result always spans
// len(columns) dimensions.
func orthonormalize(z *mat.Dense, rng *rand.Rand) {
	rows, cols := z.Dims()
	for j := 0; j < cols; j++ {
		for attempt := 0; ; attempt++ {
			before := colNorm(z, j)
			for range 2 {
				for p := range j {
					dot := 0.0
					for i := range rows {
						dot += z.At(i, p) * z.At(i, j)
					}
					for i := range rows {
						z.Set(i, j, z.At(i, j)-dot*z.At(i, p))
					}
				}
			}
			nrm := colNorm(z, j)
			if nrm > 1e-6*before && nrm > 0 {
				for i := range rows {
					z.Set(i, j, z.At(i, j)/nrm)
				}
				break
			}
			for i := range rows {
				z.Set(i, j, rng.NormFloat64())
			}
		}
	}
}

func colNorm(z *mat.Dense, j int) float64 {
	rows, _ := z.Dims()
	s := 0.0
	for i := range rows {
		s += z.At(i, j) * z.At(i, j)
	}
	return math.Sqrt(s)
}

// NewBasis checks a stored basis (finite, orthonormal up to rounding) and prepares it for
// projecting. It keeps mean and components; they may alias a mapped file.
func NewBasis(dim, rank int, mean, components []float32) (*Basis, error) {
	switch {
	case dim <= 0 || rank <= 0 || rank > dim:
		return nil, fmt.Errorf("rank %d and dim %d: want 1 <= rank <= dim", rank, dim)
	case len(mean) != dim || len(components) != rank*dim:
		return nil, fmt.Errorf("mean of %d floats and components of %d: want %d and %d × %d", len(mean), len(components), dim, rank, dim)
	}
	for i, v := range mean {
		if !finite(v) {
			return nil, fmt.Errorf("mean component %d is %v", i, v)
		}
	}
	for i, v := range components {
		if !finite(v) {
			return nil, fmt.Errorf("direction %d, component %d is %v", i/dim, i%dim, v)
		}
	}
	gram := mat.NewDense(rank, rank, nil)
	eta := 0.0
	for a := range rank {
		for b := range rank {
			dot := 0.0
			ca, cb := components[a*dim:(a+1)*dim], components[b*dim:(b+1)*dim]
			for j := range dim {
				dot += float64(ca[j]) * float64(cb[j])
			}
			gram.Set(a, b, dot)
			e := dot
			if a == b {
				e--
			}
			eta += e * e
		}
	}
	eta = math.Sqrt(eta)
	if eta > maxEta {
		return nil, fmt.Errorf("the directions are not orthonormal (|Gram − I| = %.3g)", eta)
	}
	var inv mat.Dense
	if err := inv.Inverse(gram); err != nil {
		return nil, fmt.Errorf("the directions' Gram matrix: %w", err)
	}
	return &Basis{Dim: dim, Rank: rank, Mean: mean, Components: components, ginv: inv.RawMatrix().Data, eta: eta}, nil
}

// Width is the length of a signature: Rank coordinates and the residual norm.
func (b *Basis) Width() int { return b.Rank + 1 }

// Project stores x's signature in out (Width floats): its coordinates along the directions, then
// the norm of its residual. It returns |x − mean|. The arithmetic is float64; only the stored
// results are rounded, which margin accounts for.
func (b *Basis) Project(x, out []float32) float64 {
	v := make([]float64, b.Dim)
	p := make([]float64, b.Rank)
	return b.project(x, out, v, p)
}

// project is Project with caller-provided scratch: v (Dim floats) and p (Rank floats).
func (b *Basis) project(x, out []float32, v, p []float64) float64 {
	dim := b.Dim
	norm2 := 0.0
	for j := range dim {
		v[j] = float64(x[j]) - float64(b.Mean[j]) // exact: both are float32
		norm2 += v[j] * v[j]
	}
	for i := range b.Rank {
		c := b.Components[i*dim : (i+1)*dim : (i+1)*dim]
		var s0, s1, s2, s3 float64
		j := 0
		for ; j+4 <= dim; j += 4 {
			s0 += float64(c[j]) * v[j]
			s1 += float64(c[j+1]) * v[j+1]
			s2 += float64(c[j+2]) * v[j+2]
			s3 += float64(c[j+3]) * v[j+3]
		}
		for ; j < dim; j++ {
			s0 += float64(c[j]) * v[j]
		}
		p[i] = (s0 + s1) + (s2 + s3)
		out[i] = float32(p[i])
	}
	out[b.Rank] = b.residual(p, norm2)
	return math.Sqrt(norm2)
}

// residual is the norm of v's residual, rounded to float32, from its coordinates p and |v|²:
// |v|² − pᵀG⁻¹p is the squared distance from v to the span of the directions.
func (b *Basis) residual(p []float64, norm2 float64) float32 {
	in := 0.0
	for a := range b.Rank {
		row := b.ginv[a*b.Rank : (a+1)*b.Rank]
		s := 0.0
		for c, g := range row {
			s += g * p[c]
		}
		in += p[a] * s
	}
	return float32(math.Sqrt(max(0, norm2-in)))
}

// project4 is project for four consecutive rows at once (x and out hold four rows each; v and p
// are scratch for four): each component is read once for the four, which keeps more sums in
// flight. Every row's arithmetic is project's, in the same order, so the results are the same bits.
func (b *Basis) project4(x, out []float32, v, p []float64) float64 {
	dim, w := b.Dim, b.Width()
	v0, v1, v2, v3 := v[:dim:dim], v[dim:2*dim:2*dim], v[2*dim:3*dim:3*dim], v[3*dim:4*dim:4*dim]
	var norm2 [4]float64
	for r, vr := range [4][]float64{v0, v1, v2, v3} {
		xr := x[r*dim : (r+1)*dim : (r+1)*dim]
		n := 0.0
		for j := range dim {
			vr[j] = float64(xr[j]) - float64(b.Mean[j]) // exact: both are float32
			n += vr[j] * vr[j]
		}
		norm2[r] = n
	}
	for i := range b.Rank {
		c := b.Components[i*dim : (i+1)*dim : (i+1)*dim]
		var a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3 float64
		j := 0
		for ; j+4 <= dim; j += 4 {
			k0, k1, k2, k3 := float64(c[j]), float64(c[j+1]), float64(c[j+2]), float64(c[j+3])
			a0 += k0 * v0[j]
			a1 += k1 * v0[j+1]
			a2 += k2 * v0[j+2]
			a3 += k3 * v0[j+3]
			b0 += k0 * v1[j]
			b1 += k1 * v1[j+1]
			b2 += k2 * v1[j+2]
			b3 += k3 * v1[j+3]
			c0 += k0 * v2[j]
			c1 += k1 * v2[j+1]
			c2 += k2 * v2[j+2]
			c3 += k3 * v2[j+3]
			d0 += k0 * v3[j]
			d1 += k1 * v3[j+1]
			d2 += k2 * v3[j+2]
			d3 += k3 * v3[j+3]
		}
		for ; j < dim; j++ {
			k0 := float64(c[j])
			a0 += k0 * v0[j]
			b0 += k0 * v1[j]
			c0 += k0 * v2[j]
			d0 += k0 * v3[j]
		}
		for r, s := range [4]float64{(a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3), (c0 + c1) + (c2 + c3), (d0 + d1) + (d2 + d3)} {
			p[r*b.Rank+i] = s
			out[r*w+i] = float32(s)
		}
	}
	m := 0.0
	for r := range 4 {
		out[r*w+b.Rank] = b.residual(p[r*b.Rank:(r+1)*b.Rank], norm2[r])
		m = max(m, math.Sqrt(norm2[r]))
	}
	return m
}

// ProjectRows stores the signature of every row of data (rows of Dim floats) in out (Width
// floats per row), on every core, and returns the largest |x − mean|.
func (b *Basis) ProjectRows(data, out []float32) float64 {
	n := len(data) / b.Dim
	w := b.Width()
	workers := max(1, min(runtime.GOMAXPROCS(0), n/256))
	norms := make([]float64, workers)
	parallel.Ranges(n, workers, func(k, lo, hi int) {
		v, p := make([]float64, 4*b.Dim), make([]float64, 4*b.Rank)
		r := lo
		for ; r+4 <= hi; r += 4 {
			norms[k] = max(norms[k], b.project4(data[r*b.Dim:(r+4)*b.Dim], out[r*w:(r+4)*w], v, p))
		}
		for ; r < hi; r++ {
			norms[k] = max(norms[k], b.project(data[r*b.Dim:(r+1)*b.Dim], out[r*w:(r+1)*w], v, p))
		}
	})
	m := 0.0
	for _, x := range norms {
		m = max(m, x)
	}
	return m
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
