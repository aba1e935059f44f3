package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// gnuTime runs a command and reports its peak RSS. The rusage this process gets for its own
// children would not do: a child started from this (large) process inherits its peak RSS at exec
// (Linux keeps the high-water mark of the image exec replaces), so every child would seem to use
// at least what the bench holds. GNU time's child is forked from time itself, which is small.
const gnuTime = "/usr/bin/time"

// measured is what runMeasured found of a whole process.
type measured struct {
	stdout    []byte
	wall, cpu time.Duration // cpu: user + system
	rssMB     float64       // peak resident set, MiB
}

// runMeasured runs cmd (its Args, Env and Dir) under GNU time, for its peak RSS, and times it.
// A failure names the command and holds its stderr.
func runMeasured(cmd *exec.Cmd) (measured, error) {
	rss, err := os.CreateTemp("", "simsearch-bench-rss-*")
	if err != nil {
		return measured{}, err
	}
	rss.Close()
	defer os.Remove(rss.Name())
	timed := exec.Command(gnuTime, append([]string{"-f", "%M", "-o", rss.Name(), "--"}, cmd.Args...)...)
	timed.Env, timed.Dir = cmd.Env, cmd.Dir
	var out, stderr bytes.Buffer
	timed.Stdout, timed.Stderr = &out, &stderr
	start := time.Now()
	if err := timed.Run(); err != nil {
		return measured{}, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	m := measured{stdout: out.Bytes(), wall: time.Since(start), cpu: timed.ProcessState.UserTime() + timed.ProcessState.SystemTime()}
	b, err := os.ReadFile(rss.Name())
	if err != nil {
		return m, err
	}
	kb, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return m, fmt.Errorf("%s -f %%M wrote %q: %w", gnuTime, b, err)
	}
	m.rssMB = kb / 1024
	return m, nil
}
