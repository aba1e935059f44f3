package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"codeberg.org/sbinet/npyio/npy"
)

type hit struct {
	id   string
	dist float32
}

// npyBaseline is the seed's search (part 4 of the series) in Go: for every query, load every
// shard with npyio, compute the Euclidean distance of every row, argsort, keep the k nearest of
// the shard, then merge the shards' candidates. It is the yardstick of the benchmark table.
func npyBaseline(shardDir string, q []float32, k int) ([]hit, error) {
	var cands []hit
	for i := 0; ; i++ {
		feats := filepath.Join(shardDir, fmt.Sprintf("%04d.features.npy", i))
		if _, err := os.Stat(feats); err != nil {
			break // the seed's loop stops at the first missing index
		}
		var ids []string
		if err := readNpy(filepath.Join(shardDir, fmt.Sprintf("%04d.object_ids.npy", i)), &ids); err != nil {
			return nil, err
		}
		var rows []float32
		if err := readNpy(feats, &rows); err != nil {
			return nil, err
		}
		dim := len(q)
		dist := make([]float32, len(ids))
		for r := range dist {
			var s float32
			for j, x := range rows[r*dim : (r+1)*dim] {
				d := x - q[j]
				s += d * d
			}
			dist[r] = float32(math.Sqrt(float64(s)))
		}
		order := make([]int, len(ids))
		for r := range order {
			order[r] = r
		}
		sort.Slice(order, func(a, b int) bool { return dist[order[a]] < dist[order[b]] })
		for _, r := range order[:min(k, len(order))] {
			cands = append(cands, hit{ids[r], dist[r]})
		}
	}
	sort.Slice(cands, func(a, b int) bool { return cands[a].dist < cands[b].dist })
	return cands[:min(k, len(cands))], nil
}

func readNpy(path string, ptr any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// npyio reads element by element; unbuffered, that is a system call per float. A fair
	// baseline buffers, as np.load effectively does.
	if err := npy.Read(bufio.NewReaderSize(f, 1<<20), ptr); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
