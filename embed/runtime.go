package embed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ORTVersion is the ONNX Runtime release scripts/setup.sh installs.
const ORTVersion = "1.30.0"

// LibEnv names the environment variable that points at the ONNX Runtime shared library.
const LibEnv = "ONNXRUNTIME_LIB"

// DefaultLibraryPath is where scripts/setup.sh installs ONNX Runtime: the user's cache dir.
func DefaultLibraryPath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = filepath.Join(os.TempDir(), "simsearch-cache")
	}
	return filepath.Join(dir, "simsearch", "onnxruntime-"+ORTVersion, "libonnxruntime.so.1")
}

// LibraryPath resolves the ONNX Runtime library: the flag's value if set, else $ONNXRUNTIME_LIB,
// else DefaultLibraryPath. It fails, saying how to fix it, if the file is not there.
func LibraryPath(flag string) (string, error) {
	path, from := flag, "--ort-lib"
	if path == "" {
		path, from = os.Getenv(LibEnv), "$"+LibEnv
	}
	if path == "" {
		path, from = DefaultLibraryPath(), "the default location"
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("ONNX Runtime library not found at %s (%s): run `make setup`, or point --ort-lib or %s at libonnxruntime.so", path, from, LibEnv)
	}
	return path, nil
}

var (
	initOnce sync.Once
	initErr  error
	initLib  string
)

// Init loads the ONNX Runtime shared library at path. The library is process-wide: later calls
// with the same path do nothing, with another path fail.
func Init(path string) error {
	initOnce.Do(func() {
		initLib = path
		ort.SetSharedLibraryPath(path)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("loading ONNX Runtime from %s: %w", path, err)
		}
	})
	if initErr == nil && path != initLib {
		return errors.New("ONNX Runtime is already loaded from " + initLib)
	}
	return initErr
}
