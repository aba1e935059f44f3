# simsearch: `make demo` runs the main job on the bundled data, `make test` passes the tests.
# Both install what they need first (scripts/setup.sh: Debian packages, ONNX Runtime).

GO      ?= go
BIN     := bin/simsearch
DEMO    := bin/demo
MODEL   := testdata/model/mobilenet_v2_feature_vector.onnx
STAMP   := bin/.setup-done
TSTAMP  := bin/.setup-tests-done

.PHONY: all setup build test check demo page bench bench-smoke generate fuzz fuzz-short clean weaviate test-weaviate bench-scale

all: build

# The setup script is idempotent and quick once done; the stamps skip even that within a tree.
$(STAMP): scripts/setup.sh
	scripts/setup.sh
	@mkdir -p bin && touch $@

$(TSTAMP): scripts/setup.sh
	scripts/setup.sh --for-tests
	@mkdir -p bin && touch $@ $(STAMP)

setup: $(STAMP)

build: $(STAMP)
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/simsearch

# Everything, then the concurrent parts again under the race detector. go test hides a passing
# package's output, so the kernels this CPU could not test are listed by a second, cached run.
test: $(TSTAMP)
	$(GO) test ./...
	@$(GO) test -run '^$$' -v ./kernel ./knn ./internal/memread 2>&1 | grep 'NOT TESTED' || true
	$(GO) test -race ./serve ./knn ./index ./convert ./query ./collection

