// Package fault turns a memory fault while reading a memory-mapped file into an error. A file
// truncated or rewritten in place under its mapping makes the next read of a vanished page raise
// SIGBUS, which by default kills the whole process; with the goroutine's panic-on-fault flag set,
// the Go runtime raises a recoverable panic instead, which Guard returns as an error.
package fault

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// ErrFault is wrapped by the errors Guard returns.
var ErrFault = errors.New("memory fault reading a mapped file (was the file changed in place?)")

// Guard runs f in the calling goroutine and returns ErrFault if f faulted reading memory. Other
// panics go on. Goroutines that f starts are not covered: each must call Guard itself.
func Guard(f func()) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if a, ok := p.(interface{ Addr() uintptr }); ok {
				err = fmt.Errorf("%w: at address %#x", ErrFault, a.Addr())
				return
			}
			panic(p)
		}
	}()
	f()
	return nil
}
