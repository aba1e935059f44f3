package embed

import (
	"time"

	"simsearch/pil"
)

// ReadImage decodes the image file at path and resizes it to the configured input size, as the
// Python pipeline's Image.open(p).convert("RGB").resize((size, size)) does. It needs no model,
// so callers can decode while the model loads; Model.Tensor finishes the preparation.
func (c Config) ReadImage(path string) (*pil.RGB, error) {
	return pil.OpenResized(path, c.Size, c.Size)
}

// DecodeImage is ReadImage for an image already in memory (an upload).
func (c Config) DecodeImage(data []byte) (*pil.RGB, error) {
	return pil.DecodeResized(data, c.Size, c.Size)
}

// PrepareFile decodes and resizes the image file at path and writes its model input to dst,
// which has room for InputLen floats.
func (m *Model) PrepareFile(path string, dst []float32) error {
	img, err := m.cfg.ReadImage(path)
	if err != nil {
		return err
	}
	m.Tensor(img, dst)
	return nil
}

// PrepareBytes is PrepareFile for an image in memory.
func (m *Model) PrepareBytes(data []byte, dst []float32) error {
	img, err := m.cfg.DecodeImage(data)
	if err != nil {
		return err
	}
	m.Tensor(img, dst)
	return nil
}

// OpenModel is the whole model-opening sequence of a command: it loads ONNX Runtime from lib
// ("" for the flag-less default, see LibraryPath) while the model file is read, hashed and
// checked, then creates the session, with the optimised-graph cache in cacheDir ("" for none).
// It returns the model and the time it took.
func OpenModel(cfg Config, lib, cacheDir string) (*Model, time.Duration, error) {
	start := time.Now()
	lib, err := LibraryPath(lib)
	if err != nil {
		return nil, 0, err
	}
	var st LoadStats
	initErr := make(chan error, 1)
	go func() {
		var err error
		var known bool
		st.ORTInit, st.ORTInitFaults, known = threadStep(func() { err = Init(lib) })
		st.FaultsKnown = known
		initErr <- err
	}()
	var src *Source
	st.Read, st.ReadFaults, _ = threadStep(func() { src, err = ReadModel(cfg) })
	if ierr := <-initErr; ierr != nil {
		return nil, 0, ierr
	}
	if err != nil {
		return nil, 0, err
	}
	m, err := src.Open(cacheDir)
	if err != nil {
		return nil, 0, err
	}
	st.Session, st.SessionFaults = m.load.Session, m.load.SessionFaults
	st.FaultsKnown = st.FaultsKnown && m.load.FaultsKnown
	m.load = st
	return m, time.Since(start), nil
}
