package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"simsearch/shard"
)

// loadResult is one bounded load run against the server.
type loadResult struct {
	name, index   string // the requests, and the index served
	clients, reqs int
	elapsed       time.Duration
	p50, p99      time.Duration
	errors        int
}

// serverLoad starts `simsearch serve` on a loopback port and runs, one after the other, image
// and vector queries from `clients` concurrent clients, each run bounded to `requests` requests
// and to `limit` time. The server only ever listens on 127.0.0.1.
func serverLoad(c config, idx, queryVec string, clients, requests int, limit time.Duration) ([]loadResult, error) {
	cmd := exec.Command(c.bin, "serve", "--index", idx, "--model", c.model, "--allow-model-mismatch", "--addr", "127.0.0.1:0", "--quiet")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	// The server announces "simsearch: serving … on http://ADDR/".
	addr := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if _, url, ok := strings.Cut(s.Text(), " on http://"); ok {
				addr <- "http://" + strings.TrimSuffix(url, "/")
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	var base string
	select {
	case base = <-addr:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("serve did not start")
	}

	img, err := os.ReadFile(c.image)
	if err != nil {
		return nil, err
	}
	vec, err := vectorJSON(queryVec)
	if err != nil {
		return nil, err
	}
	var out []loadResult
	for _, run := range []struct {
		name, path, ctype string
		body              []byte
	}{
		{"POST /search (image: decode, inference, scan)", "/search?k=10", "image/jpeg", img},
		{"POST /search/vector (scan only)", "/search/vector?k=10", "application/json", vec},
	} {
		r, err := load(base+run.path, run.ctype, run.body, clients, requests, limit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", run.name, err)
		}
		r.name = run.name
		out = append(out, r)
	}
	return out, nil
}

// load sends requests from clients goroutines until requests are done or limit passes.
func load(url, ctype string, body []byte, clients, requests int, limit time.Duration) (loadResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var (
		mu    sync.Mutex
		lat   []time.Duration
		errs  int
		sent  int
		first error
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	// One request per client first, untimed: connections and the server's first batch.
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := client.Post(url, ctype, bytes.NewReader(body)); err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if sent >= requests || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				sent++
				mu.Unlock()
				t := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
				req.Header.Set("Content-Type", ctype)
				res, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						errs++
						if first == nil {
							first = err
						}
					}
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return loadResult{}, fmt.Errorf("no request succeeded: %v", first)
	}
	slices.Sort(lat)
	return loadResult{clients: clients, reqs: len(lat), elapsed: elapsed, p50: lat[len(lat)/2], p99: lat[min(len(lat)-1, len(lat)*99/100)], errors: errs}, nil
}

func vectorJSON(path string) ([]byte, error) {
	v, _, err := shard.ReadVectors(path)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(`{"vector": [`)
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%g", x)
	}
	b.WriteString("]}")
	return []byte(b.String()), nil
}