# Fails on unformatted code, vet findings (both modules), a go.mod/go.sum that go mod tidy would
# change, and generated assembly that differs from its generator's output. Writes nothing in the
# tree; vet compiles the cgo decoders, so it needs setup's C headers first (CI runs it first).
check: $(STAMP)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	cd kernel/asm && $(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum: not tidy (diff above); run go mod tidy"; exit 1; }
	@cd kernel/asm && $(GO) mod tidy -diff || { echo "kernel/asm/go.mod: not tidy (diff above); run go mod tidy there"; exit 1; }
	scripts/check-generated.sh

# The demo collection is the bundled photos (broken files included, to show they are skipped)
# less ladybird_brighter.jpg, which is then queried: its original, ladybird.jpg, comes first.
demo: build
	@rm -rf $(DEMO) && mkdir -p $(DEMO)/photos
	cp testdata/images/*.jpg testdata/images/*.png testdata/images/*.gif testdata/images/*.webp $(DEMO)/photos/
	rm $(DEMO)/photos/ladybird_brighter.jpg
	@echo "== extract: embed the photos into seed-layout shards"
	$(BIN) extract $(DEMO)/photos -o $(DEMO)/shards --model $(MODEL)
	@echo "== convert: pack the shards into one memory-mapped index"
	$(BIN) convert $(DEMO)/shards -o $(DEMO)/demo.simidx
	$(BIN) info $(DEMO)/demo.simidx
	@echo "== query: a photo that is in the collection, then one that is not: a brightened copy of ladybird.jpg"
	$(BIN) query --index $(DEMO)/demo.simidx --timings testdata/images/elephants.jpg
	$(BIN) query --index $(DEMO)/demo.simidx --timings -k 5 testdata/images/ladybird_brighter.jpg
	@echo "== query --id: more like a photo already in the collection (its stored vector, no model)"
	$(BIN) query --index $(DEMO)/demo.simidx -k 3 --id elephants.jpg
	@echo "== dupes: the groups of near-duplicates (edited copies of one photo), exactly, all pairs"
	$(BIN) dupes --index $(DEMO)/demo.simidx
	@echo "== add: the collection lives: ladybird_brighter.jpg joins it without a rebuild (a change log beside the index)"
	$(BIN) add --index $(DEMO)/demo.simidx testdata/images/ladybird_brighter.jpg
	$(BIN) query --index $(DEMO)/demo.simidx -k 3 --id ladybird_brighter.jpg
	$(BIN) verify $(DEMO)/demo.simidx
	@echo "== the page: the server in the background on a free port, asked what the page asks, then stopped"
	scripts/demo-page.sh $(BIN) $(DEMO)/demo.simidx $(DEMO)/photos $(DEMO)/thumbs elephants.jpg
	@echo "== to browse it: 'make page' (or the line below), then open http://127.0.0.1:8080/ in a browser"
	@echo "   $(BIN) serve --index $(DEMO)/demo.simidx --objects $(DEMO)/photos --thumbs $(DEMO)/thumbs"

# The page over the demo collection, until Ctrl-C: search, more like this, duplicates, the map.
page: demo
	$(BIN) serve --index $(DEMO)/demo.simidx --objects $(DEMO)/photos --thumbs $(DEMO)/thumbs

# The side-by-side benchmark: writes bench/RESULTS.md (generates 512 MB of shards once, and real
# embeddings of edited wallpaper photos: bench/realish). BENCH_DATA=DIR keeps them elsewhere.
BENCH_DATA ?= bench/data
bench: build $(TSTAMP)
	test -f $(BENCH_DATA)/realish/queries.npy || $(GO) run ./bench/realish -o $(BENCH_DATA)/realish
	$(GO) run ./bench -data $(BENCH_DATA)

# The same harness on 2,000 vectors: seconds. The bench package's test runs it too.
bench-smoke: build $(TSTAMP)
	$(GO) run ./bench -smoke -data bin/bench-data -out bin/bench-smoke.md

generate:
	$(GO) generate ./kernel

# Every fuzz target, each for FUZZTIME (go test fuzzes one target per run). A failure leaves the
# input under the package's testdata/fuzz/, where it becomes a regression test: commit it. The
# list must name every fuzz function in the tree (scripts/check-fuzz-targets.sh), and each run
# must have fuzzed: go test -fuzz passes when its pattern matches no target.
FUZZTIME ?= 30s
FUZZ_TARGETS := index:FuzzParseHeader shard:FuzzReadHeader kernel:FuzzKernels \
	pil:FuzzDecode pil:FuzzJPEG pil:FuzzPNG pil:FuzzGIF pil:FuzzWebP pil:FuzzTIFF pil:FuzzBMP \
	serve:FuzzHandler embed:FuzzGraphSignature

fuzz: $(TSTAMP)
	@scripts/check-fuzz-targets.sh $(FUZZ_TARGETS)
	@mkdir -p bin; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "== fuzz $$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) > bin/fuzz.log 2>&1 || { cat bin/fuzz.log; exit 1; }; \
		grep 'fuzz: elapsed' bin/fuzz.log | tail -n 1; \
		grep -q 'fuzz: elapsed' bin/fuzz.log || { cat bin/fuzz.log; echo "$$fn in ./$$pkg did not fuzz"; exit 1; }; \
	done

# The short run CI does: 10 s per target, past the seed corpus (each line above shows the
# executions and the new inputs found), a few minutes in all.
fuzz-short:
	$(MAKE) fuzz FUZZTIME=10s

# The Weaviate server the cluster commands drive (issue 14), pinned. The check reads the module version
# recorded in the binary, so a second run costs nothing and a stale binary is replaced. The build is
# bounded by WEAVIATE_BUILD_TIMEOUT (4-12 minutes measured on 2 cores).
WEAVIATE_VERSION       := v1.35.2
WEAVIATE               := bin/weaviate-server
WEAVIATE_BUILD_TIMEOUT ?= 30m
WEAVIATE_TEST_TIMEOUT  ?= 15m

weaviate:
	@if $(GO) version -m $(WEAVIATE) 2>/dev/null | grep -Eq '^[[:space:]]*mod[[:space:]]+github.com/weaviate/weaviate[[:space:]]+$(WEAVIATE_VERSION)([[:space:]]|$$)'; then \
		echo "$(WEAVIATE) is $(WEAVIATE_VERSION) already"; \
	else \
		echo "building $(WEAVIATE) $(WEAVIATE_VERSION) (4-12 minutes, ~2 GB of RAM; at most $(WEAVIATE_BUILD_TIMEOUT))"; \
		mkdir -p bin && GOBIN=$(CURDIR)/bin CGO_ENABLED=0 timeout $(WEAVIATE_BUILD_TIMEOUT) $(GO) install -trimpath -ldflags="-s -w" \
			github.com/weaviate/weaviate/cmd/weaviate-server@$(WEAVIATE_VERSION); \
	fi

# The cluster test (issue 14): 3 Weaviate nodes on loopback, a 20,000-vector index, exact and HNSW
# results against the local exact search, a node killed and restarted. Builds the server first;
# when that build fails the test is skipped, loudly, or fails when SIMSEARCH_WEAVIATE_REQUIRED is
# set (CI sets it). The nodes live in a folder of the recipe's, stopped when the recipe ends however
# the test did: a test killed by -timeout (WEAVIATE_TEST_TIMEOUT) or Ctrl-C runs no cleanup.
test-weaviate: $(TSTAMP)
	@if ! $(MAKE) --no-print-directory weaviate; then \
		if [ -n "$$SIMSEARCH_WEAVIATE_REQUIRED" ]; then \
			echo "FAILED: $(WEAVIATE) could not be built (see above), and SIMSEARCH_WEAVIATE_REQUIRED is set"; \
			exit 1; \
		fi; \
		echo "!!!!!!!! SKIPPED: the Weaviate cluster test ($(WEAVIATE) could not be built, see above) !!!!!!!!"; \
		exit 0; \
	fi; \
	dir=$$(mktemp -d "$${TMPDIR:-/tmp}/simsearch-weaviate.XXXXXX") || exit 1; \
	trap 'WEAVIATE_BIN=$(CURDIR)/$(WEAVIATE) scripts/weaviate-cluster.sh stop "$$dir"; rm -rf "$$dir"' EXIT; \
	trap 'exit 130' INT TERM; \
	SIMSEARCH_WEAVIATE=$(CURDIR)/$(WEAVIATE) SIMSEARCH_WEAVIATE_DIR=$$dir \
		$(GO) test ./cmd/simsearch -run '^TestWeaviateCluster$$' -count=1 -v -timeout $(WEAVIATE_TEST_TIMEOUT)

# Push throughput and query latency through a 3-node cluster beside the local figures:
# writes bench/SCALE.md.
bench-scale: build weaviate $(TSTAMP)
	$(GO) run ./bench -scale -weaviate $(WEAVIATE)

clean:
	rm -rf bin
