//go:build !unix

package rusage

func process() Faults { return Faults{} }
