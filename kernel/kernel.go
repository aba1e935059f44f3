// Package kernel computes squared Euclidean (L2) distances between float32 vectors.
//
// There are three implementations of one algorithm: AVX-512 and AVX2+FMA in assembly generated
// by asm/gen.go, and portable Go. Each also has a packed variant for short rows stored in groups
// (L2SquaredPacked): AVX2 assembly and portable Go. Which one runs is decided once, at the first distance computed:
// among the assembly kernels the CPU supports, the one that is fastest on a small in-cache block,
// timed then (see choose.go), since having AVX-512 does not mean running it faster. Reason says
// how the choice was made. SIMSEARCH_KERNEL=generic|avx2|avx512 forces one (Check reports a
// forced kernel the CPU lacks), and Use switches kernels from tests and benchmarks.
package kernel

import (
	"fmt"
	"os"
	"strings"
	"sync"
)

// blockFunc stores to out[r] the squared L2 distance from q to row r of len(out) rows of
// len(q) floats stored contiguously in rows.
type blockFunc func(q, rows, out []float32)

type impl struct {
	name   string
	block  blockFunc
	packed packedFunc
}

// impls lists the implementations this CPU can run, slowest first; the generic one is always
// first, then what the per-architecture file offers.
var impls = append([]impl{{"generic", blockGeneric, packedGeneric}}, archImpls()...)

// known lists every kernel the package implements, on any CPU.
var known = []string{"generic", "avx2", "avx512"}

var (
	// chosen runs choose at the first use unless Use has chosen already.
	chosen   sync.Once
	current  impl
	reason   string
	checkErr error
)

// EnvVar names the environment variable that forces a kernel.
const EnvVar = "SIMSEARCH_KERNEL"

func init() {
	if name := os.Getenv(EnvVar); name != "" {
		if err := Use(name); err != nil {
			checkErr = fmt.Errorf("%s=%s: %w", EnvVar, name, err)
		} else {
			reason = "forced by " + EnvVar
		}
	}
}

// active returns the kernel in use, choosing it first if nothing has yet.
func active() *impl {
	chosen.Do(choose)
	return &current
}

// Check reports whether the kernel forced through SIMSEARCH_KERNEL could be honoured. Programs
// call it at start-up so that a forced kernel is never silently replaced.
func Check() error { return checkErr }

// Name returns the kernel in use (choosing it if nothing has yet).
func Name() string { return active().name }

// Reason says how the kernel in use was chosen: forced, the only candidate, or measured (with
// the figures).
func Reason() string {
	active()
	return reason
}

// Known returns every kernel the package implements, whether or not this CPU supports it.
func Known() []string { return append([]string(nil), known...) }

// Available returns the kernels this CPU supports, slowest first.
func Available() []string {
	names := make([]string, len(impls))
	for i, k := range impls {
		names[i] = k.name
	}
	return names
}

// Use selects the named kernel. It is meant for start-up, tests and benchmarks: it must not run
// concurrently with distance computations.
func Use(name string) error {
	for _, k := range impls {
		if k.name == name {
			chosen.Do(func() {}) // no measurement after an explicit choice
			current, reason = k, "selected by kernel.Use"
			return nil
		}
	}
	for _, k := range known {
		if k == name {
			return fmt.Errorf("kernel %q is not supported by this CPU (available: %s)", name, strings.Join(Available(), ", "))
		}
	}
	return fmt.Errorf("unknown kernel %q (known: %s)", name, strings.Join(known, ", "))
}

// L2Squared returns Σᵢ (a[i] − b[i])². The vectors must have the same length.
func L2Squared(a, b []float32) float32 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("kernel: vectors of length %d and %d", len(a), len(b)))
	}
	var out [1]float32
	active().block(a, b, out[:])
	return out[0]
}

// L2SquaredBlock stores to out[r] the squared distance from q to row r of rows, which holds
// len(out) rows of len(q) floats, row-major. One call covers the whole block, so there is no
// per-row call overhead.
func L2SquaredBlock(q, rows, out []float32) {
	if len(q) == 0 || len(rows) != len(out)*len(q) {
		panic(fmt.Sprintf("kernel: block of %d floats is not %d rows of %d", len(rows), len(out), len(q)))
	}
	active().block(q, rows, out)
}

// tileBytes bounds the rows one query visits before the next query does, so that a tile read
// from memory for the first query is still in cache (L2) for the others.
const tileBytes = 128 << 10

// L2SquaredMulti computes the distances from several queries to the same block of rows, reading
// the rows from memory once. queries holds the queries row-major, each of dim floats; rows holds
// n = len(rows)/dim rows; out[j*n + r] receives the squared distance from query j to row r.
func L2SquaredMulti(queries, rows []float32, dim int, out []float32) {
	if dim <= 0 || len(queries)%dim != 0 || len(rows)%dim != 0 {
		panic(fmt.Sprintf("kernel: %d query floats and %d row floats are not multiples of dim %d", len(queries), len(rows), dim))
	}
	nq, n := len(queries)/dim, len(rows)/dim
	if len(out) != nq*n {
		panic(fmt.Sprintf("kernel: out has %d floats, want %d queries × %d rows", len(out), nq, n))
	}
	tile := max(1, tileBytes/(4*dim))
	block := active().block
	for lo := 0; lo < n; lo += tile {
		hi := min(n, lo+tile)
		for j := 0; j < nq; j++ {
			block(queries[j*dim:(j+1)*dim], rows[lo*dim:hi*dim], out[j*n+lo:j*n+hi])
		}
	}
}
