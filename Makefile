# vmpulse: the two commands are `make up` (the whole pipeline on this machine,
# dashboard at http://localhost:8080/) and `make test` (every test, installing and
# starting what they need). `make help` lists the rest.

SHELL := /bin/bash
GO ?= go
NPM ?= npm
BIN := bin
GOFLAGS_BUILD := -trimpath
PUBSUB_TEST_PORT ?= 8681
export VMPULSE_TEST_MYSQL ?= root@tcp(127.0.0.1:3306)/
export VMPULSE_TEST_PUBSUB ?= 127.0.0.1:$(PUBSUB_TEST_PORT)

COMMANDS := agent/cmd/vmpulse-agent functions/cmd/vmpulse-route functions/cmd/vmpulse-relay \
	frontend/cmd/vmpulse-web local/cmd/vmpulse-up loadtest/cmd/vmpulse-load

.DEFAULT_GOAL := help

.PHONY: help up build web test test-go test-web deps services vet bench bench-e2e fuzz kernel clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

up: build web ## run the whole pipeline here; dashboard at http://localhost:8080/ (Ctrl-C stops)
	@bash scripts/deps.sh up
	$(BIN)/vmpulse-up $(UP_FLAGS)

build: ## build every Go command into bin/
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ $(addprefix ./,$(COMMANDS))

web: frontend/node_modules ## build the dashboard into frontend/dist
	cd frontend && $(NPM) run build

frontend/node_modules: frontend/package-lock.json
	cd frontend && $(NPM) ci --no-audit --no-fund
	@touch $@

deps: ## install missing system packages (apt): MariaDB, Java, qemu + kernel, Chromium, Locust
	bash scripts/deps.sh

services: ## start MariaDB and the Pub/Sub emulator when they are not running
	PUBSUB_TEST_PORT=$(PUBSUB_TEST_PORT) bash scripts/services.sh

# The infrastructure tests are modules of their own (k8s.io, gateway-api, hcl and
# cty stay out of the module every service builds with).
INFRA_MODULES := k8s terraform

STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE ?= $(GO) run golang.org/x/tools/cmd/deadcode@v0.52.0

vet: ## go vet, gofmt, staticcheck and deadcode (code no command or test reaches) over every module
	$(GO) vet ./...
	@for m in $(INFRA_MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(STATICCHECK) ./...
	@out=$$($(DEADCODE) -test ./...); if [ -n "$$out" ]; then echo "dead code:"; echo "$$out"; exit 1; fi

test: deps services build web vet test-go test-faults test-web ## every test, against real MariaDB, the Pub/Sub emulator, qemu and Chromium, fault injection included

test-go: ## Go tests (unit, integration, kernel under qemu, Locust, manifests, Terraform), then bounded fuzzing
	set -o pipefail; { $(GO) test -count=1 -json -timeout 30m ./... && \
	  for m in $(INFRA_MODULES); do (cd $$m && $(GO) test -count=1 -json -timeout 20m ./...) || exit 1; done; } \
	  | $(GO) run ./internal/testsummary
	$(GO) test -count=1 -race -timeout 20m ./record/... ./agent/... ./functions/... ./internal/...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(or $(CI_FUZZTIME),20s)

test-web: frontend/node_modules ## dashboard unit tests and the browser test in Chromium
	cd frontend && $(NPM) test
	cd frontend && VMPULSE_BIN=$(CURDIR)/$(BIN) $(NPM) run test:e2e

bench: services ## route1 vs route2 vs the HTTP and raw-INSERT ceilings, 1/16/256 clients; DB_RTT=2ms adds a latency proxy before MariaDB, BENCH_SPLIT=1 gives MariaDB a core of its own, BENCH_ROUNDS=5 runs the variants in turns and prints median ratios
	DB_RTT=$(DB_RTT) DB_CONNS=$(DB_CONNS) BENCH_SPLIT=$(BENCH_SPLIT) BENCH_ROUNDS=$(BENCH_ROUNDS) $(GO) test -run '^$$' -bench . -benchtime $(or $(BENCHTIME),3s) -count 1 -timeout 30m ./functions/ingest/

bench-e2e: services ## POST→websocket latency of the whole local stack (make up's default, its in-memory fallback, MariaDB + emulator; phase-2 rate and full speed), then the embedded broker vs the emulator and pstest
	VMPULSE_BENCH_SECONDS=$(or $(BENCH_SECONDS),20) $(GO) test -run '^$$' -bench BenchmarkEndToEnd -benchtime 1x -timeout 30m ./local/
	$(GO) test -run '^$$' -bench . -timeout 30m ./local/broker/

fuzz: ## fuzz record decoding and the ingest handler, FUZZTIME each (default 60s)
	$(GO) test -run '^$$' -fuzz FuzzDecodeBatch -fuzztime $(or $(FUZZTIME),60s) ./record/
	$(GO) test -run '^$$' -fuzz FuzzHandler -fuzztime $(or $(FUZZTIME),60s) ./functions/ingest/

kernel: ## build the kernel modules for this machine's kernel (see kernel/README.md)
	$(MAKE) -C kernel

clean: ## remove build outputs
	rm -rf $(BIN) out frontend/dist frontend/test-results
	$(MAKE) -C kernel clean

include agent/bench.mk
include functions/relay/bench.mk
include functions/faults/faults.mk
include loadtest/load.mk
include k8s/deploy.mk
