"""vmpulse load generation, phase 1: collect samples from the agents.

Simulated users poll each agent's GET /sample. An agent samples on a ticker and serves
its latest snapshot, so a user polling faster than the sampling interval gets the same
record again: records are de-duplicated by their "id" (records without one by their
content). Polling an agent stops once --records unique samples are in (or at its time
limit); the records of all agents are written to --out atomically, as a JSON array
with one record per line (the records file that locustfile_send.py and `vmpulse-load`
read), and the phase is recorded in --run-file for `vmpulse-load report`.

Defaults follow the assignment: 300 users, each waiting 1-2 s between requests, for
3 minutes. The assignment adds "new users every second"; at 1 user/s the 300th user
would start after 5 minutes, i.e. never in a 3-minute run, so the default spawn rate is
5 users/s: all 300 run after 60 s and the last 2 minutes are at full load.

The number of unique samples is set by the agent, not by the users: one per sampling
interval. ~2000 samples in 3 minutes need the agent to sample every 90 ms or faster
(`make up` does). A phase that ends short of --records exits 1 and says what to change
(the agent's interval, read from its /healthz or inferred from the samples' times).

Several agents (--agents url1,url2 or AGENT_URLS) get the same load: -u, -r and
-t are per agent. By default they are polled all at once (-u × agents users in all);
with --sequential one after another, each with the same ramp-up.

    locust -f loadtest/locustfile_collect.py --headless -H http://127.0.0.1:8090 \\
        -u 300 -r 5 -t 3m --records 2000 --out out/records.json \\
        --csv out/records-collect --html out/records-collect.html

Options (flag, environment variable, default):
    -H/--host        AGENT_URL (or LOCUST_HOST)     http://127.0.0.1:8090
    --agents         AGENT_URLS                      (one agent: -H)
    --sequential     SEQUENTIAL                      off: all agents at once
    -u/--users       COLLECT_USERS (or LOCUST_USERS) 300 per agent
    -r/--spawn-rate  COLLECT_SPAWN_RATE (or LOCUST_SPAWN_RATE) 5 per agent
    -t/--run-time    DURATION (or LOCUST_RUN_TIME)   3m per agent
    --records        RECORDS                         2000 per agent (0: only the time limit)
    --out            OUT                             out/records.json
    --run-file       RUN_FILE                        out/run.json ("": none)
    --wait           COLLECT_WAIT                    1-2 (seconds; "1s-2s", "500ms-1s" work too)
    --request-timeout TIMEOUT                        10 (seconds)

Run it as one Locust process (no --master/--worker): the set of records seen lives in it.
Exit code: 0 when every agent gave --records unique samples, 1 otherwise.
Standard library and Locust only (FastHttpUser, Locust's gevent HTTP client).
"""

import hashlib
import json
import logging
import os
import random
import time

import locust
from locust import FastHttpUser, events, task

from recordsfile import add_phase_options, encode_records, wait_option, write_atomic
from runfile import (Conductor, Recorder, first_line, infer_interval, per_target_load, phase_common, phase_options,
                     probe_agent, save_run, shortfall)


log = logging.getLogger("vmpulse.collect")

# Fields every record of the contract has (units and ranges are the ingress's business).
REQUIRED = (
    "total_ram", "ram_libre", "uso_ram", "porcentaje_ram", "porcentaje_cpu_uso",
    "porcentaje_cpu_libre", "procesos_corriendo", "total_procesos", "procesos_durmiendo",
    "procesos_zombie", "procesos_parados",
)


def record_key(rec):
    """The record's id, or a digest of its content when it has none."""
    rid = rec.get("id")
    if isinstance(rid, str) and rid:
        return rid
    body = {k: v for k, v in rec.items() if k != "id"}
    return "c:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_record(rec):
    """None when rec looks like a record of the contract, else what is wrong."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    for f in REQUIRED:
        v = rec.get(f)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{f}: missing or not a number"
    if not isinstance(rec.get("hora"), str):
        return "hora: missing or not a string"
    return None


class Agent:
    """One agent's share of the phase."""

    def __init__(self, url):
        self.url = url.rstrip("/")
        self.records = []
        self.seen = set()
        self.duplicates = 0
        self.invalid = 0
        self.rec = Recorder()
        self.done = False  # target reached or time up
        self.reached = False
        self.vm = None
        self.interval = 0.0
        self.interval_from = ""


class State:
    """What the run has gathered; one per process, shared by all users."""

    def __init__(self):
        self.target = 0
        self.out = ""
        self.run_file = ""
        self.wait = (1.0, 2.0)
        self.agents = []
        self.users = 300
        self.rate = 5.0
        self.duration = 0
        self.sequential = False
        self.conductor = None
        self.stopping = False


