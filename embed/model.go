// Package embed turns images into feature vectors with an ONNX model run by ONNX Runtime,
// preprocessing them as the Python pipeline does (package pil).
package embed

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/edsrzf/mmap-go"
	ort "github.com/yalue/onnxruntime_go"

	"simsearch/internal/rusage"
	"simsearch/pil"
)

// Config describes a model and its preprocessing. Each pixel channel becomes
// (value × Scale − Mean[c]) / Std[c].
type Config struct {
	Model   string    // path of the .onnx file
	Input   string    // input tensor name
	Output  string    // output tensor name
	Size    int       // the square input side, in pixels
	Layout  string    // "NHWC" or "NCHW"
	Scale   float64   // multiplies 8-bit values
	Mean    []float64 // per channel (R, G, B); nil means 0
	Std     []float64 // per channel; nil means 1
	Threads int       // ONNX Runtime intra-op threads; 0 means the number of CPUs
}

// Default returns the seed's preprocessing for TF-Hub feature-vector models: 224×224 NHWC RGB
// in [0, 1], input "inputs:0", output "feature_vector".
func Default(model string) Config {
	return Config{Model: model, Input: "inputs:0", Output: "feature_vector", Size: 224, Layout: "NHWC", Scale: 1.0 / 255}
}

// Validate checks the configuration without touching the model file.
func (c Config) Validate() error {
	switch {
	case c.Model == "":
		return fmt.Errorf("no model given")
	case c.Size < 1 || c.Size > 4096:
		return fmt.Errorf("input size %d out of range 1..4096", c.Size)
	case c.Layout != "NHWC" && c.Layout != "NCHW":
		return fmt.Errorf("layout %q: want NHWC or NCHW", c.Layout)
	case c.Scale == 0:
		return fmt.Errorf("scale must not be 0")
	case c.Mean != nil && len(c.Mean) != 3, c.Std != nil && len(c.Std) != 3:
		return fmt.Errorf("mean and std take three values (R, G, B)")
	}
	for _, s := range c.Std {
		if s == 0 {
			return fmt.Errorf("std must not be 0")
		}
	}
	return nil
}

// Model is a loaded model. Embed may be called from several goroutines.
type Model struct {
	cfg    Config
	sess   *ort.DynamicAdvancedSession
	mapped mmap.MMap // the cached graph the session uses in place (optcache.go), or nil
	dim    int
	sha256 string
	lut    [3][256]float32 // 8-bit value → input value, per channel
	load   LoadStats
}

// LoadStats says where opening a model went: loading ONNX Runtime (which OpenModel overlaps
// with reading the model), reading, hashing and checking the model file, and creating the
// session; and, where the system counts them per thread (FaultsKnown), the page faults of the
// thread that did each (the session's own threads, if ONNX Runtime starts some, are not
// counted). A step that did not happen (ONNX Runtime already loaded, a model opened from a
// Source read earlier) is zero.
type LoadStats struct {
	ORTInit, Read, Session                   time.Duration
	ORTInitFaults, ReadFaults, SessionFaults rusage.Faults
	FaultsKnown                              bool
}

// LoadStats returns how the model was opened.
func (m *Model) LoadStats() LoadStats { return m.load }

// threadStep runs f on the calling goroutine held on its OS thread and returns its time and
// the thread's page faults (ok false where they are not counted per thread).
func threadStep(f func()) (took time.Duration, faults rusage.Faults, ok bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	before, ok := rusage.Thread()
	f()
	after, _ := rusage.Thread()
	return time.Since(start), after.Sub(before), ok
}

// Source is a model file read and checked against its configuration, ready to open. Reading
// needs no ONNX Runtime, so it can overlap Init.
type Source struct {
	cfg    Config
	data   []byte
	sha256 string
	dim    int
}

// ReadModel reads the model file once, computes its SHA-256, and checks from its declared
// signature (parsed from the ONNX bytes) that it has the configured input, of the configured
// shape, and output, a batch of vectors.
func ReadModel(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.Model, err)
	}
	data, err := os.ReadFile(cfg.Model)
	if err != nil {
		return nil, err
	}
	sum := make(chan string, 1)
	go func() {
		h := sha256.Sum256(data)
		sum <- hex.EncodeToString(h[:])
	}()
	dim, err := checkSignature(cfg, data)
	src := &Source{cfg: cfg, data: data, sha256: <-sum, dim: dim}
	return src, err
}

// SHA256 returns the hex SHA-256 of the model file.
func (src *Source) SHA256() string { return src.sha256 }

func checkSignature(cfg Config, data []byte) (int, error) {
	ins, outs, err := graphSignature(data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", cfg.Model, err)
	}
	in, err := find(ins, cfg.Input, "input", cfg.Model)
	if err != nil {
		return 0, err
	}
	out, err := find(outs, cfg.Output, "output", cfg.Model)
	if err != nil {
		return 0, err
	}
	want := []int64{-1, int64(cfg.Size), int64(cfg.Size), 3}
	if cfg.Layout == "NCHW" {
		want = []int64{-1, 3, int64(cfg.Size), int64(cfg.Size)}
	}
	if !shapeFits(in.Shape, want) {
		return 0, fmt.Errorf("%s: input %q has shape %v, but %s %dx%d needs %v (check --layout and --size)", cfg.Model, cfg.Input, in.Shape, cfg.Layout, cfg.Size, cfg.Size, want)
	}
	if len(out.Shape) != 2 || out.Shape[1] <= 0 {
		return 0, fmt.Errorf("%s: output %q has shape %v, want [batch, dim]", cfg.Model, cfg.Output, out.Shape)
	}
	return int(out.Shape[1]), nil
}

