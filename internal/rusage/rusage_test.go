package rusage

import (
	"runtime"
	"testing"
)

// TestThreadCountsItsOwnFaults touches fresh pages on a locked thread and checks that the thread's
// minor faults grow by about as many while the process's grow at least as much.
func TestThreadCountsItsOwnFaults(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, ok := Thread()
	if !ok {
		t.Skip("no per-thread counts on this system")
	}
	pbefore := Process()
	const pages = 2000
	b := make([]byte, pages*4096) // fresh memory from the OS: a minor fault per page touched
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	got, _ := Thread()
	d, pd := got.Sub(before), Process().Sub(pbefore)
	if d.Minor < pages/2 || d.Minor > 4*pages {
		t.Errorf("%d pages touched: the thread counts %+v", pages, d)
	}
	if pd.Minor < d.Minor {
		t.Errorf("the process counts %+v, fewer than its thread's %+v", pd, d)
	}
	runtime.KeepAlive(b)
}
