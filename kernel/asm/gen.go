// Command asm generates the AVX2 and AVX-512 squared-L2 block kernels of package kernel with avo.
// It is its own module so that avo is not a dependency of simsearch; run it from package kernel
// with `go generate`.
//
// The block kernels compute, for each of n rows of dim float32 stored contiguously at rows, the
// sum over i of (q[i] - row[i])², and store it to out[r]. The query stays in L1 for the whole
// block while the rows stream through once, so the loop is bound by memory bandwidth for large
// blocks. The packed kernel (-isa packed) computes the same sums for rows
// stored in groups of 16, dimension-major within a group (the pruned search's signatures): one
// vector holds one dimension of 8 rows, so the sums need no horizontal additions.
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
	case "packed":
		packedAVX2()
	default:
		log.Fatalf("-isa must be avx2, avx512 or packed, not %q", *isa)
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

// packedRows is the number of rows in a group of the packed layout (kernel.PackRows).
const packedRows = 16

// packedAVX2 emits l2PackedAVX2: for each of groups groups of 16 rows of w floats, stored
// dimension-major (dimension d of row i at d*16 + i), the 16 squared distances to q, and it
// returns the smallest of them all (+Inf for no group). Each dimension is one broadcast of q[d]
// and two 8-row vectors; the dimensions go round-robin into four pairs of accumulators (so that
// four FMA chains are in flight), then the quarters are added as (0+1)+(2+3). A group is w*64
// bytes; the groups follow one another, so the row pointer simply advances by 64 bytes per
// dimension. It needs AVX2 and FMA.
func packedAVX2() {
	TEXT("l2PackedAVX2", NOSPLIT, "func(q *float32, packed *float32, w int, groups int, out *float32) float32")
	Doc("l2PackedAVX2 stores to out[16g+i] the squared L2 distance from q to row i of group g of groups packed 16-row groups of w floats, and returns the smallest.")
	q, p, w, g, out := GP64(), GP64(), GP64(), GP64(), GP64()
	Load(Param("q"), q)
	Load(Param("packed"), p)
	Load(Param("w"), w)
	Load(Param("groups"), g)
	Load(Param("out"), out)

	full4 := GP64() // w rounded down to 4
	MOVQ(w, full4)
	ANDQ(I32(-4), full4)
	acc := make([]VecVirtual, 8) // acc[2j] rows 0-7, acc[2j+1] rows 8-15, of quarter j
	for i := range acc {
		acc[i] = YMM()
	}
	b, t0, t1 := YMM(), YMM(), YMM()
	d := GP64()
	least := YMM() // the smallest sums so far, per lane: +Inf to start (all ones << 24 >> 1)
	VPCMPEQD(least, least, least)
	VPSLLD(U8(24), least, least)
	VPSRLD(U8(1), least, least)

	Label("group")
	CMPQ(g, U8(0))
	JE(LabelRef("done"))
	for _, y := range acc {
		VXORPS(y, y, y)
	}
	XORQ(d, d)

	dimension := func(j, disp int, lo, hi VecVirtual) {
		VBROADCASTSS(Mem{Base: q, Index: d, Scale: 4, Disp: 4 * j}, b)
		VSUBPS(Mem{Base: p, Disp: disp}, b, t0)
		VSUBPS(Mem{Base: p, Disp: disp + 32}, b, t1)
		VFMADD231PS(t0, t0, lo)
		VFMADD231PS(t1, t1, hi)
	}
	Label("loop4")
	CMPQ(d, full4)
	JAE(LabelRef("tail"))
	for j := range 4 {
		dimension(j, 4*packedRows*j, acc[2*j], acc[2*j+1])
	}
	ADDQ(U8(4), d)
	ADDQ(U32(4*4*packedRows), p)
	JMP(LabelRef("loop4"))

	Label("tail") // the w%4 last dimensions, into quarter 0
	CMPQ(d, w)
	JAE(LabelRef("reduce"))
	dimension(0, 0, acc[0], acc[1])
	INCQ(d)
	ADDQ(U8(4*packedRows), p)
	JMP(LabelRef("tail"))

	Label("reduce")
	for h := range 2 {
		VADDPS(acc[2+h], acc[h], acc[h])
		VADDPS(acc[6+h], acc[4+h], acc[4+h])
		VADDPS(acc[4+h], acc[h], acc[h])
		VMOVUPS(acc[h], Mem{Base: out, Disp: 32 * h})
		VMINPS(acc[h], least, least)
	}
	ADDQ(U8(4*packedRows), out)
	DECQ(g)
	JMP(LabelRef("group"))

	Label("done") // the smallest of least's eight lanes
	VEXTRACTF128(U8(1), least, t0.AsX())
	VMINPS(t0.AsX(), least.AsX(), least.AsX())
	VMOVHLPS(least.AsX(), least.AsX(), t0.AsX())
	VMINPS(t0.AsX(), least.AsX(), least.AsX())
	VMOVSHDUP(least.AsX(), t0.AsX())
	VMINSS(t0.AsX(), least.AsX(), least.AsX())
	VZEROUPPER()
	Store(least.AsX(), ReturnIndex(0))
	RET()
}
