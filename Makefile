# The Makefile is the CI contract: .ci/run calls `make test`.
GO      ?= go
BIN     := bin/sql-jobber
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Every package runs under -race, in two groups:
# - packages that start no actor system;
# - packages whose tests start cluster nodes, one at a time (-parallel 1):
#   protoactor's remote sets grpc's process-global logger on each start, a
#   race whenever two nodes of one process overlap, but one node at a time
#   is race-clean, so our engine, grains, queues and executors are
#   race-checked.
# The TestCluster* tests run several nodes in one process, where
# protoactor-go and grpc race inside themselves (member list, BlockList,
# the grpc logger; see ../shared/notes): they alone run without -race.
# ./http starts one node, in the test that holds the OpenAPI document to
# a real node's answers.
NODE_PKGS := ./actors/... ./cluster/... ./cmd/... ./http/...
PURE_PKGS  = $(shell $(GO) list ./... | grep -v -e /actors -e /cluster -e /cmd/ -e /http)

.PHONY: build run test chaos lint bench proto clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sql-jobber

# Starts the server on the embedded SQLite demo configuration.
run: build
	./$(BIN) --config config.toml.sample --sql-directory sql

test:
	$(GO) test -race -count=1 -timeout 20m $(PURE_PKGS)
	$(GO) test -race -count=1 -timeout 20m -parallel 1 -skip '^TestCluster' $(NODE_PKGS)
	$(GO) test -count=1 -timeout 20m -run '^TestCluster' $(NODE_PKGS)

# Three sql-jobber processes under load, killed with SIGKILL and restarted
# ten times: no job may be lost or run twice while its first run lives. It
# prints the failover times (see BENCHMARKS.md).
chaos:
	SQLJOBBER_CHAOS=1 $(GO) test -count=1 -timeout 15m -run '^TestChaos$$' -v ./cmd/sql-jobber/

# Measures sql-jobber against the raw database floor on the local
# PostgreSQL and MariaDB; see BENCHMARKS.md.
bench:
	BENCH_COMMIT=$(VERSION) $(GO) run ./cmd/sqljobber-bench --repeat 3
	$(GO) test -run '^$$' -bench . -benchtime 3s ./cluster/

lint:
	$(GO) mod tidy -diff
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

proto:
	protoc --plugin=protoc-gen-go=$$($(GO) env GOPATH)/bin/protoc-gen-go \
		--go_out=. --go_opt=paths=source_relative actors/jobpb/jobs.proto

clean:
	rm -rf bin data
