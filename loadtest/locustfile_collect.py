"""vmpulse load generation, phase 1: collect records from the agent.

Simulated users poll the agent's GET /sample. The agent samples on a ticker and serves
its latest snapshot, so a user polling faster than the sampling interval gets the same
record again: records are de-duplicated by their "id" (records without one by their
content). The run stops on its own once --records unique records are in (or at
--run-time) and writes them to --out atomically, as a JSON array with one record per line
(the records file that locustfile_send.py and `vmpulse-load` read).

Defaults follow the assignment: 300 users, each waiting 1-2 s between requests, for
3 minutes. The assignment adds "new users every second"; at 1 user/s the 300th user
would start after 5 minutes, i.e. never in a 3-minute run, so the default spawn rate is
5 users/s: all 300 run after 60 s and the last 2 minutes are at full load.

The number of unique records is set by the agent, not by the users: one per sampling
interval. ~2000 records in 3 minutes need the agent to sample every 90 ms or faster
(vmpulse-up -agent-interval 90ms); at the default 1 s you get ~180.

    locust -f loadtest/locustfile_collect.py --headless -H http://127.0.0.1:8090 \\
        -u 300 -r 5 -t 3m --records 2000 --out out/records.json \\
        --csv out/records-collect --html out/records-collect.html

Options (flag, environment variable, default):
    -H/--host        AGENT_URL (or LOCUST_HOST)     http://127.0.0.1:8090
    -u/--users       COLLECT_USERS (or LOCUST_USERS) 300
    -r/--spawn-rate  COLLECT_SPAWN_RATE (or LOCUST_SPAWN_RATE) 5
    -t/--run-time    DURATION (or LOCUST_RUN_TIME)   3m
    --records        RECORDS                         2000 (0: only the time limit)
    --out            OUT                             out/records.json
    --wait           COLLECT_WAIT                    1-2 (seconds; "1s-2s", "500ms-1s" work too)
    --request-timeout TIMEOUT                        10 (seconds)

Run it as one Locust process (no --master/--worker): the set of records seen lives in it.
Exit code: 0 when records were written, 1 when none were collected.
Standard library and Locust only (FastHttpUser, Locust's gevent HTTP client).
"""

import hashlib
import json
import logging
import os
import random
import sys
import time

import gevent
from locust import FastHttpUser, events, task
from locust.runners import MasterRunner, WorkerRunner

from recordsfile import encode_records, parse_wait, write_atomic


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


class State:
    """What the run has gathered; one per process, shared by all users."""

    def __init__(self):
        self.target = 0
        self.out = ""
        self.wait = (1.0, 2.0)
        self.records = []
        self.seen = set()
        self.duplicates = 0
        self.invalid = 0
        self.started = None
        self.completed = None  # when the target was reached
        self.stopping = False


STATE = State()


@events.init_command_line_parser.add_listener
def _add_options(parser):
    env = os.environ.get
    parser.add_argument("--records", type=int, env_var="RECORDS", default=2000,
                        help="stop at this many unique records (0: only --run-time) [RECORDS]")
    parser.add_argument("--out", env_var="OUT", default="out/records.json",
                        help="records file to write (JSON array) [OUT]")
    parser.add_argument("--wait", env_var="COLLECT_WAIT", default="1-2",
                        help="each user waits a random time in this range after each request, "
                             "seconds or durations: 1-2, 1s-2s [COLLECT_WAIT]")
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
    if isinstance(environment.runner, (MasterRunner, WorkerRunner)):
        sys.exit("locustfile_collect.py de-duplicates in one process: run it without --master/--worker")
    opts = environment.parsed_options
    if opts is None:  # used as a library
        return
    try:
        STATE.wait = parse_wait(opts.wait)
    except ValueError as e:
        sys.exit(f"--wait: {e}")
    STATE.target = max(opts.records, 0)
    STATE.out = opts.out
    AgentUser.network_timeout = opts.request_timeout
    AgentUser.connection_timeout = min(opts.request_timeout, 5.0)
    log.info("collect: %s/sample, %s unique records or %s, wait %g-%g s -> %s",
             (environment.host or AgentUser.host).rstrip("/"), STATE.target or "unlimited",
             f"{opts.run_time}s" if opts.run_time else "no time limit", STATE.wait[0], STATE.wait[1], STATE.out)


