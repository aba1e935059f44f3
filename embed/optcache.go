package embed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
	"golang.org/x/sys/cpu"
)

// The optimised-model cache. ONNX Runtime spends most of a session's creation optimising the
// graph (fusions, constant folding, layouts for the CPU's vector units). It can save the result;
// a session made from the saved graph with optimisations off computes the same outputs and
// starts in a few milliseconds. The saved graph depends on the model, the ONNX Runtime version
// and the CPU's vector features, so all three name the file. A cached file that fails to load is
// removed and rebuilt.

// DefaultCacheDir is where the optimised graphs go: the user's cache dir.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "simsearch", "optimized-models")
}

// cpuTag summarises the CPU features ONNX Runtime's optimisations may depend on.
func cpuTag() string {
	f := fmt.Sprint(cpu.X86.HasAVX, cpu.X86.HasAVX2, cpu.X86.HasFMA, cpu.X86.HasAVX512F, cpu.X86.HasAVX512BW,
		cpu.X86.HasAVX512VL, cpu.X86.HasAVX512VNNI, cpu.X86.HasAVX512BF16, cpu.X86.HasAVXVNNI, cpu.ARM64.HasASIMD)
	h := sha256.Sum256([]byte(f))
	return hex.EncodeToString(h[:4])
}

// cachePath names the cached graph after the model, the ONNX Runtime library actually loaded
// (ort.GetVersion: ONNXRUNTIME_LIB may point at another release than the one setup installs) and
// the CPU.
func cachePath(dir string, src *Source) string {
	v := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' {
			return r
		}
		return '_'
	}, ort.GetVersion())
	return filepath.Join(dir, fmt.Sprintf("%.32s-ort%s-cpu%s.onnx", src.sha256, v, cpuTag()))
}

func newSession(data []byte, cfg Config, opts *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
	defer opts.Destroy()
	return ort.NewDynamicAdvancedSessionWithONNXData(data, []string{cfg.Input}, []string{cfg.Output}, opts)
}

// openCached makes the session from the cached optimised graph when there is one, and otherwise
// from the model, saving its optimised graph for next time (atomically: a temporary file renamed
// once the session that wrote it works).
func openCached(src *Source, dir string) (*ort.DynamicAdvancedSession, error) {
	full := func(saveTo string) (*ort.DynamicAdvancedSession, error) {
		opts, err := sessionOptions(src.cfg, ort.GraphOptimizationLevelEnableAll, saveTo)
		if err != nil {
			return nil, err
		}
		return newSession(src.data, src.cfg, opts)
	}
	if dir == "" {
		return full("")
	}
	path := cachePath(dir, src)
	if data, err := os.ReadFile(path); err == nil {
		opts, err := sessionOptions(src.cfg, ort.GraphOptimizationLevelDisableAll, "")
		if err != nil {
			return nil, err
		}
		if sess, err := newSession(data, src.cfg, opts); err == nil {
			return sess, nil
		}
		os.Remove(path) // damaged or foreign: rebuild it
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return full("") // no cache, no harm
	}
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	sess, err := full(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if os.Rename(tmp, path) != nil {
		os.Remove(tmp)
	}
	return sess, nil
}