// Open creates the ONNX Runtime session (Init must have succeeded). With a cacheDir, the graph
// ONNX Runtime optimises on first use is saved there (see optcache.go) and later sessions start
// from it, which skips the optimisation: about 25 ms of a cold query.
func (src *Source) Open(cacheDir string) (*Model, error) {
	cfg := src.cfg
	m := &Model{cfg: cfg, dim: src.dim, sha256: src.sha256}
	var (
		sess   *ort.DynamicAdvancedSession
		mapped mmap.MMap
		err    error
	)
	m.load.Session, m.load.SessionFaults, m.load.FaultsKnown = threadStep(func() { sess, mapped, err = openCached(src, cacheDir) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Model, err)
	}
	m.sess, m.mapped = sess, mapped
	for c := range 3 {
		mean, std := 0.0, 1.0
		if cfg.Mean != nil {
			mean, std = cfg.Mean[c], cfg.Std[c]
		}
		for v := range 256 {
			m.lut[c][v] = float32((float64(v)*cfg.Scale - mean) / std)
		}
	}
	return m, nil
}

// sessionOptions are the options every session uses, at the given optimisation level, saving
// the optimised graph to saveTo when it is not empty.
func sessionOptions(cfg Config, level ort.GraphOptimizationLevel, saveTo string) (*ort.SessionOptions, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	threads := cfg.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	err = errors.Join(
		opts.SetIntraOpNumThreads(threads),
		opts.SetInterOpNumThreads(1),
		// ONNX Runtime's workers spin after each run by default; in a one-shot query they would
		// then compete with the scan for the cores.
		opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"),
		opts.SetGraphOptimizationLevel(level),
	)
	if err == nil && saveTo != "" {
		err = opts.SetOptimizedModelFilePath(saveTo)
	}
	if err != nil {
		opts.Destroy()
		return nil, err
	}
	return opts, nil
}

func find(infos []tensorInfo, name, what, model string) (tensorInfo, error) {
	var names []string
	for _, i := range infos {
		if i.Name == name {
			if i.ElemType != onnxFloat {
				return i, fmt.Errorf("%s: %s %q has ONNX element type %d, want float32 (1)", model, what, name, i.ElemType)
			}
			return i, nil
		}
		names = append(names, i.Name)
	}
	return tensorInfo{}, fmt.Errorf("%s: the model has no %s %q (it has: %s)", model, what, name, strings.Join(names, ", "))
}

// shapeFits reports whether a model shape (-1 for a free dimension) accepts want.
func shapeFits(have []int64, want []int64) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if have[i] >= 0 && want[i] >= 0 && have[i] != want[i] {
			return false
		}
		if have[i] >= 0 && want[i] < 0 && have[i] != 1 {
			// A fixed batch size other than 1 cannot take one image at a time.
			return false
		}
	}
	return true
}

// SHA256 returns the hex SHA-256 of the model file, which identifies the model.
func (m *Model) SHA256() string { return m.sha256 }

// Dim returns the length of the vectors the model produces.
func (m *Model) Dim() int { return m.dim }

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Prepare resizes img to the model's input size and writes its input values to dst, which has
// room for InputLen floats, in the model's layout.
func (m *Model) Prepare(img *pil.RGB, dst []float32) {
	m.Tensor(img.Resize(m.cfg.Size, m.cfg.Size), dst)
}

// Tensor writes the input values of r, already resized to the model's input size, to dst.
func (m *Model) Tensor(r *pil.RGB, dst []float32) {
	s := m.cfg.Size
	if r.W != s || r.H != s {
		panic(fmt.Sprintf("embed: %dx%d image for a %dx%d input", r.W, r.H, s, s))
	}
	if m.cfg.Layout == "NHWC" {
		for i, v := range r.Pix {
			dst[i] = m.lut[i%3][v]
		}
		return
	}
	plane := s * s
	for p := 0; p < plane; p++ {
		for c := range 3 {
			dst[c*plane+p] = m.lut[c][r.Pix[3*p+c]]
		}
	}
}

// InputLen is the number of floats one image takes as model input.
func (m *Model) InputLen() int { return m.cfg.Size * m.cfg.Size * 3 }

// Run runs the model on a batch of prepared inputs (n × InputLen floats) and returns n vectors,
// row-major.
func (m *Model) Run(input []float32) ([]float32, error) {
	n := len(input) / m.InputLen()
	if n == 0 || len(input) != n*m.InputLen() {
		return nil, fmt.Errorf("input of %d floats is not a batch of %d-float images", len(input), m.InputLen())
	}
	shape := ort.NewShape(int64(n), int64(m.cfg.Size), int64(m.cfg.Size), 3)
	if m.cfg.Layout == "NCHW" {
		shape = ort.NewShape(int64(n), 3, int64(m.cfg.Size), int64(m.cfg.Size))
	}
	in, err := ort.NewTensor(shape, input)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(m.dim)))
	if err != nil {
		return nil, err
	}
	defer out.Destroy()
	if err := m.sess.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
		return nil, fmt.Errorf("%s: inference: %w", m.cfg.Model, err)
	}
	return slices.Clone(out.GetData()), nil
}

// Embed prepares and runs one image.
func (m *Model) Embed(img *pil.RGB) ([]float32, error) {
	in := make([]float32, m.InputLen())
	m.Prepare(img, in)
	return m.Run(in)
}

// Close releases the session.
func (m *Model) Close() error {
	if m.sess == nil {
		return nil
	}
	err := m.sess.Destroy()
	if m.mapped != nil {
		err = errors.Join(err, m.mapped.Unmap()) // after the session: it read the mapping
	}
	return err
}

// FileSHA256 returns the hex SHA-256 of a file, to identify a model.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
