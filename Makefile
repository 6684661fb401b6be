# The Makefile is the CI contract: .ci/run calls `make test`.
GO      ?= go
BIN     := bin/sql-jobber
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Packages that start a protoactor remote (grpc) cannot be race-clean:
# protoactor-go and grpc race inside themselves (see ../shared/notes). They run
# without -race; every other package runs with it.
NORACE_PKGS := ./actors/... ./cluster/... ./cmd/... ./http/...
RACE_PKGS    = $(shell $(GO) list ./... | grep -v -e /actors -e /cluster -e /cmd/ -e /http)

.PHONY: build run test test-race test-norace lint bench proto clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sql-jobber

# Starts the server on the embedded SQLite demo configuration.
run: build
	./$(BIN) --config config.toml.sample --sql-directory sql

test: test-race test-norace

test-race:
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

test-norace:
	$(GO) test -count=1 -timeout 20m $(NORACE_PKGS)

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 ./...

proto:
	protoc --plugin=protoc-gen-go=$$($(GO) env GOPATH)/bin/protoc-gen-go \
		--go_out=. --go_opt=paths=source_relative actors/jobpb/jobs.proto

clean:
	rm -rf bin data
