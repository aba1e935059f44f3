package query

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"simsearch/embed"
	"simsearch/index"
)

// ModelRequest says which model to load for a query and which preprocessing settings the user
// gave explicitly; settings left nil come from the index's metadata when it has them, else from
// embed.Default.
type ModelRequest struct {
	Path          string // empty: the model the index was built with, if its file is still there
	Input, Output *string
	Size          *int
	Layout        *string
	Scale         *float64
	Mean, Std     []float64
	ORTLib        string // see embed.LibraryPath
	AllowMismatch bool   // accept a model whose hash differs from the index's record
	CacheDir      string // ONNX Runtime's optimised graphs (embed.DefaultCacheDir); "" for none
}

// LoadModel loads the model for image queries, checking it against what the index records: a
// different model file (by SHA-256) or a different output dim is an error, not silent garbage.
// It returns the time it took.
func (s *Searcher) LoadModel(req ModelRequest) (time.Duration, error) {
	cfg, rec, err := s.modelConfig(req)
	if err != nil {
		return 0, err
	}
	return s.loadModel(req, cfg, rec)
}

// loadModel loads the model cfg describes, checking it against rec, the index's record.
func (s *Searcher) loadModel(req ModelRequest, cfg embed.Config, rec *index.Model) (time.Duration, error) {
	ix := s.Index()
	m, took, err := openModel(req, cfg, rec, ix.Path(), ix.Dim())
	if err != nil {
		return 0, err
	}
	s.model, s.allowMismatch = m, req.AllowMismatch
	return took, nil
}

// OpenModel loads the model for queries against dim-dimensional vectors held at where (an index
// file, or a collection elsewhere: named in messages) and made by the model rec records (nil:
// unknown), with the same checks as LoadModel. It returns the time it took.
func OpenModel(req ModelRequest, rec *index.Model, where string, dim int) (*embed.Model, time.Duration, error) {
	cfg, err := resolve(req, rec, where)
	if err != nil {
		return nil, 0, err
	}
	return openModel(req, cfg, rec, where, dim)
}

// openModel loads the model cfg describes for dim-dimensional vectors held at where, checking it
// against rec.
func openModel(req ModelRequest, cfg embed.Config, rec *index.Model, where string, dim int) (*embed.Model, time.Duration, error) {
	m, took, err := embed.OpenModel(cfg, req.ORTLib, req.CacheDir)
	if err != nil {
		return nil, 0, err
	}
	if rec != nil && rec.SHA256 != "" && rec.SHA256 != m.SHA256() && !req.AllowMismatch {
		m.Close()
		return nil, 0, fmt.Errorf("%s (sha256 %.12s…) is not the model %s was built with (%s, sha256 %.12s…): its vectors would not be comparable; pass that model, or --allow-model-mismatch", cfg.Model, m.SHA256(), where, rec.File, rec.SHA256)
	}
	if m.Dim() != dim {
		m.Close()
		return nil, 0, fmt.Errorf("%s produces %d-dim vectors but %s holds %d-dim vectors", cfg.Model, m.Dim(), where, dim)
	}
	return m, took, nil
}

// modelConfig is the model configuration for req and this index, and the index's record of its
// model (nil if none).
func (s *Searcher) modelConfig(req ModelRequest) (embed.Config, *index.Model, error) {
	rec := s.Meta().Model
	cfg, err := resolve(req, rec, s.Index().Path())
	return cfg, rec, err
}

// resolve merges explicit settings, the index's record and the defaults.
func resolve(req ModelRequest, rec *index.Model, indexPath string) (embed.Config, error) {
	path := req.Path
	if path == "" {
		if rec == nil || rec.File == "" {
			return embed.Config{}, fmt.Errorf("%s does not record its model: pass --model", indexPath)
		}
		path = rec.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(indexPath), path)
		}
		if _, err := os.Stat(path); err != nil {
			return embed.Config{}, fmt.Errorf("%s was built with the model %s, which is not there any more: pass --model", indexPath, path)
		}
	}
	cfg := recordConfig(embed.Default(path), rec)
	set(&cfg.Input, req.Input)
	set(&cfg.Output, req.Output)
	set(&cfg.Size, req.Size)
	set(&cfg.Layout, req.Layout)
	set(&cfg.Scale, req.Scale)
	if req.Mean != nil {
		cfg.Mean = req.Mean
	}
	if req.Std != nil {
		cfg.Std = req.Std
	}
	if (cfg.Mean == nil) != (cfg.Std == nil) {
		if cfg.Mean == nil {
			cfg.Mean = []float64{0, 0, 0}
		} else {
			cfg.Std = []float64{1, 1, 1}
		}
	}
	return cfg, cfg.Validate()
}

// recordConfig is cfg with the preprocessing the index's model record rec (if not nil) gives.
func recordConfig(cfg embed.Config, rec *index.Model) embed.Config {
	if rec != nil {
		cfg.Input, cfg.Output, cfg.Size, cfg.Layout, cfg.Scale, cfg.Mean, cfg.Std = rec.Input, rec.Output, rec.Size, rec.Layout, rec.Scale, rec.Mean, rec.Std
	}
	return cfg
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Record describes a model configuration, whose file has the given SHA-256, for an index's
// metadata.
func Record(cfg embed.Config, sha256 string) (*index.Model, error) {
	abs, err := filepath.Abs(cfg.Model)
	if err != nil {
		return nil, err
	}
	return &index.Model{SHA256: sha256, File: abs, Input: cfg.Input, Output: cfg.Output, Size: cfg.Size, Layout: cfg.Layout, Scale: cfg.Scale, Mean: cfg.Mean, Std: cfg.Std, Resize: "pil-bicubic"}, nil
}
