// Package rusage counts page faults (getrusage): minor ones map a page already in memory (the
// page cache, or a fresh zero page), major ones wait for the disk. A one-shot query over a mapped
// index pays one per page it touches, which is why the commands report them per phase.
package rusage

// Faults counts page faults.
type Faults struct {
	Minor, Major int64
}

// Sub returns f − before.
func (f Faults) Sub(before Faults) Faults {
	return Faults{Minor: f.Minor - before.Minor, Major: f.Major - before.Major}
}

// Add returns f + g.
func (f Faults) Add(g Faults) Faults {
	return Faults{Minor: f.Minor + g.Minor, Major: f.Major + g.Major}
}
