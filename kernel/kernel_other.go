//go:build !amd64 || purego

package kernel

// archImpls offers no assembly kernels on this architecture or in a purego build.
func archImpls() []impl { return nil }
