package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"simsearch/embed"
	"simsearch/kernel"
)

func render(c config, d *dataset, samples []*sample, loads []loadResult, numpy bool, defaultKernel, defaultReason string) string {
	find := func(prefix string) *sample {
		for _, s := range samples {
			if strings.HasPrefix(s.name, prefix) {
				return s
			}
		}
		return nil
	}
	base := find("npy baseline")
	var b strings.Builder
	fmt.Fprintf(&b, "# simsearch benchmark results\n\n")
	fmt.Fprintf(&b, "Made by `make bench` (`go run ./bench`) on %s. %d × %d float32 vectors (%.0f MB) in %d-row seed-layout shards, page cache warm; "+
		"medians of %d rounds in which the measurements take turns (plus one warm-up round); ratios are between figures of this run.\n\n",
		time.Now().UTC().Format("2006-01-02"), d.rows, d.dim, float64(d.rows*d.dim*4)/1e6, d.shardRows, c.rounds)
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine(defaultKernel, defaultReason))

	fmt.Fprintf(&b, "| measurement | median | × faster than the npy baseline |\n|---|---:|---:|\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", s.name, dur(s.median()), ratio(base.median(), s.median()))
	}

	img := find("simsearch query IMAGE")
	if img != nil && len(img.phases) > 0 {
		fmt.Fprintf(&b, "\nPhases of `simsearch query IMAGE` as it reports them (`--json --timings`, medians, ms): ")
		var parts []string
		for _, k := range []string{"index_open", "model_load", "decode", "inference", "index_wait", "scan", "total"} {
			if v, ok := img.phases[k]; ok {
				parts = append(parts, fmt.Sprintf("%s %.1f", k, medianF(v)))
			}
		}
		fmt.Fprintf(&b, "%s. The process's own start and exit are the rest of its wall-clock time.\n", strings.Join(parts, ", "))
	}

	fmt.Fprintf(&b, "\n## Server under load\n\n`simsearch serve` on loopback, the same index and image; %d concurrent clients, each run bounded to %d requests and %s, after one untimed request per client.\n\n",
		loads[0].clients, c.loadRequests, c.loadTime)
	fmt.Fprintf(&b, "| requests | done | errors | p50 latency | p99 latency | queries per second |\n|---|---:|---:|---:|---:|---:|\n")
	for _, l := range loads {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %.1f |\n", l.name, l.reqs, l.errors, dur(l.p50), dur(l.p99), float64(l.reqs)/l.elapsed.Seconds())
	}

	fmt.Fprintf(&b, "\n## Goals\n\nEach ratio is the median over rounds of the ratio of the two measurements taken in the same round, seconds apart: it cancels this shared machine's slow swings better than a ratio of medians.\n\n| goal | measured | met |\n|---|---:|:---:|\n")
	var bestScan *sample
	for _, s := range samples {
		if strings.HasPrefix(s.name, "exact top-10 scan") && (bestScan == nil || s.median() < bestScan.median()) {
			bestScan = s
		}
	}
	goal := func(what string, v float64, ok bool, format string) {
		mark := "no"
		if ok {
			mark = "yes"
		}
		fmt.Fprintf(&b, "| %s | "+format+" | %s |\n", what, v, mark)
	}
	if bestScan != nil {
		k := strings.TrimPrefix(bestScan.name, "exact top-10 scan, in process, kernel ")
		r := paired(find(readName(k)), bestScan)
		goal("full scan at ≥ 0.8 × memory-read speed (read time / scan time, kernel "+k+", the read with its loads)", r, r >= 0.8, "%.2f")
	}
	if numpy {
		np := find("the seed's numpy loop")
		if img != nil {
			r := paired(img, np)
			goal("query IMAGE ≤ 0.30 × the numpy loop (whole processes)", r, r <= 0.30, "%.2f")
		}
		r := paired(np, find("simsearch query --vector"))
		goal("query --vector ≥ 12 × faster than the numpy loop (whole processes)", r, r >= 12, "%.1f")
	}
	conv := find("simsearch convert")
	r := paired(conv, find("cp of the same shard files"))
	goal("convert ≤ 2 × cp of the same bytes", r, r <= 2, "%.2f")
	r = paired(conv, find("cp of the same shard files, then sync"))
	goal("(for reference: convert / (cp + sync), both durable)", r, r <= 2, "%.2f")

	fmt.Fprintf(&b, "\nReproduce: `make bench` (the dataset is generated once into `bench/data/`, %.0f MB). "+
		"Kernel micro-benchmarks: `go test ./kernel ./knn -run '^$' -bench .`.\n", float64(d.shardsBytes)/1e6)
	return b.String()
}

// paired is the median over rounds of a's time divided by b's in the same round.
func paired(a, b *sample) float64 {
	var r []float64
	for i := range min(len(a.times), len(b.times)) {
		r = append(r, float64(a.times[i])/float64(b.times[i]))
	}
	return medianF(r)
}

func dur(t time.Duration) string {
	switch {
	case t >= time.Second:
		return fmt.Sprintf("%.2f s", t.Seconds())
	case t >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(t.Microseconds())/1000)
	}
	return fmt.Sprintf("%.0f µs", float64(t.Nanoseconds())/1000)
}

func ratio(base, t time.Duration) string {
	r := float64(base) / float64(t)
	if r >= 10 {
		return fmt.Sprintf("%.0f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

// machine describes the CPU, cores, memory, OS kernel, Go, ONNX Runtime and distance kernels.
func machine(defaultKernel, defaultReason string) string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		for s := bufio.NewScanner(f); s.Scan(); {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
	}
	osk, _ := exec.Command("uname", "-sr").Output()
	return fmt.Sprintf("%s, %d cores%s, %s, %s, ONNX Runtime %s, kernels %s (default %s: %s)",
		cpu, runtime.NumCPU(), mem, strings.TrimSpace(string(osk)), runtime.Version(), embed.ORTVersion,
		strings.Join(kernel.Available(), "/"), defaultKernel, defaultReason)
}
