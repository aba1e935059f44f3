package kernel

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestMain says which kernels the run did not test, on stderr, after the tests: subtests of
// kernels the CPU lacks are skipped, and a skip is silent without -v (make test prints these
// lines: go test hides a passing package's output).
func TestMain(m *testing.M) {
	code := m.Run()
	for _, name := range Known() {
		if !slices.Contains(Available(), name) {
			fmt.Fprintf(os.Stderr, "kernel %s: NOT TESTED on this CPU (%s)\n", name, lacking(name))
		}
	}
	if asm := Available()[1:]; len(asm) < 2 {
		fmt.Fprintf(os.Stderr, "kernel choice by measurement: NOT TESTED on this CPU (assembly kernels: %v)\n", asm)
	}
	os.Exit(code)
}

// lacking says why a kernel is not available here.
func lacking(name string) string {
	switch {
	case runtime.GOARCH != "amd64":
		return "not amd64"
	case name == "avx512" && !cpu.X86.HasAVX512F:
		return "no AVX-512F"
	case name == "avx2" && !(cpu.X86.HasAVX2 && cpu.X86.HasFMA):
		return "no AVX2 and FMA"
	}
	return "a purego build"
}
