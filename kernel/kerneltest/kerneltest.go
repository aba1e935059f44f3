// Package kerneltest runs tests once per distance kernel (see package kernel).
package kerneltest

import (
	"testing"

	"simsearch/kernel"
)

// Each runs f as a subtest per kernel, with that kernel selected; kernels this CPU lacks are
// skipped by name with the reason. The kernel in use before is restored after.
func Each(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	defer kernel.Use(kernel.Name())
	for _, name := range kernel.Known() {
		t.Run(name, func(t *testing.T) {
			if err := kernel.Use(name); err != nil {
				t.Skipf("not tested on this machine: %v", err)
			}
			f(t)
		})
	}
}
