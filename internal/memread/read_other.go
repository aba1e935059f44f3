//go:build !amd64 || purego

package memread

// archReaders offers no vector readers on this architecture or in a purego build.
func archReaders() []reader { return nil }
