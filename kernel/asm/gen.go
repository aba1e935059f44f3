// Command asm generates the AVX2 and AVX-512 squared-L2 block kernels of package kernel with avo.
// It is its own module so that avo is not a dependency of simsearch; run it from package kernel
// with `go generate`.
//
// Both kernels compute, for each of n rows of dim float32 stored contiguously at rows, the sum
// over i of (q[i] - row[i])², and store it to out[r]. The query stays in L1 for the whole block
// while the rows stream through once, so the loop is bound by memory bandwidth for large blocks.
package main

import (
	"flag"
	"log"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

const signature = "func(q *float32, rows *float32, dim int, n int, out *float32)"

func main() {
	isa := flag.String("isa", "", "avx2 or avx512")
	flag.Parse()
	ConstraintExpr("!purego")
	switch *isa {
	case "avx2":
		avx2()
	case "avx512":
		avx512()
	default:
		log.Fatalf("-isa must be avx2 or avx512, not %q", *isa)
	}
	Generate()
}

type args struct{ q, rows, dim, n, out GPVirtual }

func load() args {
	a := args{q: GP64(), rows: GP64(), dim: GP64(), n: GP64(), out: GP64()}
	Load(Param("q"), a.q)
	Load(Param("rows"), a.rows)
	Load(Param("dim"), a.dim)
	Load(Param("n"), a.n)
	Load(Param("out"), a.out)
	return a
}

// avx512 emits l2BlockAVX512: 4 accumulators over 64 floats per step, then 16 at a time, then
// one masked step for the dim%16 remainder (the mask is computed once per call).
func avx512() {
	TEXT("l2BlockAVX512", NOSPLIT, signature)
	Doc("l2BlockAVX512 stores to out[r] the squared L2 distance from q to row r of n dim-float rows.")
	a := load()

	// K1 selects the dim%16 tail lanes.
	tail := GP64()
	MOVQ(a.dim, tail)
	ANDQ(U8(15), tail)
	mask := GP64()
	MOVQ(U32(1), mask)
	shift := GP64()
	MOVQ(tail, shift)
	// SHLQ needs its count in CL.
	MOVQ(shift, RCX)
	SHLQ(CL, mask)
	DECQ(mask)
	KMOVW(mask.As32(), K1)

	full64 := GP64() // dim rounded down to 64
	MOVQ(a.dim, full64)
	ANDQ(I32(-64), full64)
	full16 := GP64() // dim rounded down to 16
	MOVQ(a.dim, full16)
	ANDQ(I32(-16), full16)
	stride := GP64()
	MOVQ(a.dim, stride)
	SHLQ(U8(2), stride)

	acc := []VecVirtual{ZMM(), ZMM(), ZMM(), ZMM()}
	t := []VecVirtual{ZMM(), ZMM(), ZMM(), ZMM()}
	i := GP64()

	Label("row")
	CMPQ(a.n, U8(0))
	JE(LabelRef("done"))
	for _, z := range acc {
		VPXORD(z, z, z) // VXORPS on ZMM would need AVX512DQ
	}
	XORQ(i, i)

	accumulate(a, i, full64, acc, t, 16, "loop64", "loop16")
	accumulate(a, i, full16, acc[:1], t[:1], 16, "loop16", "tail")

	Label("tail")
	CMPQ(tail, U8(0))
	JE(LabelRef("reduce"))
	// Masked-off lanes load as zero from both sides and never touch memory past the row.
	VMOVUPS_Z(Mem{Base: a.q, Index: i, Scale: 4}, K1, t[0])
	VMOVUPS_Z(Mem{Base: a.rows, Index: i, Scale: 4}, K1, t[1])
	VSUBPS(t[1], t[0], t[0])
	VFMADD231PS(t[0], t[0], acc[1])

	Label("reduce")
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	VEXTRACTF64X4(U8(1), acc[0], t[0].AsY())
	VADDPS(t[0].AsY(), acc[0].AsY(), acc[0].AsY())
	sumYMM(acc[0], t[0])
	VMOVSS(acc[0].AsX(), Mem{Base: a.out})
	nextRow(a, stride)
}

// sumYMM adds the eight lanes of v's low 256 bits into its lowest lane, using tmp.
func sumYMM(v, tmp VecVirtual) {
	VEXTRACTF128(U8(1), v.AsY(), tmp.AsX())
	VADDPS(tmp.AsX(), v.AsX(), v.AsX())
	VHADDPS(v.AsX(), v.AsX(), v.AsX())
	VHADDPS(v.AsX(), v.AsX(), v.AsX())
}

// nextRow emits the end of the row loop (advance out and rows, count down n, loop) and the
// function's exit.
func nextRow(a args, stride GPVirtual) {
	ADDQ(U8(4), a.out)
	ADDQ(stride, a.rows)
	DECQ(a.n)
	JMP(LabelRef("row"))

	Label("done")
	VZEROUPPER()
	RET()
}

// accumulate emits the loop labelled name: while i < limit, for each of the len(acc) vectors of
// lanes floats at q+i and row+i, acc[k] += (q − row)²; then i advances by len(acc)·lanes. It
// falls through to next.
func accumulate(a args, i, limit GPVirtual, acc, t []VecVirtual, lanes int, name, next string) {
	Label(name)
	CMPQ(i, limit)
	JAE(LabelRef(next))
	for k := range acc {
		VMOVUPS(Mem{Base: a.q, Index: i, Scale: 4, Disp: 4 * lanes * k}, t[k])
	}
	for k := range acc {
		VSUBPS(Mem{Base: a.rows, Index: i, Scale: 4, Disp: 4 * lanes * k}, t[k], t[k])
	}
	for k := range acc {
		VFMADD231PS(t[k], t[k], acc[k])
	}
	ADDQ(U8(len(acc)*lanes), i)
	JMP(LabelRef(name))
}

// avx2 emits l2BlockAVX2: 4 accumulators over 32 floats per step, then 8 at a time, then a
// scalar loop for the dim%8 remainder. It needs AVX2 and FMA.
func avx2() {
	TEXT("l2BlockAVX2", NOSPLIT, signature)
	Doc("l2BlockAVX2 stores to out[r] the squared L2 distance from q to row r of n dim-float rows.")
	a := load()

	full32 := GP64()
	MOVQ(a.dim, full32)
	ANDQ(I32(-32), full32)
	full8 := GP64()
	MOVQ(a.dim, full8)
	ANDQ(I32(-8), full8)
	stride := GP64()
	MOVQ(a.dim, stride)
	SHLQ(U8(2), stride)

	acc := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	t := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
	s := XMM()
	i := GP64()

	Label("row")
	CMPQ(a.n, U8(0))
	JE(LabelRef("done"))
	for _, y := range acc {
		VXORPS(y, y, y)
	}
	XORQ(i, i)

	accumulate(a, i, full32, acc, t, 8, "loop32", "loop8")
	accumulate(a, i, full8, acc[:1], t[:1], 8, "loop8", "reduce")

	Label("reduce")
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	sumYMM(acc[0], t[0])

	Label("tail")
	CMPQ(i, a.dim)
	JAE(LabelRef("store"))
	VMOVSS(Mem{Base: a.q, Index: i, Scale: 4}, s)
	VSUBSS(Mem{Base: a.rows, Index: i, Scale: 4}, s, s)
	VFMADD231SS(s, s, acc[0].AsX())
	INCQ(i)
	JMP(LabelRef("tail"))

	Label("store")
	VMOVSS(acc[0].AsX(), Mem{Base: a.out})
	nextRow(a, stride)
}
