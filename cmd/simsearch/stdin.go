package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// stdinFile returns path unchanged, or for "-" a temporary file holding standard input (the
// decoders and the npy reader read files) and a function that removes it.
func stdinFile(path string, stdin io.Reader) (string, func(), error) {
	if path != "-" {
		return path, func() {}, nil
	}
	f, err := os.CreateTemp("", "simsearch-stdin-*")
	if err != nil {
		return "", nil, err
	}
	done := func() { os.Remove(f.Name()) }
	if _, err := io.Copy(f, stdin); err != nil {
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
