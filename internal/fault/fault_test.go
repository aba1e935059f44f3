package fault

import (
	"errors"
	"testing"

	"simsearch/internal/fault/faulttest"
)

// A file truncated under its mapping faults on the next read of a vanished page; Guard returns
// that as ErrFault instead of the process dying of SIGBUS.
func TestGuardTruncatedMapping(t *testing.T) {
	m, shrink := faulttest.Map(t, make([]byte, 1<<20))
	var sum byte
	if err := Guard(func() { sum += m[len(m)-1] }); err != nil {
		t.Fatalf("reading the intact mapping: %v", err)
	}
	shrink(0)
	err := Guard(func() { sum += m[len(m)-1] })
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
