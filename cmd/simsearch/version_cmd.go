package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"simsearch/embed"
	"simsearch/kernel"
)

// buildInfo is what `simsearch version` reports.
type buildInfo struct {
	Version     string   `json:"version"`
	Commit      string   `json:"commit,omitempty"`
	CommitTime  string   `json:"commit_time,omitempty"`
	Modified    bool     `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go          string   `json:"go"`
	Kernel      string   `json:"kernel"`
	Kernels     []string `json:"kernels_available"`
	ORT         string   `json:"onnxruntime,omitempty"`
	ORTLib      string   `json:"onnxruntime_library,omitempty"`
	ORTError    string   `json:"onnxruntime_error,omitempty"`
	Description string   `json:"-"`
}

// appVersion is the module's version as the Go toolchain stamped it ("devel" in a source tree).
func appVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// collectBuildInfo reads the VCS stamp Go records in the binary and loads ONNX Runtime from
// where the commands would, to report its version (or why it cannot be loaded).
func collectBuildInfo() buildInfo {
	info := buildInfo{Version: appVersion(), Go: runtime.Version(), Kernel: kernel.Name(), Kernels: kernel.Available()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				info.CommitTime = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	lib, err := embed.LibraryPath("")
	if err == nil {
		err = embed.Init(lib)
	}
	if err != nil {
		info.ORTError = err.Error()
	} else {
		info.ORT, info.ORTLib = embed.RuntimeVersion(), lib
	}
	return info
}

func printBuildInfo(w io.Writer, asJSON bool) error {
	info := collectBuildInfo()
	if asJSON {
		return json.NewEncoder(w).Encode(info)
	}
	commit := info.Commit
	if commit == "" {
		commit = "unknown (not built from a git checkout)"
	} else if info.Modified {
		commit += " (with uncommitted changes)"
	}
	if info.CommitTime != "" {
		commit += ", " + info.CommitTime
	}
	ort := info.ORT + " (" + info.ORTLib + ")"
	if info.ORTError != "" {
		ort = "not loaded: " + info.ORTError
	}
	fmt.Fprintf(w, "simsearch %s\ncommit:      %s\ngo:          %s\nkernel:      %s (available: %s)\nonnxruntime: %s\n",
		info.Version, commit, info.Go, info.Kernel, strings.Join(info.Kernels, ", "), ort)
	return nil
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:        "version",
		Usage:       "print the version, commit, distance kernel and ONNX Runtime version",
		Description: "The same as simsearch --version; --json for scripts.\n\nExample:\n   simsearch version --json | jq -r .kernel",
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usageError(c, "version takes no arguments")
			}
			return printBuildInfo(c.App.Writer, c.Bool("json"))
		},
	}
}
