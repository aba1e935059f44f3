package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"
)

// defaultMaxStdin is query's --max-stdin: as much as the decode budget, for an image.
const defaultMaxStdin = 1 << 30

// stdinFile returns path unchanged, or for "-" a temporary file holding standard input (the
// decoders and the npy reader read files) and a function that removes it. More than limit bytes
// are refused, and removed. Until the function is called, SIGINT and SIGTERM remove the file
// too, then end the process as the signal would have.
func stdinFile(path string, stdin io.Reader, limit int64) (string, func(), error) {
	if path != "-" {
		return path, func() {}, nil
	}
	f, err := temps.create()
	if err != nil {
		return "", nil, err
	}
	done := func() { temps.remove(f.Name()) }
	n, err := io.Copy(f, io.LimitReader(stdin, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("more than %d bytes (--max-stdin); give a file instead", limit)
	}
	if err != nil {
		f.Close()
		done()
		return "", nil, fmt.Errorf("reading standard input: %w", err)
	}
	if err := f.Close(); err != nil {
		done()
		return "", nil, err
	}
	return f.Name(), done, nil
}

// stdinPaths is stdinFile for each of a command's image arguments, with its --max-stdin; done
// removes the temporary files.
func stdinPaths(c *cli.Context, paths []string) (out []string, done func(), err error) {
	var dones []func()
	done = func() {
		for _, d := range dones {
			d()
		}
	}
	out = make([]string, len(paths))
	for i, p := range paths {
		var d func()
		if out[i], d, err = stdinFile(p, c.App.Reader, c.Int64("max-stdin")); err != nil {
			done()
			return nil, nil, err
		}
		dones = append(dones, d)
	}
	return out, done, nil
}

// temps are the temporary files of standard input that a signal must not leave behind.
var temps = &stdinTemps{names: map[string]bool{}, sigs: make(chan os.Signal, 1)}

type stdinTemps struct {
	mu    sync.Mutex
	names map[string]bool
	sigs  chan os.Signal
	once  sync.Once
}

// create makes a temporary file and registers it, catching SIGINT and SIGTERM while there is
// one. The signals are caught before the file exists, and a signal that comes while it is being
// made waits for the lock, so no instant leaves a file that a signal would not remove.
func (t *stdinTemps) create() (*os.File, error) {
	t.once.Do(func() { go t.catch() })
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.names) == 0 {
		signal.Notify(t.sigs, syscall.SIGINT, syscall.SIGTERM)
	}
	f, err := os.CreateTemp("", "simsearch-stdin-*")
	if err != nil {
		if len(t.names) == 0 {
			signal.Stop(t.sigs)
		}
		return nil, err
	}
	t.names[f.Name()] = true
	return f, nil
}

// remove removes the file, and lets the signals be as they were once none is left.
func (t *stdinTemps) remove(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	os.Remove(name)
	delete(t.names, name)
	if len(t.names) == 0 {
		signal.Stop(t.sigs)
	}
}

// catch removes every file at a signal, then sends the signal again, uncaught.
func (t *stdinTemps) catch() {
	for sig := range t.sigs {
		t.mu.Lock()
		for name := range t.names {
			os.Remove(name)
		}
		signal.Reset(sig)
		syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		t.mu.Unlock()
	}
}

// idArgs returns the ids given as arguments, with "-" replaced by the lines of standard input.
func idArgs(args []string, stdin io.Reader) ([]string, error) {
	var ids []string
	for _, a := range args {
		if a != "-" {
			ids = append(ids, a)
			continue
		}
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		read := 0
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), "\r"); line != "" {
				ids = append(ids, line)
				read++
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading ids from standard input: %w", err)
		}
		if read == 0 {
			return nil, errors.New(`no ids given on standard input ("-"): want one per line`)
		}
	}
	return ids, nil
}
