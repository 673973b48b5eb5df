# loadtest/load.mk: the assignment's two load phases, the report and the smoke check,
# included from the top-level Makefile (paths are relative to the repository root).
#
#   make load           load-collect, load-send, load-split, report in turn (Locust)
#   make load-collect   phase 1: poll the agent(s), write $(OUT)
#   make load-send      phase 2: send $(IN) through the split, each record once, with the token
#   make load-split     rows per route read back from MySQL for $(IN); chi-square vs 50/50
#   make report         the run's report: $(REPORT) (self-contained HTML) and its .json
#   make load-go        the same with the Go driver (load-go-collect, load-go-send, load-split, report)
#   make smoke INGRESS=… RELAY=… TOKEN=… AGENT=…   check a deployment, one line per check
#
# With no flags, after `make up`, `make load` does what the assignment asks of the local
# stack: 300 users poll the agent for 3 min and collect about 2000 unique samples (the
# agent samples every 80 ms), then 150 users send each once through the 50/50 split,
# with the token `make up` wrote to .vmpulse/ingest-token. A phase that falls short of
# its target (unique samples collected, records committed) stops with exit 1 and says
# what to change. Examples:
#
#   make load AGENT_URLS=http://10.0.0.5:8090,http://10.0.0.6:8090
#   make load AGENTS=3                       # the three local agents of `make up AGENTS=3`
#   make load AGENTS=3 SEQUENTIAL=1          # one VM after another, the same load each
#   make load-collect AGENT_URL=http://10.0.0.5:8090 USERS=300 SPAWN_RATE=5 RECORDS=2000 DURATION=3m
#   make load-send INGRESS_URL=http://34.1.2.3 TOKEN_FILE=ingest-token IN=peer-records.json
#   make load-send IN=peer.json RAM_UNIT=kib   # when a file's RAM unit cannot be told
#   make report RUN=out/run.json REPORT=out/report.html
#
# USERS and SPAWN_RATE given on the command line apply to the target run; the phases'
# own defaults are COLLECT_USERS/SEND_USERS and COLLECT_SPAWN_RATE/SEND_SPAWN_RATE (for
# `make load`, which runs both phases, set those). Users, spawn rate, records and the
# time limit are per agent (collect) and per VM (send).

LOCUST ?= $(shell if /usr/bin/python3 -c 'import locust' >/dev/null 2>&1; then echo /usr/bin/python3 -m locust; else echo locust; fi)
LOCUST_FLAGS ?= --only-summary

AGENT_URL ?= http://127.0.0.1:8090
# Several agents, comma-separated: AGENT_URLS. Without it, .vmpulse/agents (one URL
# per line) when a stack wrote one, else, with AGENTS=N (as `make up` takes it), the N
# local agents on consecutive ports from 8090.
AGENT_URLS ?= $(if $(wildcard .vmpulse/agents),$(shell paste -sd, .vmpulse/agents),$(shell [ "$(AGENTS)" -gt 1 ] 2>/dev/null && seq -s, -f 'http://127.0.0.1:%g' 8090 $$((8089 + $(AGENTS)))))
INGRESS_URL ?= http://127.0.0.1:8000
RELAY_URL ?= http://127.0.0.1:8080
MYSQL_DSN ?= root@tcp(127.0.0.1:3307)/vmpulse

# The ingest token: TOKEN=<token> on the command line, else the file `make up` writes.
# NO_TOKEN=1 sends without one (an ingress started without auth).
TOKEN_FILE ?= $(if $(wildcard .vmpulse/ingest-token),.vmpulse/ingest-token,)
token_env = $(if $(TOKEN),INGEST_TOKEN='$(TOKEN)') $(if $(TOKEN_FILE),INGEST_TOKEN_FILE='$(TOKEN_FILE)')
token_flag_locust = $(if $(NO_TOKEN),--no-token)
token_flag_go = $(if $(NO_TOKEN),-no-token)

OUT ?= out/records.json
IN ?= $(OUT)
RUN ?= out/run.json
REPORT ?= out/report.html
RECORDS ?= 2000
DURATION ?= 3m
COLLECT_USERS ?= 300
# 1 user/s (the assignment's "every second") would start the 300th user after 5 min, past
# the 3-min run; 5/s has all 300 running after 60 s.
COLLECT_SPAWN_RATE ?= 5
COLLECT_WAIT ?= 1-2
SEND_USERS ?= 150
SEND_SPAWN_RATE ?= 5
SEND_WAIT ?= 1-4
RAM_UNIT ?= auto
# Alpha of the split test: p below it means the split is not 50/50.
ALPHA ?= 0.001
# SEQUENTIAL=1: several agents/VMs one after another instead of all at once.
seq_env = $(if $(SEQUENTIAL),SEQUENTIAL=$(SEQUENTIAL))

