package pil

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// waitFor spins until n goroutines wait in b.acquire: a decode that must wait is seen waiting.
func waitFor(b *budget, n int64) {
	for {
		b.mu.Lock()
		w := b.waiting
		b.mu.Unlock()
		if w >= n {
			return
		}
		runtime.Gosched()
	}
}

// The small lane: with the large lane full, small images still go through at once, up to their
// quarter; a large one waits for a large one to finish, and one larger than its lane waits to
// be alone, or is refused.
func TestBudgetLanes(t *testing.T) {
	b := newBudget(1600) // small: up to 100 each, 400 together; large: 1200 together
	big, err := b.acquire("PNG", 1200)
	if err != nil || big.lane != 1 {
		t.Fatalf("acquire 1200: %v, lane %d", err, big.lane)
	}
	var small []grant
	for range 4 {
		g, err := b.acquire("PNG", 100) // returns at once: the large lane is full, this is not
		if err != nil || g.lane != 0 {
			t.Fatalf("acquire 100: %v, lane %d", err, g.lane)
		}
		small = append(small, g)
	}
	got := make(chan grant)
	go func() { g, _ := b.acquire("PNG", 100); got <- g }() // the small lane is full now
	go func() { g, _ := b.acquire("PNG", 101); got <- g }() // over 100: large
	waitFor(b, 2)
	b.release(small[0])
	if g := <-got; g.n != 100 {
		t.Errorf("a small release let through %d bytes, want the small image", g.n)
	}
	b.release(big)
	if g := <-got; g.n != 101 {
		t.Errorf("got %d", g.n)
	}
	if b.held != [2]int64{400, 101} || b.peak != 1600 {
		t.Errorf("held %v, peak %d; want [400 101], 1600", b.held, b.peak)
	}

	// Larger than the large lane: alone (Pillow's behaviour), or refused.
	alone := make(chan grant)
	go func() { g, _ := b.acquire("PNG", 5000); alone <- g }()
	waitFor(b, 1)
	b.release(grant{lane: 1, n: 101})
	if g := <-alone; g.n != 5000 || b.held[1] != 5000 {
		t.Errorf("the 5000-byte image got %d, large lane holds %d", g.n, b.held[1])
	}
	b.refuse = true
	if _, err := b.acquire("PNG", 1201); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than one image may hold here") {
		t.Errorf("refusing: %v", err)
	}
}

// Decodes in flight never hold more than the budget, estimated from their headers, and give
// it all back.
func TestDecodeBudget(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(images, "chelsea.png"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Options{}.plan(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func(limit int64) { decodeBudget = newBudget(limit) }(decodeBudget.limit)
	for _, limit := range []int64{p.cost * 4, p.cost * 2} { // 2 at once in the large lane, then 1
		decodeBudget = newBudget(limit)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := Decode(data)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("budget %d: %v", limit, err)
			}
		}
		if peak := decodeBudget.peak; peak > limit*3/4 || peak < p.cost {
			t.Errorf("budget %d, one decode %d: peak held %d", limit, p.cost, peak)
		}
		if decodeBudget.held != [2]int64{} {
			t.Errorf("budget %d: %v bytes still held after the decodes", limit, decodeBudget.held)
		}
	}
}

// Between Pillow's MAX_IMAGE_PIXELS and twice it, Pillow warns and loads; so does Decode, with
// Pillow's words, through Options.Warn (prefixed by the file name when opening a file). Below,
// no warning; above twice, a refusal and no warning.
func TestDecompressionBombWarning(t *testing.T) {
	var warnings []string
	o := Options{Warn: func(msg string) { warnings = append(warnings, msg) }}
	path := filepath.Join(hostile, "loadable", "warn_10000x9000_1bit.png")
	img, err := o.OpenResized(path, 224, 224)
	if err != nil || img.W != 224 {
		t.Fatalf("OpenResized: %v", err)
	}
	want := path + ": Image size (90000000 pixels) exceeds limit of 89478485 pixels, could be decompression bomb DOS attack"
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], want) {
		t.Errorf("warnings %q, want one starting %q", warnings, want)
	}
	warnings = nil
	for _, tc := range []struct {
		name   string
		tooBig bool // past twice the limit: refused, as Pillow raises DecompressionBombError
	}{{"loadable/bomb_4000x4000_1bit.png", false}, {"bomb_20000x20000_1bit.png", true}} {
		data, err := os.ReadFile(filepath.Join(hostile, tc.name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.DecodeResized(data, 224, 224); tc.tooBig != errors.Is(err, ErrTooLarge) || !tc.tooBig && err != nil {
			t.Errorf("%s: %v, want refused as too large: %v", tc.name, err, tc.tooBig)
		}
	}
	if len(warnings) != 0 {
		t.Errorf("16 and 400 million pixels: warnings %q, want none", warnings)
	}
}
