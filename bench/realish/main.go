// Command realish makes a set of real image embeddings for the benchmarks: the bench's own
// vectors are synthetic (independent components, no low-rank structure, no near neighbours) and
// understate what pruning does on a real collection. It embeds crops, flips and brightness edits
// of real photos (Debian's mate-backgrounds wallpapers, which scripts/setup.sh --for-tests
// installs, and the repository's test photos) with the bundled MobileNetV2 model, and writes
// seed-layout shards plus queries.npy: further edits of some of the photos, not in the shards.
//
//	go run ./bench/realish -o /work/bench-data/realish
//
// Everything is derived from the photos and fixed seeds: the same photos give the same vectors.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"simsearch/embed"
	"simsearch/pil"
	"simsearch/shard"
)

func main() {
	out := flag.String("o", "", "output directory (shards, then queries.npy)")
	model := flag.String("model", "testdata/model/mobilenet_v2_feature_vector.onnx", "ONNX model")
	per := flag.Int("per", 40, "edited copies per photo")
	dirs := flag.String("images", "/usr/share/backgrounds/mate,testdata/images", "comma-separated folders of photos (searched recursively)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "realish: -o DIR is required")
		os.Exit(2)
	}
	if err := run(*out, *model, *per, strings.Split(*dirs, ",")); err != nil {
		fmt.Fprintf(os.Stderr, "realish: %v\n", err)
		os.Exit(1)
	}
}

func run(out, modelPath string, per int, dirs []string) error {
	var photos []string
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			ext := strings.ToLower(filepath.Ext(p))
			if err == nil && !e.IsDir() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".webp") {
				photos = append(photos, p)
			}
			return nil
		})
	}
	slices.Sort(photos)
	if len(photos) == 0 {
		return fmt.Errorf("no photos under %v (scripts/setup.sh --for-tests installs mate-backgrounds)", dirs)
	}
	lib, err := embed.LibraryPath("")
	if err != nil {
		return err
	}
	if err := embed.Init(lib); err != nil {
		return err
	}
	src, err := embed.ReadModel(embed.Default(modelPath))
	if err != nil {
		return err
	}
	m, err := src.Open(embed.DefaultCacheDir())
	if err != nil {
		return err
	}
	defer m.Close()
	size := m.Config().Size

	var ids []string
	var rows, queries []float32
	input := make([]float32, m.InputLen())
	for i, p := range photos {
		img, err := pil.Open(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "realish: skipping %v\n", err)
			continue
		}
		// Wallpapers are up to 5640 pixels wide: edit a copy at most 640 wide (one Pillow
		// resize), so that each edit costs about what its inference does.
		if img.W > 640 {
			img = img.Resize(640, max(1, img.H*640/img.W))
		}
		rng := rand.New(rand.NewPCG(uint64(i), 2026))
		for v := 0; v <= per; v++ {
			m.Tensor(edit(img, rng).Resize(size, size), input)
			vec, err := m.Run(input)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if v == per { // one more edit per photo, held out as a query, for every third photo
				if i%3 == 0 {
					queries = append(queries, vec...)
				}
				continue
			}
			// Photos in different folders may share a name: number them (per photo kept).
			ids = append(ids, fmt.Sprintf("%04d-%s#%d", len(ids)/per, filepath.Base(p), v))
			rows = append(rows, vec...)
		}
		fmt.Fprintf(os.Stderr, "\rrealish: %d/%d photos, %d vectors", i+1, len(photos), len(ids))
	}
	fmt.Fprintln(os.Stderr)
	dim := m.Dim()
	qdir := filepath.Join(out, "q")
	for _, d := range []string{filepath.Join(out, "shards"), qdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := shard.Write(filepath.Join(out, "shards"), 0, ids, rows, dim); err != nil {
		return err
	}
	// queries.npy: written as a shard's features, then renamed (shard.Write names its files).
	qids := make([]string, len(queries)/dim)
	for i := range qids {
		qids[i] = fmt.Sprint("query", i)
	}
	if err := shard.Write(qdir, 0, qids, queries, dim); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(qdir, "0000"+shard.FeaturesSuffix), filepath.Join(out, "queries.npy")); err != nil {
		return err
	}
	return os.RemoveAll(qdir)
}

// edit returns a crop of 45–100% of the photo's sides at a random place, mirrored half of the
// time, with its brightness scaled by 0.75–1.25: what a collection holds as near-duplicates
// (re-framed, re-exported copies) and as distinct views of one scene.
func edit(img *pil.RGB, rng *rand.Rand) *pil.RGB {
	f := 0.45 + 0.55*rng.Float64()
	w, h := max(1, int(float64(img.W)*f)), max(1, int(float64(img.H)*f))
	x0, y0 := rng.IntN(img.W-w+1), rng.IntN(img.H-h+1)
	flip := rng.IntN(2) == 1
	gain := 0.75 + 0.5*rng.Float64()
	out := &pil.RGB{W: w, H: h, Pix: make([]byte, w*h*3)}
	for y := range h {
		for x := range w {
			sx := x0 + x
			if flip {
				sx = x0 + w - 1 - x
			}
			for c := range 3 {
				v := float64(img.Pix[((y0+y)*img.W+sx)*3+c]) * gain
				out.Pix[(y*w+x)*3+c] = byte(min(255, v+0.5))
			}
		}
	}
	return out
}
