package fault

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edsrzf/mmap-go"
)

// A file truncated under its mapping faults on the next read of a vanished page; Guard returns
// that as ErrFault instead of the process dying of SIGBUS.
func TestGuardTruncatedMapping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmap()
	var sum byte
	if err := Guard(func() { sum += m[len(m)-1] }); err != nil {
		t.Fatalf("reading the intact mapping: %v", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	err = Guard(func() { sum += m[len(m)-1] })
	if !errors.Is(err, ErrFault) {
		t.Fatalf("reading a truncated mapping: %v, want ErrFault", err)
	}
	// Other panics are not swallowed.
	defer func() {
		if p := recover(); p != "other" {
			t.Errorf("recovered %v, want the panic to go on", p)
		}
	}()
	Guard(func() { panic("other") })
}
