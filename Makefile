# simsearch: `make demo` runs the main job on the bundled data, `make test` passes the tests.
# Both install what they need first (scripts/setup.sh: Debian packages, ONNX Runtime).

GO      ?= go
BIN     := bin/simsearch
DEMO    := bin/demo
MODEL   := testdata/model/mobilenet_v2_feature_vector.onnx
STAMP   := bin/.setup-done
TSTAMP  := bin/.setup-tests-done

.PHONY: all setup build test check demo bench bench-smoke generate fuzz clean

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
	$(GO) build -o $(BIN) ./cmd/simsearch

# Everything, then the concurrent parts again under the race detector.
test: $(TSTAMP)
	$(GO) test ./...
	$(GO) test -race ./serve ./knn ./index ./convert ./query

# Fails on unformatted code, vet findings (both modules), a go.mod/go.sum that go mod tidy would
# change, and generated assembly that differs from its generator's output. Writes nothing.
check:
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

# The side-by-side benchmark: writes bench/RESULTS.md (generates 512 MB of shards once, and real
# embeddings of edited wallpaper photos: bench/realish). BENCH_DATA=/work/bench-data shares them.
BENCH_DATA ?= bench/data
bench: build $(TSTAMP)
	test -f $(BENCH_DATA)/realish/queries.npy || $(GO) run ./bench/realish -o $(BENCH_DATA)/realish
	$(GO) run ./bench -data $(BENCH_DATA)

# The same harness on 2,000 vectors: seconds. The bench package's test runs it too.
bench-smoke: build $(TSTAMP)
	$(GO) run ./bench -smoke -data bin/bench-data -out bin/bench-smoke.md

generate:
	$(GO) generate ./kernel

fuzz:
	$(GO) test ./index -run '^$$' -fuzz FuzzParseHeader -fuzztime 30s
	$(GO) test ./shard -run '^$$' -fuzz FuzzReadHeader -fuzztime 30s
	$(GO) test ./kernel -run '^$$' -fuzz FuzzKernels -fuzztime 30s

clean:
	rm -rf bin
