# Hearth: build, run, test, benchmark, lint and cross-build.
# The README's quick start is `make run` and `make test`.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHTIME   ?= 3s
BENCHCOUNT  ?= 5
ARGS        ?=

# -buildvcs=false: the commit is stamped by LDFLAGS, and a fresh clone in CI
# must build whatever state its .git is in.
export GOFLAGS := -buildvcs=false

.PHONY: all build run test bench lint arm clean

all: lint test build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/hearth ./cmd/hearth

## run: build and run `hearth serve` with the embedded defaults (MQTT :1883, HTTP :8080, data ./hearth-data).
run: build
	./bin/hearth serve $(ARGS)

## test: go vet, the whole suite with the race detector (end-to-end tests included), and every benchmark once.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -run '^$$' -bench . -benchtime 1x -count=1 ./...

## bench: the Go benchmarks, BENCHCOUNT runs each; compare runs with benchstat.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./...

## lint: gofmt, go vet, go mod tidy leaves no diff, staticcheck (pinned, fetched through the module proxy).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@cp go.mod /tmp/hearth-go.mod.bak && cp go.sum /tmp/hearth-go.sum.bak; \
	  $(GO) mod tidy; \
	  if ! cmp -s go.mod /tmp/hearth-go.mod.bak || ! cmp -s go.sum /tmp/hearth-go.sum.bak; then \
	    echo "go mod tidy changed go.mod/go.sum: run it and commit"; \
	    cp /tmp/hearth-go.mod.bak go.mod; cp /tmp/hearth-go.sum.bak go.sum; exit 1; fi
	$(GO) run $(STATICCHECK) ./...

## arm: static builds for Raspberry Pi class boards into dist/.
arm:
	mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64         $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/hearth-linux-arm64 ./cmd/hearth
	CGO_ENABLED=0 GOOS=linux GOARCH=arm   GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/hearth-linux-armv7 ./cmd/hearth
	CGO_ENABLED=0 GOOS=linux GOARCH=arm   GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/hearth-linux-armv6 ./cmd/hearth
	@ls -l dist/

clean:
	rm -rf bin dist