STATE = State()


@events.init_command_line_parser.add_listener
def _add_options(parser):
    env = os.environ.get
    parser.add_argument("--records", type=int, env_var="RECORDS", default=2000,
                        help="stop polling an agent at this many unique samples (0: only --run-time) [RECORDS]")
    parser.add_argument("--out", env_var="OUT", default="out/records.json",
                        help="records file to write (JSON array) [OUT]")
    parser.add_argument("--agents", env_var="AGENT_URLS", default="",
                        help="several agents, comma-separated (instead of -H): each gets -u users [AGENT_URLS]")
    add_phase_options(parser, "agents", "COLLECT_WAIT", "1-2")
    parser.add_argument("--request-timeout", type=float, env_var="TIMEOUT", default=10.0,
                        help="per-request timeout in seconds [TIMEOUT]")
    # The assignment's parameters, unless given on the command line or as LOCUST_*.
    parser.set_defaults(
        num_users=int(env("COLLECT_USERS") or 300),
        spawn_rate=float(env("COLLECT_SPAWN_RATE") or 5),
        run_time=env("DURATION") or "3m",
    )


@events.init.add_listener
def _init(environment, **_kw):
    opts = phase_options(environment, "locustfile_collect.py de-duplicates")
    if opts is None:  # used as a library
        return
    STATE.wait = wait_option(opts.wait)
    STATE.target = max(opts.records, 0)
    STATE.out = opts.out
    STATE.run_file = opts.run_file
    urls = [u.strip() for u in (opts.agents or "").split(",") if u.strip()]
    if not urls:
        urls = [environment.host or AgentUser.host]
    STATE.agents = [Agent(u) for u in urls]
    STATE.users, STATE.rate, STATE.sequential, STATE.duration = per_target_load(opts, len(urls))
    AgentUser.network_timeout = opts.request_timeout
    AgentUser.connection_timeout = min(opts.request_timeout, 5.0)
    for a in STATE.agents:
        a.vm, a.interval = probe_agent(a.url)
        if a.interval:
            a.interval_from = "its /healthz"
            msg = f"collect: agent {a.url} (vm {a.vm or 'unknown'}) samples every {a.interval * 1000:g}ms (its /healthz)"
            if STATE.duration and STATE.target and STATE.duration / a.interval < STATE.target:
                msg += (f": at most {int(STATE.duration / a.interval)} unique samples in {STATE.duration}s, "
                        f"short of {STATE.target}")
            log.info("%s", msg)
    STATE.conductor = Conductor(environment, len(urls), STATE.users, STATE.rate, STATE.duration, STATE.sequential,
                                done=lambda i: STATE.agents[i].done, begin=_begin, end=_end)
    log.info("collect: %d agent(s) %s, each %d users at %g/s, %s unique samples or %s, wait %g-%g s -> %s",
             len(urls), "one after another" if STATE.sequential else "at once", STATE.users, STATE.rate,
             STATE.target or "unlimited", f"{STATE.duration}s" if STATE.duration else "no time limit",
             STATE.wait[0], STATE.wait[1], STATE.out)


def _begin(i):
    STATE.agents[i].rec.begin()


def _end(i):
    a = STATE.agents[i]
    a.done = True
    a.rec.finish()


@events.test_start.add_listener
def _test_start(environment, **_kw):
    if STATE.conductor:
        STATE.conductor.start([a.rec for a in STATE.agents], lambda: STATE.stopping, _progress)


def _progress(runner, total):
    parts = [f"{a.url}: {len(a.records)}/{STATE.target or '-'}" for a in STATE.agents if a.rec.start is not None]
    log.info("collect: %s unique samples, %d duplicates, %d users, %d requests (%.1f req/s), %d failures",
             ", ".join(parts), sum(a.duplicates for a in STATE.agents),
             runner.user_count if runner else 0, total.num_requests if total else 0,
             total.current_rps if total else 0.0, total.num_failures if total else 0)


