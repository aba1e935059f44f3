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

func render(c config, d *dataset, samples []*sample, loads []loadResult, pb *pruneBench, defaultKernel, defaultReason string) string {
	find := findSample(samples)
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

	for _, s := range pb.sets {
		img := find(imageName(s))
		if img == nil || len(img.phases) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\nPhases of `simsearch query IMAGE` on the %s index as it reports them (`--json --timings`, medians, ms; page faults minor): ", s.short)
		var parts []string
		for _, k := range []string{"index_open", "model_load", "ort_init", "model_read", "session", "decode", "inference", "index_wait", "scan", "total"} {
			if v, ok := img.phases[k]; ok {
				p := fmt.Sprintf("%s %.1f", k, medianF(v))
				if f, ok := img.phases[k+"_faults_minor"]; ok {
					p += fmt.Sprintf(" (%.0f faults)", medianF(f))
				}
				parts = append(parts, p)
			}
		}
		fmt.Fprintf(&b, "%s; the whole process %.0f faults. The process's own start and exit are the rest of its wall-clock time.\n",
			strings.Join(parts, ", "), medianF(img.phases["process_faults_minor"]))
	}

	fmt.Fprintf(&b, "\n## Server under load\n\n`simsearch serve` on loopback, the same image and each index's query vector; %d concurrent clients, each run bounded to %d requests and %s, after one untimed request per client.\n\n",
		loads[0].clients, c.loadRequests, c.loadTime)
	fmt.Fprintf(&b, "| index | requests | done | errors | p50 latency | p99 latency | queries per second |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, l := range loads {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %.1f |\n", l.index, l.name, l.reqs, l.errors, dur(l.p50), dur(l.p99), qps(l))
	}

	fmt.Fprintf(&b, "\n## Goals\n\nEach ratio is the median over rounds of the ratio of the two measurements taken in the same round, seconds apart: it cancels this shared machine's slow swings better than a ratio of medians. A missed goal says why, with figures of this run.\n\n| goal | measured | met | why, when missed |\n|---|---:|:---:|---|\n")
	goal := func(what, measured string, ok bool, why string) {
		mark := "no"
		if ok {
			mark, why = "yes", ""
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", what, measured, mark, why)
	}
	var bestScan *sample
	for _, s := range samples {
		if strings.HasPrefix(s.name, "exact top-10 scan") && (bestScan == nil || s.median() < bestScan.median()) {
			bestScan = s
		}
	}
	if bestScan != nil {
		k := strings.TrimPrefix(bestScan.name, "exact top-10 scan, in process, kernel ")
		r := paired(find(readName(k)), bestScan)
		goal("full scan at ≥ 0.8 × memory-read speed (read time / scan time, kernel "+k+", the read with its loads)", fmt.Sprintf("%.2f", r), r >= 0.8,
			"the scan's arithmetic does not hide behind the memory reads on this CPU")
	}
	// The pruned search, in process.
	if s := pb.set("mixed"); s != nil {
		m := find(alternatingName(s))
		t, r := medianF(m.phases["auto_ms"]), medianF(m.phases["ratio"])
		visited := medianF(m.phases["visited"])
		goal("exact top-10 in process on real-ish + synthetic (one query at a time, 2 cores): median ≤ 1 ms, or ≥ 10 × the full scan", fmt.Sprintf("%s, %.1f×", durMS(t), r), t <= 1 || r >= 10,
			fmt.Sprintf("each query reads %.1f MB of signature prefixes (and the rest of the signatures of the groups of rows they do not rule out) and visits %.0f rows (%.1f MB read at random) on this machine, whose full scan takes %s",
				float64(s.sec.PrefixBytes())/1e6, visited, visited*float64(s.dim*4)/1e6, durMS(medianF(m.phases["full_ms"]))))
	}
	for _, short := range []string{"synthetic", "all-equal", "one-cluster"} {
		s := pb.set(short)
		if s == nil {
			continue
		}
		m := find(alternatingName(s))
		r := medianF(m.phases["auto_over_full"])
		goal(fmt.Sprintf("--scan auto ≤ 1.10 × the full scan where pruning cannot help: %s", s.name), fmt.Sprintf("%.3f", r), r <= 1.10,
			fmt.Sprintf("auto pays the query's projection, the prefix bounds and its first visits (%.0f rows) before it gives up: %s against %s", medianF(m.phases["visited"]), durMS(medianF(m.phases["auto_ms"])), durMS(medianF(m.phases["full_ms"]))))
	}
	// Whole processes, on each index.
	for _, s := range pb.sets {
		v, img, np := find(vectorName(s)), find(imageName(s)), find(numpyName(s))
		if v == nil || img == nil || np == nil {
			continue
		}
		full := find(alternatingName(s))
		r := paired(np, v)
		goal(fmt.Sprintf("query --vector ≥ 30 × faster than the numpy loop (whole processes, %s index)", s.short), fmt.Sprintf("%.1f", r), r >= 30,
			fmt.Sprintf("%s a process: its scan took %s with %.0f minor page faults (the same search in a warm process: %s), index_open %s; the process's start-up and exit (wall time − its own total) %s; the whole process faulted %.0f times",
				scanCause(v), durMS(medianF(v.phases["scan"])), medianF(v.phases["scan_faults_minor"]), durMS(medianF(full.phases["auto_ms"])),
				durMS(medianF(v.phases["index_open"])), dur(v.median()-time.Duration(medianF(v.phases["total"])*1e6)), medianF(v.phases["process_faults_minor"])))
		r = paired(img, np)
		t := img.median()
		goal(fmt.Sprintf("query IMAGE ≤ 0.20 × the numpy loop and ≤ 60 ms (whole processes, %s index)", s.short), fmt.Sprintf("%.2f, %s", r, dur(t)), r <= 0.20 && t <= 60*time.Millisecond,
			fmt.Sprintf("the model: model_load %s (ort_init %s, session %s), decode %s, inference %s; then the scan %s (%.0f faults); start-up and exit %s",
				durMS(medianF(img.phases["model_load"])), durMS(medianF(img.phases["ort_init"])), durMS(medianF(img.phases["session"])),
				durMS(medianF(img.phases["decode"])), durMS(medianF(img.phases["inference"])), durMS(medianF(img.phases["scan"])), medianF(img.phases["scan_faults_minor"]),
				dur(img.median()-time.Duration(medianF(img.phases["total"])*1e6))))
	}
	for _, l := range loads {
		if !strings.Contains(l.name, "vector") {
			continue
		}
		q := qps(l)
		why := fmt.Sprintf("p50 latency %s with 8 clients", dur(l.p50))
		if s := pb.set(l.index); s != nil {
			if m := find(alternatingName(s)); m != nil && medianF(m.phases["pruned"]) < 0.5 {
				why = fmt.Sprintf("pruning cannot help on these rows: every query is a full scan (%s in process), shared by the batch's queries; p50 latency %s", durMS(medianF(m.phases["full_ms"])), dur(l.p50))
			}
		}
		goal(fmt.Sprintf("server vector queries per second ≥ 10 × 157 (%s index, 8 clients)", l.index), fmt.Sprintf("%.0f", q), q >= 1570, why)
	}
	conv := find("simsearch convert")
	r := paired(conv, find("cp of the same shard files"))
	goal("convert ≤ 2 × cp of the same bytes", fmt.Sprintf("%.2f", r), r <= 2, "it checks every value, fsyncs the index and fits and writes the PCA section")
	r = paired(conv, find("cp of the same shard files, then sync"))
	goal("(for reference: convert / (cp + sync), both durable)", fmt.Sprintf("%.2f", r), r <= 2, "as above")

	fmt.Fprintf(&b, "\nReproduce: `make bench` (the dataset is generated once into `bench/data/`, %.0f MB). "+
		"Kernel micro-benchmarks: `go test ./kernel ./knn -run '^$' -bench .`; the pruned search's: `SIMSEARCH_BENCH_ROWS=100000 SIMSEARCH_BENCH_REALISH=bench/data/realish go test ./prune -run '^$' -bench 'Search|Fallback'`.\n", float64(d.shardsBytes)/1e6)
	return b.String()
}

// scanCause says what a whole-process query's scan had to do, from its timings.
func scanCause(v *sample) string {
	if _, pruned := v.phases["visited"]; pruned && len(v.phases["visited"]) == len(v.times) {
		return "the pruned search maps the signatures and the rows it visits in"
	}
	return "pruning cannot help on these rows: the full scan maps all the rows in"
}

func qps(l loadResult) float64 { return float64(l.reqs) / l.elapsed.Seconds() }

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

// machine describes the CPU, cores, memory, OS kernel, Go, ONNX Runtime (the version of the
// library the commands load, loaded here from the same place) and distance kernels.
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
	ort := "not loadable"
	lib, err := embed.LibraryPath("")
	if err == nil {
		err = embed.Init(lib)
	}
	if err == nil {
		ort = embed.RuntimeVersion() + " (loaded from " + lib + ")"
	} else {
		ort += ": " + err.Error()
	}
	return fmt.Sprintf("%s, %d cores%s, %s, %s, ONNX Runtime %s, kernels %s (default %s: %s)",
		cpu, runtime.NumCPU(), mem, strings.TrimSpace(string(osk)), runtime.Version(), ort,
		strings.Join(kernel.Available(), "/"), defaultKernel, defaultReason)
}
