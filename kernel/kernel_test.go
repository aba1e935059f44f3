package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/viterin/vek/vek32"
)

// forEach runs f as a subtest per kernel the package has, with that kernel selected. Kernels this
// CPU lacks are skipped by name with the reason, so that a run on a smaller CPU says what it did
// not test. The kernel in use before is restored after.
func forEach(t *testing.T, f func(t *testing.T, name string)) {
	defer Use(Name())
	for _, name := range Known() {
		t.Run(name, func(t *testing.T) {
			if err := Use(name); err != nil {
				t.Skipf("not tested on this machine: %v", err)
			}
			f(t, name)
		})
	}
}

// forEachAvailable runs f with every kernel this CPU supports selected, in one test or benchmark
// (fuzz targets and benchmarks run their own sub-benchmarks); the kernel in use before is
// restored after.
func forEachAvailable(tb testing.TB, f func(name string)) {
	defer Use(Name())
	for _, name := range Available() {
		if err := Use(name); err != nil {
			tb.Fatal(err)
		}
		f(name)
	}
}

// ref computes Σ(a−b)² in float64.
func ref(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return s
}

// tolerance is the documented accuracy of every kernel against ref: each term carries at most
// three float32 roundings (difference, square, fused add) and the sum at most dim more, all
// relative to a sum of non-negative terms, so |kernel − ref| ≤ (dim + 3) · 2⁻²⁴ · ref. It holds
// while no term overflows or underflows float32.
func tolerance(dim int, r float64) float64 { return float64(dim+3) * 0x1p-24 * r }

func randVec(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

func TestAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	forEach(t, func(t *testing.T, name string) {
		for dim := 1; dim <= 2049; dim++ {
			// A few unaligned starts per dim; all of them for small dims.
			for off := 0; off < 16; off += max(1, min(15, dim/64)) {
				scale := []float64{1, 1e-15, 1e17}[dim%3]
				buf := randVec(rng, 2*dim+2*off, scale)
				a, b := buf[off:off+dim], buf[dim+2*off:2*dim+2*off]
				got, want := float64(L2Squared(a, b)), ref(a, b)
				if math.Abs(got-want) > tolerance(dim, want) {
					t.Fatalf("%s: dim %d offset %d scale %g: got %v, want %v (tolerance %g)", name, dim, off, scale, got, want, tolerance(dim, want))
				}
			}
		}
	})
}

// vek's AVX2 Distance is an implementation independent of this package's.
func TestAgainstVek(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	forEach(t, func(t *testing.T, name string) {
		for _, dim := range []int{1, 7, 8, 15, 16, 17, 63, 64, 65, 1280, 2049} {
			a, b := randVec(rng, dim, 1), randVec(rng, dim, 1)
			d := float64(vek32.Distance(a, b))
			got := float64(L2Squared(a, b))
			if math.Abs(got-d*d) > 2*tolerance(dim, d*d) {
				t.Errorf("%s: dim %d: got %v, vek says %v", name, dim, got, d*d)
			}
		}
	})
}

func TestIdenticalAndSpecial(t *testing.T) {
	forEach(t, func(t *testing.T, name string) {
		v := randVec(rand.New(rand.NewPCG(5, 6)), 1280, 1)
		if d := L2Squared(v, v); d != 0 {
			t.Errorf("%s: distance of a vector to itself is %v", name, d)
		}
		big := []float32{3e38, -3e38}
		if d := L2Squared(big, []float32{-3e38, 3e38}); !math.IsInf(float64(d), 1) {
			t.Errorf("%s: overflowing distance is %v, want +Inf", name, d)
		}
	})
}

func TestBlockAndMultiMatchSingle(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	forEach(t, func(t *testing.T, name string) {
		for _, dim := range []int{1, 5, 16, 33, 1280} {
			n, nq := 301, 3
			rows := randVec(rng, n*dim+1, 1)[1:] // unaligned block
			queries := randVec(rng, nq*dim, 1)
			block := make([]float32, n)
			multi := make([]float32, nq*n)
			L2SquaredMulti(queries, rows, dim, multi)
			for j := 0; j < nq; j++ {
				q := queries[j*dim : (j+1)*dim]
				L2SquaredBlock(q, rows, block)
				for r := 0; r < n; r++ {
					single := L2Squared(q, rows[r*dim:(r+1)*dim])
					if block[r] != single || multi[j*n+r] != single {
						t.Fatalf("%s dim %d query %d row %d: block %v multi %v single %v", name, dim, j, r, block[r], multi[j*n+r], single)
					}
				}
			}
		}
	})
}

func TestUse(t *testing.T) {
	defer Use(Name())
	if err := Use("sse9"); err == nil || !strings.Contains(err.Error(), `unknown kernel "sse9"`) {
		t.Errorf("Use(sse9) = %v", err)
	}
	for _, name := range []string{"generic", "avx2", "avx512"} {
		err := Use(name)
		supported := strings.Contains(" "+strings.Join(Available(), " ")+" ", " "+name+" ")
		if supported != (err == nil) {
			t.Errorf("Use(%s) = %v with available %v", name, err, Available())
		}
		if err == nil && Name() != name {
			t.Errorf("after Use(%s), Name() = %s", name, Name())
		}
		if err != nil && !strings.Contains(err.Error(), "not supported by this CPU") {
			t.Errorf("Use(%s) = %v", name, err)
		}
	}
}

