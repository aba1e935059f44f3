package index

import (
	"fmt"
	"math"
)

// MaxSquaredNorm bounds the squared Euclidean norm of the vectors an index holds and of the
// queries it answers. Below it no distance can overflow float32: for two such vectors,
// |a−b|² ≤ (|a|+|b|)² < 4·MaxSquaredNorm = math.MaxFloat32. Without the bound, large but finite
// vectors made the kernel's squared distance +Inf and the results meaningless.
const MaxSquaredNorm = math.MaxFloat32 / 4

// NormError reports a finite vector whose squared norm is MaxSquaredNorm or more.
type NormError struct {
	Row         int // within the rows checked
	SquaredNorm float64
}

func (e *NormError) Error() string {
	return fmt.Sprintf("vector %d: squared norm %.4g is too large (at most %.4g, so that no distance overflows float32)", e.Row, e.SquaredNorm, MaxSquaredNorm)
}

// CheckVectors checks row-major vectors of dim floats as the index writer does: every value
// finite (else a *NonFiniteError) and every squared norm below MaxSquaredNorm (else a
// *NormError). Queries go through it too, so an index never answers with an overflowed distance.
func CheckVectors(v []float32, dim int) error {
	for r := 0; r*dim < len(v); r++ {
		if err := checkRow(v[r*dim:min(len(v), (r+1)*dim)], r); err != nil {
			return err
		}
	}
	return nil
}

// checkRow checks one vector; the norm is summed in float64, where it cannot overflow.
func checkRow(row []float32, r int) error {
	var s float64
	for c, x := range row {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return &NonFiniteError{Row: r, Col: c, Value: x}
		}
		s += float64(x) * float64(x)
	}
	if s >= MaxSquaredNorm {
		return &NormError{Row: r, SquaredNorm: s}
	}
	return nil
}
