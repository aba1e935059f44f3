package rusage

import "syscall"

// rusageThread is Linux's RUSAGE_THREAD, which package syscall does not name.
const rusageThread = 1

// Process returns the whole process's page faults so far.
func Process() Faults { return get(syscall.RUSAGE_SELF) }

// Thread returns the calling OS thread's page faults so far, and true. The caller compares two
// readings on the same thread, so it holds its goroutine there (runtime.LockOSThread) between
// them.
func Thread() (Faults, bool) { return get(rusageThread), true }

func get(who int) Faults {
	var ru syscall.Rusage
	if syscall.Getrusage(who, &ru) != nil {
		return Faults{}
	}
	return Faults{Minor: int64(ru.Minflt), Major: int64(ru.Majflt)}
}
