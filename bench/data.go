package main

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"simsearch/shard"
)

// dataset is a deterministic collection in the seed's layout, cached on disk.
type dataset struct {
	dir         string // holds shards/ and query.npy
	rows, dim   int
	shardRows   int
	shardsBytes int64 // total size of the shard files
}

// makeDataset writes rows × dim float32 features in shards of shardRows, ids like the seed's
// (<sha1>.jpg), unless a complete copy is already under root. Features are non-negative, as
// pooled CNN features are; the query is a perturbed copy of row rows/3.
func makeDataset(root string, rows, dim, shardRows int, logf func(string, ...any)) (*dataset, error) {
	d := &dataset{dir: filepath.Join(root, fmt.Sprintf("%dx%d", rows, dim)), rows: rows, dim: dim, shardRows: shardRows}
	shards := filepath.Join(d.dir, "shards")
	done := filepath.Join(d.dir, "complete")
	if _, err := os.Stat(done); err != nil {
		logf("generating %d × %d features in shards of %d under %s", rows, dim, shardRows, shards)
		if err := os.RemoveAll(d.dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(shards, 0o755); err != nil {
			return nil, err
		}
		rng := rand.New(rand.NewPCG(2026, 11))
		var query []float32
		for s, lo := 0, 0; lo < rows; s, lo = s+1, lo+shardRows {
			n := min(shardRows, rows-lo)
			ids := make([]string, n)
			feats := make([]float32, n*dim)
			for i := range ids {
				h := sha1.Sum([]byte(strconv.Itoa(lo + i)))
				ids[i] = hex.EncodeToString(h[:]) + ".jpg"
			}
			for i := range feats {
				feats[i] = float32(max(0, rng.NormFloat64()))
			}
			if q := rows / 3; q >= lo && q < lo+n {
				query = make([]float32, dim)
				for j := range query {
					query[j] = feats[(q-lo)*dim+j] + float32(rng.NormFloat64()*0.05)
				}
			}
			if err := shard.Write(shards, s, ids, feats, dim); err != nil {
				return nil, err
			}
		}
		if err := shard.Write(d.dir, 0, []string{"query"}, query, dim); err != nil {
			return nil, err
		}
		// The query as a 1-D array, the way a user would save one vector.
		if err := os.Rename(filepath.Join(d.dir, "0000"+shard.FeaturesSuffix), filepath.Join(d.dir, "query2d.npy")); err != nil {
			return nil, err
		}
		os.Remove(filepath.Join(d.dir, "0000"+shard.IDsSuffix))
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			return nil, err
		}
	}
	pairs, err := shard.List(shards)
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		for _, f := range []string{p.IDs, p.Features} {
			st, err := os.Stat(f)
			if err != nil {
				return nil, err
			}
			d.shardsBytes += st.Size()
		}
	}
	return d, nil
}

func (d *dataset) shards() string { return filepath.Join(d.dir, "shards") }
func (d *dataset) query() string  { return filepath.Join(d.dir, "query2d.npy") }
