//go:build unix

package query

import "syscall"

// ProcessFaults returns the process's page faults so far (getrusage).
func ProcessFaults() Faults {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return Faults{}
	}
	return Faults{Minor: int64(ru.Minflt), Major: int64(ru.Majflt)}
}