@events.test_start.add_listener
def _test_start(environment, **_kw):
    if STATE.started is None:
        STATE.started = time.monotonic()
        gevent.spawn(_progress, environment)


def _progress(environment):
    while not STATE.stopping:
        gevent.sleep(2)
        runner = environment.runner
        total = runner.stats.total if runner else None
        log.info("collect: %d/%s unique records, %d duplicates, %d users, %d requests (%.1f req/s), %d failures",
                 len(STATE.records), STATE.target or "-", STATE.duplicates,
                 runner.user_count if runner else 0, total.num_requests if total else 0,
                 total.current_rps if total else 0.0, total.num_failures if total else 0)


def _finish(environment):
    """Stop the run: called once, from a greenlet of its own, when the target is reached."""
    log.info("collect: %d unique records: stopping", len(STATE.records))
    environment.runner.quit()


class AgentUser(FastHttpUser):
    """A user that keeps asking the agent for its latest sample."""

    host = os.environ.get("AGENT_URL") or "http://127.0.0.1:8090"

    def wait_time(self):
        return random.uniform(*STATE.wait)

    @task
    def sample(self):
        if STATE.stopping:
            return
        with self.client.get("/sample", name="GET /sample", catch_response=True,
                             headers={"Accept": "application/json"}) as resp:
            if resp.status_code != 200:
                if resp.status_code == 0:
                    resp.failure(f"connection error: {getattr(resp, 'error', None)!r}")
                else:
                    resp.failure(f"HTTP {resp.status_code}: {_first_line(resp)}")
                return
            try:
                body = json.loads(resp.content)
            except (TypeError, ValueError) as e:
                resp.failure(f"not JSON: {e}")
                return
            recs = body if isinstance(body, list) else [body]
            for rec in recs:
                problem = check_record(rec)
                if problem:
                    STATE.invalid += 1
                    resp.failure(f"invalid record: {problem}")
                    return
            for rec in recs:
                self._keep(rec)

    def _keep(self, rec):
        if STATE.target and len(STATE.records) >= STATE.target:
            return
        key = record_key(rec)
        if key in STATE.seen:
            STATE.duplicates += 1
            return
        STATE.seen.add(key)
        STATE.records.append(rec)
        if STATE.target and len(STATE.records) >= STATE.target and not STATE.stopping:
            STATE.stopping = True
            STATE.completed = time.monotonic()
            gevent.spawn(_finish, self.environment)


def _first_line(resp):
    try:
        text = (resp.text or "").strip()
    except Exception:  # noqa: BLE001 - a broken body is still just a failure message
        return ""
    return text.splitlines()[0][:200] if text else ""


@events.quitting.add_listener
def _quitting(environment, **_kw):
    STATE.stopping = True
    n = len(STATE.records)
    elapsed = ((STATE.completed or time.monotonic()) - STATE.started) if STATE.started else 0.0
    total = environment.runner.stats.total if environment.runner else None
    requests = total.num_requests if total else 0
    failures = total.num_failures if total else 0
    received = n + STATE.duplicates
    ratio = n / received if received else 0.0
    if n:
        try:
            write_atomic(STATE.out, encode_records(STATE.records))
        except OSError as e:
            log.error("collect: writing %s: %s", STATE.out, e)
            environment.process_exit_code = 1
            return
    how = "target reached" if STATE.completed else "time limit or interrupted"
    log.info("collect: %d unique records in %.1fs (%s): %.1f records/s; %d requests (%.1f req/s), "
             "%d failed; %d duplicates; unique ratio %.3f%s",
             n, elapsed, how, n / elapsed if elapsed else 0.0, requests,
             requests / elapsed if elapsed else 0.0, failures, STATE.duplicates, ratio,
             f"; written to {STATE.out}" if n else "; nothing written")
    environment.process_exit_code = 0 if n else 1
