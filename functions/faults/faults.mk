# functions/faults/faults.mk: the fault-injection suite and the soak, included from the
# top-level Makefile (paths are relative to the repository root).
#
#   make test-faults               every fault of issue 9 against the real route and relay
#                                  binaries built from this checkout; one table row per fault,
#                                  the table also in out/faults-<time>.md
#   make soak DURATION=30m         the pipeline at the phase-2 rate (150 users waiting 1-4 s)
#                                  for DURATION (default 30m); RSS, goroutines and
#                                  commit→websocket lag every SOAK_EVERY (1m), then whether
#                                  memory is flat over the last two thirds (the first is
#                                  warm-up: bounded buffers filling); the table also in out/soak-<time>.md
#
# Both need MariaDB 10.11 binaries (mariadbd, mariadb-install-db: each test makes its own
# server on a free port, never the shared one) and the Pub/Sub emulator at
# VMPULSE_TEST_PUBSUB (`make services`). FAULTS_PARALLEL scenarios run at once (default 3);
# FAULTS_KEEP=1 keeps every log and data directory (they are kept anyway when a test fails);
# FAULTS_BIN=dir takes prebuilt vmpulse-route and vmpulse-relay from dir instead of building.

FAULTS_PARALLEL ?= 3
SOAK_EVERY ?= 1m
# DURATION has another default in loadtest/load.mk (3m): the soak's is 30m unless DURATION
# is given on the command line or in the environment.
SOAK_DURATION ?= $(if $(filter command line environment,$(origin DURATION)),$(DURATION),30m)
FAULTS_GO ?= $(or $(GO),go)

.PHONY: test-faults soak

test-faults: services ## fault injection against the real binaries: DB kill/partition/slow/full, Pub/Sub down, process kills (~10 min)
	@mkdir -p out
	VMPULSE_FAULTS=1 FAULTS_PARALLEL=$(FAULTS_PARALLEL) FAULTS_OUT=$(CURDIR)/out \
		$(FAULTS_GO) test -count=1 -v -timeout 40m -run '^TestFaults$$' ./functions/faults/

soak: services ## run the pipeline at the phase-2 rate for DURATION (default 30m): RSS, goroutines, lag per minute
	@mkdir -p out
	SOAK_DURATION=$(SOAK_DURATION) SOAK_EVERY=$(SOAK_EVERY) SOAK_OUT=$(CURDIR)/out \
		$(FAULTS_GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' ./functions/faults/
