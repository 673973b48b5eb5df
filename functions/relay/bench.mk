# Relay fan-out benchmark (included from the top-level Makefile).
#
#   make bench-relay CLIENTS=1000,2500,5000 RATE=100
#
# A real relay process (RELAY_BIN, default bin/vmpulse-relay) against the Pub/Sub
# emulator at VMPULSE_TEST_PUBSUB, a publisher at RATE records/s of ~950 B and
# CLIENTS websocket clients in one load-generator process on the same machine.
# Per client count it prints commit→client p50/p99 (second half of the window
# separately, so a growing lag shows), the broker alone for reference, relay RSS
# per connection, relay CPU per delivered byte, and items missed by clients that
# stayed connected. RELAY_BIN=/path/to/an/older/vmpulse-relay measures another
# build with the same command; RELAY_BIN=old,new measures both in turn for each
# client count (a before/after in one run); RELAY_BIN=minimal,bin/vmpulse-relay
# measures the minimal shared-frame design of the same protocol first and prints
# the relay's CPU per byte as a ratio to it. BENCH_RELAY_FLAGS passes more flags to relaybench
# (-compress: clients offer permessage-deflate as browsers do; -duration 60s;
# -relay-flags "...").

CLIENTS ?= 1000,2500,5000
RATE ?= 100
BENCH_RELAY_DURATION ?= 30s
RELAY_BIN ?= $(BIN)/vmpulse-relay

.PHONY: bench-relay
bench-relay: services ## relay fan-out: real relay + emulator, N websocket clients (CLIENTS=1000,2500,5000 RATE=100)
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./functions/cmd/vmpulse-relay ./functions/relay/relaybench
	ulimit -n $$(ulimit -Hn); $(BIN)/relaybench -relay $(RELAY_BIN) -clients $(CLIENTS) -rate $(RATE) \
		-duration $(BENCH_RELAY_DURATION) -emulator $(VMPULSE_TEST_PUBSUB) $(BENCH_RELAY_FLAGS)