class AgentUser(FastHttpUser):
    """A user that keeps asking one agent for its latest sample."""

    host = os.environ.get("AGENT_URL") or "http://127.0.0.1:8090"

    def wait_time(self):
        return random.uniform(*STATE.wait)

    def on_start(self):
        self.agent = STATE.agents[STATE.conductor.bind()] if STATE.conductor else None
        if self.agent:
            self.agent.rec.users += 1

    def on_stop(self):
        if getattr(self, "agent", None):
            self.agent.rec.users -= 1

    @task
    def sample(self):
        a = self.agent
        if a is None or a.done or a.rec.start is None:
            return
        name = "GET /sample" if len(STATE.agents) == 1 else f"GET {a.url}/sample"
        t0 = time.monotonic()
        with self.client.get(a.url + "/sample", name=name, catch_response=True,
                             headers={"Accept": "application/json"}) as resp:
            ms = (time.monotonic() - t0) * 1000
            if a.done:  # the phase ended under this request: not the agent's failure
                resp.success()
                return
            if resp.status_code != 200:
                if resp.status_code == 0:
                    resp.failure(f"connection error: {getattr(resp, 'error', None)!r}")
                else:
                    resp.failure(f"HTTP {resp.status_code}: {first_line(resp, 200)}")
                a.rec.observe(ms, True)
                return
            try:
                body = json.loads(resp.content)
            except (TypeError, ValueError) as e:
                resp.failure(f"not JSON: {e}")
                a.rec.observe(ms, True)
                return
            recs = body if isinstance(body, list) else [body]
            for rec in recs:
                problem = check_record(rec)
                if problem:
                    a.invalid += 1
                    resp.failure(f"invalid record: {problem}")
                    a.rec.observe(ms, True)
                    return
            a.rec.observe(ms, False)
            for rec in recs:
                _keep(a, rec)


def _keep(a, rec):
    if STATE.target and len(a.records) >= STATE.target:
        return
    key = record_key(rec)
    if key in a.seen:
        a.duplicates += 1
        return
    a.seen.add(key)
    a.records.append(rec)
    if a.vm is None and isinstance(rec.get("vm"), str):
        a.vm = rec["vm"]
    if STATE.target and len(a.records) >= STATE.target:
        a.reached = True
        a.done = True
        a.rec.finish()
        log.info("collect: %s: %d unique samples", a.url, len(a.records))


@events.quitting.add_listener
def _quitting(environment, **_kw):
    STATE.stopping = True
    interrupted = not (STATE.conductor and STATE.conductor.finished)
    records = [r for a in STATE.agents for r in a.records]
    code = 0
    if records:
        try:
            write_atomic(STATE.out, encode_records(records))
        except OSError as e:
            log.error("collect: writing %s: %s", STATE.out, e)
            environment.process_exit_code = 1
            return
    tool = f"locust {locust.__version__}"
    phases, shorts = [], []
    for a in STATE.agents:
        if a.rec.start is None:
            shorts.append(f"{a.url}: not polled (interrupted before its turn)")
            continue
        a.rec.finish()
        n, el = len(a.records), a.rec.elapsed()
        received = n + a.duplicates
        lat = a.rec.total.summary()
        how = "target reached" if a.reached else "time limit or interrupted"
        log.info("collect: %s: %d unique samples (vm %s) in %.1fs (%s): %.1f samples/s; %d requests (%.1f req/s), "
                 "%d failed; %d duplicates; unique ratio %.3f; latency p50 %.1f ms, p95 %.1f ms",
                 a.url, n, a.vm or "unknown", el, how, n / el if el else 0.0, a.rec.requests,
                 a.rec.requests / el if el else 0.0, a.rec.failures, a.duplicates, n / received if received else 0.0,
                 lat["p50_ms"], lat["p95_ms"])
        interval, source = a.interval, a.interval_from
        if not interval:
            interval, source = infer_interval(a.records), "inferred from the samples' times"
        p = phase_common(a.rec, "collect", tool, a.url, a.vm or "", STATE.users, STATE.rate,
                         f"{STATE.wait[0]:g}s-{STATE.wait[1]:g}s", "sequential" if STATE.sequential else "parallel",
                         STATE.out)
        p.update(goal=STATE.target, duration=f"{STATE.duration}s" if STATE.duration else "0s", unique=n,
                 duplicates=a.duplicates, outcome="ok")
        if interval:
            p.update(agent_interval=f"{interval * 1000:g}ms",
                     agent_interval_from="healthz" if source == "its /healthz" else "samples")
        msg = shortfall(n, STATE.target, STATE.duration or el, el, a.rec.requests, a.rec.failures, interval, source,
                        a.url, interrupted and not a.reached)
        if not msg and n == 0:
            msg = f"{a.url}: no samples collected"
        if msg:
            p.update(outcome="short", message=msg)
            shorts.append(msg)
        phases.append(p)
    log.info("collect: %d samples %s", len(records), f"written to {STATE.out}" if records else "collected; nothing written")
    if STATE.run_file and phases:
        try:
            save_run(STATE.run_file, phases)
            log.info("collect: run recorded in %s (a new run; `vmpulse-load report` turns it into a report)", STATE.run_file)
        except OSError as e:
            log.error("collect: writing %s: %s", STATE.run_file, e)
            code = 1
    for s in shorts:
        log.error("SHORT: %s", s)
        code = 1
    environment.process_exit_code = code
