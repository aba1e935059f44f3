package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"simsearch/embed"
	"simsearch/query"
)

// modelFlags are the flags that describe a model and its preprocessing. With required, --model
// must be given.
func modelFlags(required bool) []cli.Flag {
	d := embed.Default("")
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "ONNX model file", Required: required},
		&cli.StringFlag{Name: "input", Usage: "model input tensor name", Value: d.Input},
		&cli.StringFlag{Name: "output-name", Usage: "model output tensor name", Value: d.Output},
		&cli.IntFlag{Name: "size", Usage: "square input size in pixels (images are resized like PIL's resize((size, size)))", Value: d.Size},
		&cli.StringFlag{Name: "layout", Usage: "input layout: NHWC or NCHW", Value: d.Layout},
		&cli.Float64Flag{Name: "scale", Usage: "multiplies 8-bit pixel values", Value: d.Scale},
		&cli.StringFlag{Name: "mean", Usage: "per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406"},
		&cli.StringFlag{Name: "std", Usage: "per-channel std dividing after the mean, e.g. 0.229,0.224,0.225"},
		&cli.StringFlag{Name: "ort-lib", Usage: "path of libonnxruntime.so (default $ONNXRUNTIME_LIB, else the user cache dir)", EnvVars: nil},
	}
}

// modelRequest collects the model flags the user set; unset ones are left to the index's record.
func modelRequest(c *cli.Context) (query.ModelRequest, error) {
	r := query.ModelRequest{Path: c.String("model"), ORTLib: c.String("ort-lib"), AllowMismatch: c.Bool("allow-model-mismatch"), CacheDir: embed.DefaultCacheDir()}
	if c.IsSet("input") {
		r.Input = ptr(c.String("input"))
	}
	if c.IsSet("output-name") {
		r.Output = ptr(c.String("output-name"))
	}
	if c.IsSet("size") {
		r.Size = ptr(c.Int("size"))
	}
	if c.IsSet("layout") {
		r.Layout = ptr(strings.ToUpper(c.String("layout")))
	}
	if c.IsSet("scale") {
		r.Scale = ptr(c.Float64("scale"))
	}
	var err error
	if r.Mean, err = triple(c, "mean"); err != nil {
		return r, err
	}
	if r.Std, err = triple(c, "std"); err != nil {
		return r, err
	}
	return r, nil
}

// modelConfig is the full configuration from the flags and their defaults.
func modelConfig(c *cli.Context) (embed.Config, error) {
	cfg := embed.Default(c.String("model"))
	cfg.Input, cfg.Output, cfg.Size = c.String("input"), c.String("output-name"), c.Int("size")
	cfg.Layout, cfg.Scale = strings.ToUpper(c.String("layout")), c.Float64("scale")
	var err error
	if cfg.Mean, err = triple(c, "mean"); err != nil {
		return cfg, err
	}
	if cfg.Std, err = triple(c, "std"); err != nil {
		return cfg, err
	}
	if (cfg.Mean == nil) != (cfg.Std == nil) {
		return cfg, fmt.Errorf("--mean and --std go together")
	}
	return cfg, cfg.Validate()
}

func triple(c *cli.Context, name string) ([]float64, error) {
	s := c.String(name)
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return nil, fmt.Errorf("--%s takes three comma-separated numbers (R,G,B), not %q", name, s)
	}
	v := make([]float64, 3)
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("--%s: %q is not a number", name, p)
		}
		v[i] = f
	}
	return v, nil
}

func ptr[T any](v T) *T { return &v }
