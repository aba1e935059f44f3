//go:build !linux

package rusage

// Process returns the whole process's page faults so far (zero where getrusage is missing).
func Process() Faults { return process() }

// Thread reports false: only Linux counts faults per thread.
func Thread() (Faults, bool) { return Faults{}, false }
