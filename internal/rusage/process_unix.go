//go:build unix && !linux

package rusage

import "syscall"

func process() Faults {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return Faults{}
	}
	return Faults{Minor: int64(ru.Minflt), Major: int64(ru.Majflt)}
}
