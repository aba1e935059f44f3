package embed

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/edsrzf/mmap-go"
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
	return filepath.Join(dir, fmt.Sprintf("%.32s-ort%s-cpu%s.ort", src.sha256, v, cpuTag()))
}

func newSession(data []byte, cfg Config, opts *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
	defer opts.Destroy()
	return ort.NewDynamicAdvancedSessionWithONNXData(data, []string{cfg.Input}, []string{cfg.Output}, opts)
}

// openCached makes the session from the cached optimised graph when there is one, and otherwise
// from the model, saving its optimised graph for next time (atomically: a temporary file renamed
// once the session that wrote it works). The cache holds the graph in ONNX Runtime's own ORT
// format, which loads without parsing protobuf, and the session uses the file's mapped bytes in
// place instead of copying them: the mapping (returned) must outlive the session.
func openCached(src *Source, dir string) (*ort.DynamicAdvancedSession, mmap.MMap, error) {
	full := func(saveTo string) (*ort.DynamicAdvancedSession, error) {
		opts, err := sessionOptions(src.cfg, ort.GraphOptimizationLevelEnableAll, saveTo)
		if err == nil && saveTo != "" {
			if err = opts.AddSessionConfigEntry("session.save_model_format", "ORT"); err != nil {
				opts.Destroy()
			}
		}
		if err != nil {
			return nil, err
		}
		return newSession(src.data, src.cfg, opts)
	}
	if dir == "" {
		sess, err := full("")
		return sess, nil, err
	}
	path := cachePath(dir, src)
	if sess, m, err := openORT(path, src.cfg); err == nil {
		return sess, m, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		os.Remove(path) // damaged or foreign: rebuild it
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		sess, err := full("") // no cache, no harm
		return sess, nil, err
	}
	tmp := fmt.Sprintf("%s.tmp-%d.ort", strings.TrimSuffix(path, ".ort"), os.Getpid())
	sess, err := full(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, nil, err
	}
	if os.Rename(tmp, path) != nil {
		os.Remove(tmp)
	}
	return sess, nil, nil
}

// openORT makes a session from a cached ORT-format graph, used in place from its mapping.
func openORT(path string, cfg Config) (*ort.DynamicAdvancedSession, mmap.MMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	m, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	opts, err := sessionOptions(cfg, ort.GraphOptimizationLevelDisableAll, "")
	if err == nil {
		err = errors.Join(
			opts.AddSessionConfigEntry("session.load_model_format", "ORT"),
			opts.AddSessionConfigEntry("session.use_ort_model_bytes_directly", "1"),
			opts.AddSessionConfigEntry("session.use_ort_model_bytes_for_initializers", "1"),
		)
		if err != nil {
			opts.Destroy()
		}
	}
	if err != nil {
		m.Unmap()
		return nil, nil, err
	}
	sess, err := newSession(m, cfg, opts)
	if err != nil {
		m.Unmap()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return sess, m, nil
}