# make smoke's short names.
INGRESS ?= $(INGRESS_URL)
RELAY ?= $(RELAY_URL)
AGENT ?= $(AGENT_URL)

VMPULSE_LOAD ?= bin/vmpulse-load

# Locust's CSV and HTML reports go next to the records file: out/records-collect_stats.csv, …
load_collect_report = $(basename $(OUT))-collect
load_send_report = $(basename $(IN))-send
agents_flag = $(if $(AGENT_URLS),--agents '$(AGENT_URLS)',-H $(AGENT_URL))
agents_flag_go = $(if $(AGENT_URLS),-agents '$(AGENT_URLS)',-agent $(AGENT_URL))

.PHONY: load load-collect load-send load-split load-go load-go-collect load-go-send load-bin report smoke

load: ## the assignment's two phases with Locust, the split report, then the run's report (out/report.html)
	@$(MAKE) --no-print-directory load-collect
	@$(MAKE) --no-print-directory load-send
	@$(MAKE) --no-print-directory load-split
	@$(MAKE) --no-print-directory report

load-collect: ## phase 1 (Locust): poll the agent(s), write OUT (AGENT_URLS, AGENTS, USERS, SPAWN_RATE, RECORDS, DURATION, SEQUENTIAL)
	@mkdir -p $(dir $(OUT))
	$(seq_env) $(LOCUST) -f loadtest/locustfile_collect.py --headless $(LOCUST_FLAGS) \
		$(agents_flag) -u $(or $(USERS),$(COLLECT_USERS)) -r $(or $(SPAWN_RATE),$(COLLECT_SPAWN_RATE)) \
		-t $(DURATION) --wait $(COLLECT_WAIT) --records $(RECORDS) --out $(OUT) --run-file $(RUN) \
		--csv $(load_collect_report) --html $(load_collect_report).html

load-send: ## phase 2 (Locust): send IN through the split, each record once, with the ingest token (TOKEN, TOKEN_FILE)
	$(token_env) $(seq_env) $(LOCUST) -f loadtest/locustfile_send.py --headless $(LOCUST_FLAGS) $(token_flag_locust) \
		-H $(INGRESS_URL) -u $(or $(USERS),$(SEND_USERS)) -r $(or $(SPAWN_RATE),$(SEND_SPAWN_RATE)) \
		--wait $(SEND_WAIT) --in $(IN) --ram-unit $(RAM_UNIT) --run-file $(RUN) \
		--csv $(load_send_report) --html $(load_send_report).html

load-split: load-bin ## rows per route in MySQL for the records of IN; chi-square vs 50/50
	$(VMPULSE_LOAD) split -mysql-dsn '$(MYSQL_DSN)' -in $(IN) -ram-unit $(RAM_UNIT) -alpha $(ALPHA)

report: load-bin ## the run's report: REPORT (one HTML file, opens from disk) and the same data as JSON
	$(VMPULSE_LOAD) report -run $(RUN) -mysql-dsn '$(MYSQL_DSN)' -out $(REPORT) -alpha $(ALPHA)

load-go: ## the same two phases with the Go driver (bin/vmpulse-load), the split report and the run's report
	@$(MAKE) --no-print-directory load-go-collect
	@$(MAKE) --no-print-directory load-go-send
	@$(MAKE) --no-print-directory load-split
	@$(MAKE) --no-print-directory report

load-go-collect: load-bin ## phase 1 with the Go driver
	$(seq_env) $(VMPULSE_LOAD) collect $(agents_flag_go) -users $(or $(USERS),$(COLLECT_USERS)) \
		-spawn-rate $(or $(SPAWN_RATE),$(COLLECT_SPAWN_RATE)) -wait $(COLLECT_WAIT) \
		-records $(RECORDS) -duration $(DURATION) -out $(OUT) -run $(RUN)

load-go-send: load-bin ## phase 2 with the Go driver
	$(token_env) $(seq_env) $(VMPULSE_LOAD) send $(token_flag_go) -ingress $(INGRESS_URL) -users $(or $(USERS),$(SEND_USERS)) \
		-spawn-rate $(or $(SPAWN_RATE),$(SEND_SPAWN_RATE)) -wait $(SEND_WAIT) -in $(IN) -ram-unit $(RAM_UNIT) -run $(RUN)

smoke: load-bin ## check a deployment: INGRESS=… RELAY=… TOKEN=… AGENT=… (defaults: the local stack and its token)
	$(token_env) $(VMPULSE_LOAD) smoke $(token_flag_go) -ingress $(INGRESS) -relay $(RELAY) -agent $(or $(AGENT_URLS),$(AGENT))

# go build is incremental: this costs nothing when the binary is up to date.
load-bin:
	@mkdir -p $(dir $(VMPULSE_LOAD))
	go build -o $(VMPULSE_LOAD) ./loadtest/cmd/vmpulse-load
