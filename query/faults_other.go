//go:build !unix

package query

// ProcessFaults returns zero: this system has no getrusage.
func ProcessFaults() Faults { return Faults{} }
