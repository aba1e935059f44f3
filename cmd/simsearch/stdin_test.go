package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stdinTempsIn lists the temporary files of standard input in dir.
func stdinTempsIn(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "simsearch-stdin-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// More of standard input than --max-stdin is refused, with the figure, and nothing is left in
// the temporary folder (before, any amount was copied there).
func TestStdinLimit(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "x.simidx")
	mustRun(t, "convert", testdata+"/npy/ok_f4", "-o", idx)
	tmp := t.TempDir()
	for _, args := range [][]string{{"-"}, {"--vector", "-"}} {
		cmd := child(append([]string{"query", "--index", idx, "--max-stdin", "1000"}, args...)...)
		cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
		cmd.Stdin = bytes.NewReader(make([]byte, 5000))
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err == nil || !strings.Contains(errb.String(), "reading standard input: more than 1000 bytes (--max-stdin)") {
			t.Errorf("query %v with 5000 bytes: %v, %q", args, err, errb.String())
		}
		if left := stdinTempsIn(t, tmp); len(left) != 0 {
			t.Errorf("query %v: left %v", args, left)
		}
	}
	if _, errs, code := simsearch(t, "query", "--index", idx, "--max-stdin", "0", "-"); code == 0 || !strings.Contains(errs, "--max-stdin must be at least 1") {
		t.Errorf("--max-stdin 0: exit %d, %q", code, errs)
	}
}

// A query reading an image from standard input, interrupted (SIGINT, SIGTERM) while it reads,
// removes its temporary file and ends as the signal would have ended it (before, the file
// stayed in /tmp).
func TestStdinSignals(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "x.simidx")
	mustRun(t, "convert", testdata+"/npy/ok_f4", "-o", idx)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			cmd := child("query", "--index", idx, "-")
			cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			in.Write([]byte("\x89PNG\r\n\x1a\n")) // and no more: the query waits for the rest
			deadline := time.Now().Add(time.Minute)
			for len(stdinTempsIn(t, tmp)) == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if len(stdinTempsIn(t, tmp)) != 1 {
				t.Fatal("no temporary file of standard input within a minute")
			}
			cmd.Process.Signal(sig)
			err = cmd.Wait()
			in.Close()
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if err == nil || !ok || !ws.Signaled() || ws.Signal() != sig {
				t.Errorf("after %v: %v (%v), want killed by the signal", sig, err, cmd.ProcessState)
			}
			if left := stdinTempsIn(t, tmp); len(left) != 0 {
				t.Errorf("after %v: left %v", sig, left)
			}
		})
	}
}

// query --vector - names its answers after "-", as query --engine does, not after the
// temporary file standard input was copied to.
func TestVectorStdinNames(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "x.simidx")
	mustRun(t, "convert", testdata+"/npy/ok_f4", "-o", idx)
	out := withStdin(t, testdata+"/npy/ok_f4/0000.features.npy", func() string {
		return mustRun(t, "query", "--index", idx, "--vector", "-", "-k", "1")
	})
	if !strings.Contains(out, "# -[0]") || !strings.Contains(out, "# -[1]") || strings.Contains(out, "simsearch-stdin") {
		t.Errorf("query --vector - printed %q; want answers named -[0], -[1], ...", out)
	}
}
