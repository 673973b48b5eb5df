# agent/bench.mk: the agent against Debian's prometheus-node-exporter, side by side
# in one run; included from the top-level Makefile (paths are relative to the
# repository root). The program is agent/bench (go run ./agent/bench -h).
#
#   make bench-agent                                   this tree's agent vs node_exporter
#   make bench-agent BENCH_AGENTS=before=/tmp/agent-main,after=bin/vmpulse-agent
#   make bench-agent BENCH_PROCS=100 BENCH_THREADS=20  with 100 idle processes of 20 threads
#   make bench-agent BENCH_AGENT_ARGS='-source procfs' BENCH_DURATION=60s
#
# It prints, per target: CPU (% of a core) at one sample per second over
# BENCH_DURATION, RSS, requests/s under BENCH_LOAD with wrk, CPU per request, and
# bytes per response (plain and gzip), then the agent/node_exporter ratios. It
# installs prometheus-node-exporter and wrk with apt when they are missing (on a
# machine with systemd, the package also starts its own node_exporter on :9100;
# the benchmark runs its own instance on a free port).

BENCH_AGENTS ?= agent=$(BIN)/vmpulse-agent
BENCH_DURATION ?= 30s
BENCH_LOAD ?= 10s
BENCH_PROCS ?= 0
BENCH_THREADS ?= 20

.PHONY: bench-agent
bench-agent: ## the agent vs prometheus-node-exporter: CPU at 1 sample/s, RSS, req/s, bytes per response
	@if ! command -v prometheus-node-exporter >/dev/null || ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  echo "bench-agent: installing prometheus-node-exporter and wrk (apt)"; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus-node-exporter wrk >/dev/null; \
	fi
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/vmpulse-agent ./agent/cmd/vmpulse-agent
	$(GO) run ./agent/bench -agents '$(BENCH_AGENTS)' -duration $(BENCH_DURATION) -load $(BENCH_LOAD) \
	  -procs $(BENCH_PROCS) -threads $(BENCH_THREADS)
