# QuantumFlow. `make demo` runs the main job, `make test` runs every test; both start the
# project's throwaway Postgres (.ci/postgres.sh) unless DATABASE_URL points elsewhere.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := /usr/local/go/bin:$(PATH)

SQLC_VERSION := v1.31.1
TOOLS        := $(CURDIR)/.tools
SQLC         := $(TOOLS)/sqlc-$(SQLC_VERSION)
TOXIPROXY_VERSION := v2.12.0
TOXIPROXY    := $(TOOLS)/toxiproxy-server-$(TOXIPROXY_VERSION)
PG           := .ci/postgres.sh
GO_TEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: all build demo test test-go test-ui chromium check-generated generate vet check-alerts bench bench-hopcost chaos toxiproxy fuzz pg pg-stop clean

all: build

build:
	go build -o bin/qflow ./cmd/qflow

## sqlc, pinned, built from the Go module proxy into .tools/
$(SQLC):
	@mkdir -p $(TOOLS)/build
	GOBIN=$(TOOLS)/build go install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)
	mv $(TOOLS)/build/sqlc $@

## toxiproxy, pinned, built the same way: the chaos run puts it between the workers and Postgres
$(TOXIPROXY):
	@mkdir -p $(TOOLS)/build
	GOBIN=$(TOOLS)/build go install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)
	mv $(TOOLS)/build/server $@

## builds toxiproxy if missing and prints its path (internal/chaos asks this when not told)
toxiproxy: $(TOXIPROXY)
	@echo $(TOXIPROXY)

generate: $(SQLC)
	$(SQLC) generate

## gen/ must be exactly what sqlc makes of sql/ and migrations/
check-generated: $(SQLC)
	@$(SQLC) diff || { echo "gen/ is stale: run 'make generate' and commit it" >&2; exit 1; }

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); echo "gofmt needed" >&2; exit 1; }
	go vet ./...

pg:
	@$(PG) start

pg-stop:
	@$(PG) stop

test: check-generated vet test-ui test-go test-cudaemu check-alerts

test-go: $(TOXIPROXY)
	QFLOW_TOXIPROXY=$(TOXIPROXY) QFLOW_TEST_DATABASE_URL="$${DATABASE_URL:-$$($(PG) start)}" go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v '/internal/web$$')

## Debian's chromium for the web view's browser test (installed if missing)
chromium:
	internal/web/testdata/install-chromium.sh

## the web view's tests, in a real headless browser; screenshots are kept in bin/ui-screenshots
test-ui: chromium
	QFLOW_REQUIRE_CHROMIUM=1 QFLOW_SCREENSHOT_DIR=$(CURDIR)/bin/ui-screenshots \
	QFLOW_TEST_DATABASE_URL="$${DATABASE_URL:-$$($(PG) start)}" go test $(GO_TEST_FLAGS) ./internal/web/

check-alerts:
	deploy/prometheus/check.sh

## The demo: migrate a demo database, start two workers, run the probe workflows, show results.
demo: build
	@url="$${DATABASE_URL:-$$($(PG) db qflow_demo)}"; \
	 DATABASE_URL="$$url" QFLOW_BIN=bin/qflow .ci/demo.sh

bench: build
	@url="$${DATABASE_URL:-$$($(PG) start)}"; \
	 QFLOW_BENCH_SERVER_URL="$$url" go run ./bench/engine -out bench/results

## Instructions Postgres spends per run's hops, this tree against a base commit (BASE=9a016d8):
## counted by valgrind, so a noisy machine cannot move them.
bench-hopcost:
	bench/hopcost/run.sh $(or $(BASE),9a016d8)

## Chaos: qflow worker processes under load on a private Postgres cluster, each behind its own
## toxiproxy, while faults (network ones included) are injected, then the invariants checked
## from the tables (5 minutes; `make test` runs -short)
CHAOS_FLAGS ?= -duration 5m
chaos: build $(TOXIPROXY)
	go run ./cmd/qflow-chaos -bin bin/qflow -toxiproxy $(TOXIPROXY) $(CHAOS_FLAGS)

## Each fuzz target for FUZZTIME (their committed corpora under testdata/fuzz run in every go test)
FUZZTIME ?= 60s
fuzz:
	go test ./pipelines -run '^$$' -fuzz '^FuzzWorkflowDefinition$$' -fuzztime $(FUZZTIME)
	go test ./pipelines/probe -run '^$$' -fuzz '^FuzzHandleInput$$' -fuzztime $(FUZZTIME)
	QFLOW_TEST_DATABASE_URL="$${DATABASE_URL:-$$($(PG) start)}" go test ./sql/schema -run '^$$' -fuzz '^FuzzRegisterWorkflow$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s
	QFLOW_TEST_DATABASE_URL="$${DATABASE_URL:-$$($(PG) start)}" go test ./sql/schema -run '^$$' -fuzz '^FuzzRunInput$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s

clean:
	rm -rf bin

# CUDA kernels, qflow-gpu and the compile checks of the cuda-tagged code (make check-cuda).
include kernels/cuda.mk
