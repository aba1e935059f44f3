package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws a one-line progress bar on stderr when stderr is a terminal, and nothing
// otherwise (scripts and logs get the final summary only).
type progress struct {
	w     io.Writer
	label string
	start time.Time
	last  time.Time
}

func newProgress(label string) *progress {
	st, err := os.Stderr.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return &progress{}
	}
	return &progress{w: os.Stderr, label: label, start: time.Now()}
}

func (p *progress) update(done, total int) {
	if p.w == nil || total <= 0 || (time.Since(p.last) < 100*time.Millisecond && done < total) {
		return
	}
	p.last = time.Now()
	const width = 30
	n := width * done / total
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %.1fs", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n), done, total, time.Since(p.start).Seconds())
	if done >= total {
		fmt.Fprintln(p.w)
	}
}