// TestEnvironment runs this test binary again with SIMSEARCH_KERNEL set, as a user would, and
// checks what the package chose at start-up.
func TestEnvironment(t *testing.T) {
	if os.Getenv("SIMSEARCH_KERNEL_REPORT") != "" {
		fmt.Printf("kernel=%s check=%v reason=%s\n", Name(), Check(), Reason())
		os.Exit(0)
	}
	// Without a forced kernel the choice is measured (or the only candidate): any assembly
	// kernel the CPU has may win, so the test accepts each and checks the reason.
	chosen := `kernel=(` + strings.Join(Available(), "|") + `) `
	why := `reason=(measured at first use .*|the only assembly kernel this CPU supports|no assembly kernel for this CPU or build)$`
	for _, tc := range []struct{ env, want string }{
		{"generic", `^kernel=generic check=<nil> reason=forced by SIMSEARCH_KERNEL$`},
		{"bogus", `^` + chosen + `check=SIMSEARCH_KERNEL=bogus: unknown kernel "bogus" \(known: generic, avx2, avx512\) ` + why},
		{"", `^` + chosen + `check=<nil> ` + why},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnvironment$")
		cmd.Env = append(os.Environ(), EnvVar+"="+tc.env, "SIMSEARCH_KERNEL_REPORT=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		got := strings.TrimSpace(string(out))
		if !regexp.MustCompile(tc.want).MatchString(got) {
			t.Errorf("SIMSEARCH_KERNEL=%q: got %q, want a match of %q", tc.env, got, tc.want)
		}
	}
}

func FuzzKernels(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, off uint8) {
		// Bytes become floats in [-8, 8) with a 1/16 step, two vectors of equal length.
		n := len(data) / 2
		if n == 0 {
			return
		}
		buf := make([]float32, 2*n+int(off%16))
		a, b := buf[off%16:int(off%16)+n], buf[int(off%16)+n:]
		for i := 0; i < n; i++ {
			a[i] = float32(int8(data[i])) / 16
			b[i] = float32(int8(data[n+i])) / 16
		}
		want := ref(a, b)
		forEachAvailable(t, func(name string) {
			if got := float64(L2Squared(a, b)); math.Abs(got-want) > tolerance(n, want) {
				t.Fatalf("%s: n %d: got %v, want %v", name, n, got, want)
			}
		})
	})
}

// pack stores n rows of w floats (row-major) in the packed layout, the last group padded with
// zero rows.
func pack(rows []float32, w int) []float32 {
	n := len(rows) / w
	groups := (n + PackRows - 1) / PackRows
	out := make([]float32, groups*PackRows*w)
	for r := range n {
		g, i := r/PackRows, r%PackRows
		for d := range w {
			out[g*PackRows*w+d*PackRows+i] = rows[r*w+d]
		}
	}
	return out
}

// TestPackedAgainstFloat64 checks every kernel's packed distances against float64 sums, within
// the accuracy the pruned search's bound assumes (see tolerance), for every width up to 70, rows
// of mixed magnitudes, and packed blocks that start unaligned.
func TestPackedAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	forEach(t, func(t *testing.T, name string) {
		for w := 1; w <= 70; w++ {
			n := 3*PackRows + w%PackRows
			rows := randVec(rng, n*w, []float64{1, 1e-15, 1e17}[w%3])
			q := rows[(w%n)*w : (w%n+1)*w] // a stored row: distance 0 among the others
			q = append([]float32(nil), q...)
			q[0] += 0.5
			packed := append(make([]float32, w%5), pack(rows, w)...)[w%5:]
			out := make([]float32, len(packed)/w)
			least := L2SquaredPacked(q, packed, out)
			if want := slices.Min(out); least != want {
				t.Fatalf("%s: width %d: smallest %v, the smallest stored is %v", name, w, least, want)
			}
			for r := range n {
				want := ref(q, rows[r*w:(r+1)*w])
				if got := float64(out[r]); math.Abs(got-want) > tolerance(w, want) {
					t.Fatalf("%s: width %d row %d: got %v, want %v (tolerance %g)", name, w, r, got, want, tolerance(w, want))
				}
			}
			for r := n; r < len(out); r++ { // padding rows are zero rows
				if want := ref(q, make([]float32, w)); math.Abs(float64(out[r])-want) > tolerance(w, want) {
					t.Fatalf("%s: width %d padding row %d: got %v, want %v", name, w, r, out[r], want)
				}
			}
		}
	})
}

// TestPackedKernelsAgree checks that the assembly packed kernels compute what the portable one
// does, within the rounding both are allowed (they differ only in fusing the multiply-add), and
// that a mismatched block panics rather than reading past it.
func TestPackedKernelsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const w, n = 32, 40 * PackRows
	rows := randVec(rng, n*w, 1)
	packed := pack(rows, w)
	q := randVec(rng, w, 1)
	want := make([]float32, n)
	packedGeneric(q, packed, want)
	forEach(t, func(t *testing.T, name string) {
		got := make([]float32, n)
		L2SquaredPacked(q, packed, got)
		for r := range got {
			if math.Abs(float64(got[r])-float64(want[r])) > 2*tolerance(w, float64(want[r])) {
				t.Fatalf("%s row %d: %v, the portable kernel %v", name, r, got[r], want[r])
			}
		}
	})
	defer func() {
		if recover() == nil {
			t.Error("a block of 15 rows did not panic")
		}
	}()
	if least := L2SquaredPacked(q, nil, nil); !math.IsInf(float64(least), 1) {
		t.Errorf("the smallest of no distances is %v, want +Inf", least)
	}
	L2SquaredPacked(q, packed[:15*w], make([]float32, 15))
}
