package query

import "simsearch/internal/rusage"

// Faults counts page faults: minor ones map a page already in memory (the page cache), major
// ones wait for the disk. A one-shot query over a mapped index pays one per page it touches.
type Faults = rusage.Faults

// ProcessFaults returns the process's page faults so far (getrusage; zero where it is missing).
func ProcessFaults() Faults { return rusage.Process() }
