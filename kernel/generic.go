package kernel

// blockGeneric is the portable kernel. Eight independent accumulators let the CPU overlap the
// additions, as the vector kernels' lanes do.
func blockGeneric(q, rows, out []float32) {
	dim := len(q)
	for r := range out {
		row := rows[r*dim : (r+1)*dim : (r+1)*dim]
		var s0, s1, s2, s3, s4, s5, s6, s7 float32
		i := 0
		for ; i+8 <= dim; i += 8 {
			d0 := q[i] - row[i]
			d1 := q[i+1] - row[i+1]
			d2 := q[i+2] - row[i+2]
			d3 := q[i+3] - row[i+3]
			d4 := q[i+4] - row[i+4]
			d5 := q[i+5] - row[i+5]
			d6 := q[i+6] - row[i+6]
			d7 := q[i+7] - row[i+7]
			s0 += d0 * d0
			s1 += d1 * d1
			s2 += d2 * d2
			s3 += d3 * d3
			s4 += d4 * d4
			s5 += d5 * d5
			s6 += d6 * d6
			s7 += d7 * d7
		}
		for ; i < dim; i++ {
			d := q[i] - row[i]
			s0 += d * d
		}
		out[r] = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
	}
}
