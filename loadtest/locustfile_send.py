"""vmpulse load generation, phase 2: send the collected records to the ingress.

Simulated users take records from one shared queue per VM, so that each record is sent
by one user at a time and committed exactly once, and POST each to the traffic split's
/ingest (Content-Type: application/json, Authorization: Bearer <token>, one record per
request). The ingress answers 201 only after the row is committed and is idempotent on
the record id, so resending after a failure is safe:

  * 2xx: committed. The body names the route that stored it and its commit time
    (route, commit_ms): both are aggregated per route for the report.
  * 401/403: the token was refused; the phase stops at once (every record would get
    the same answer).
  * 5xx, 408, 429, connection errors, timeouts: a failure, counted (it shows in Locust's
    statistics), and the record goes back to the queue to be retried after an
    exponential backoff (0.5 s doubling up to 15 s, with jitter; Retry-After honoured),
    by whichever user is free, up to --max-attempts; then it is given up and reported.
  * other 4xx: the ingress rejects the record (the message names the field); counted
    as rejected and logged, not retried.

The ingest token comes from INGEST_TOKEN (the token itself) or --token-file /
INGEST_TOKEN_FILE (a file whose first non-empty line is the token; `make up` writes
.vmpulse/ingest-token); --no-token sends without one to an ingress that runs without
auth. Without any of them the run stops at once and says so.

Records files of other implementations are read as they are (recordsfile.py): a JSON
array, JSON Lines, one record, or an object holding the array under "metrics",
"records", "data", "samples", "items", ...; RAM figures in KiB or bytes are found per
file (or given with --ram-unit) and sent in MiB. What was found is logged.

The records of each VM (their "vm") get the same load: -u and -r are per VM, all VMs at
once by default, one after another (each with the same ramp-up) with --sequential. The
run ends by itself when every record is answered. Records never acknowledged (given
up, or left when --run-time or Ctrl-C stops the run) are written to <in>.unsent.json,
which can be sent again with --in; nothing is dropped silently. The phase is recorded in
--run-file, with the collect phase that wrote --in when there is one.

Defaults follow the assignment: 150 users, each waiting 1-4 s between requests, 5 new
users per second (the assignment's "every second"; all 150 run after 30 s).

    INGEST_TOKEN=... locust -f loadtest/locustfile_send.py --headless -H http://127.0.0.1:8000 \\
        -u 150 -r 5 --in out/records.json \\
        --csv out/records-send --html out/records-send.html

Options (flag, environment variable, default):
    -H/--host         INGRESS_URL (or LOCUST_HOST)   http://127.0.0.1:8000
    -u/--users        SEND_USERS (or LOCUST_USERS)   150 per VM
    -r/--spawn-rate   SEND_SPAWN_RATE (or LOCUST_SPAWN_RATE) 5 per VM
    -t/--run-time     LOCUST_RUN_TIME                none: until every record is sent (per VM)
    --in              IN                             out/records.json
    --ram-unit        RAM_UNIT                       auto (mib, kib, bytes)
    --token-file      INGEST_TOKEN_FILE              (INGEST_TOKEN gives the token itself)
    --no-token                                       off
    --sequential      SEQUENTIAL                     off: all VMs at once
    --run-file        RUN_FILE                       out/run.json ("": none)
    --wait            SEND_WAIT                      1-4 (seconds; "1s-4s" works too)
    --max-attempts    MAX_ATTEMPTS                   10
    --request-timeout TIMEOUT                        30 (seconds)

Run it as one Locust process (no --master/--worker): the queues live in it.
Exit code: 0 when every record was committed, 1 otherwise.
Standard library and Locust only. The users are HttpUser (requests), not FastHttpUser:
geventhttpclient silently resends a request when the server closes the connection
without answering, which would hide failures from the counts; urllib3 as Locust
configures it does not retry, so every failure reaches the queue below.
"""

import collections
import heapq
import itertools
import json
import logging
import os
import random
import sys
import time

import gevent
import locust
from locust import HttpUser, events, task

from recordsfile import RecordsFileError, add_phase_options, encode_records, read_records_file, wait_option, write_atomic
from runfile import (Conductor, Recorder, first_line, load_token, per_target_load, percentile, phase_common,
                     phase_options, save_run)


log = logging.getLogger("vmpulse.send")

BACKOFF = 0.5      # seconds before the first retry, doubled each time
MAX_BACKOFF = 15.0
MAX_LOGGED = 50    # rejections/failures logged one by one; the rest are only counted


class Job:
    __slots__ = ("index", "record", "body", "key", "attempt")

    def __init__(self, index, record):
        self.index = index
        self.record = record
        self.body = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        rid = record.get("id") if isinstance(record, dict) else None
        self.key = rid if isinstance(rid, str) and rid else None
        self.attempt = 0

    def __str__(self):
        return f"record {self.index}" + (f" ({self.key})" if self.key else "")


class Queue:
    """One VM's records. Every record is pending, waiting for a retry, in flight with
    one user, or done. gevent switches only at I/O, so plain Python structures are
    safe here."""

    def __init__(self, vm, jobs):
        self.vm = vm
        self.total = len(jobs)
        self.pending = collections.deque(jobs)
        self.retries = []  # heap of (due, seq, job)
        self.seq = itertools.count()
        self.in_flight = {}
        self.committed = 0
        self.rejected = []  # (job, status, message)
        self.gave_up = []   # (job, status, message)
        self.failures = 0   # retryable failed attempts
        self.resends = 0
        self.routes = {}    # route -> [records, [commit_ms]]
        self.finished = False
        self.sent = []      # committed jobs
        self.rec = Recorder()

    def take(self):
        now = time.monotonic()
        if self.retries and self.retries[0][0] <= now:
            job = heapq.heappop(self.retries)[2]
        elif self.pending:
            job = self.pending.popleft()
        else:
            return None
        job.attempt += 1
        if job.attempt > 1:
            self.resends += 1
        self.in_flight[id(job)] = job
        return job

    def done(self, job):
        self.in_flight.pop(id(job), None)

    def retry(self, job, delay):
        self.done(job)
        heapq.heappush(self.retries, (time.monotonic() + delay, next(self.seq), job))

    def idle(self):
        return not self.pending and not self.retries and not self.in_flight

    def unsent(self):
        jobs = [j for j, _, _ in self.gave_up] + list(self.pending) + \
               [j for _, _, j in self.retries] + list(self.in_flight.values())
        return sorted(jobs, key=lambda j: j.index)

    def hora_span(self):
        hs = []
        for j in itertools.chain(self.pending, (j for _, _, j in self.retries), self.in_flight.values(),
                                 (j for j, _, _ in self.gave_up), (j for j, _, _ in self.rejected), self.sent):
            h = j.record.get("hora") if isinstance(j.record, dict) else None
            if isinstance(h, str):
                hs.append(h[:19].replace("T", " "))
        return (min(hs), max(hs)) if hs else ("", "")


class State:
    def __init__(self):
        self.queues = []
        self.total = 0
        self.logged = 0
        self.unauthorized = None
        self.conductor = None
        self.stopping = False
        self.file = None

    def note(self, line):
        if self.logged < MAX_LOGGED:
            self.logged += 1
            log.warning("%s", line)
            if self.logged == MAX_LOGGED:
                log.warning("send: further failures and rejections are only counted")


STATE = State()
OPTS = {"wait": (1.0, 4.0), "max_attempts": 10, "in": "out/records.json", "timeout": (5.0, 30.0),
        "token": "", "users": 150, "rate": 5.0, "sequential": False, "run_file": "out/run.json", "duration": 0}


@events.init_command_line_parser.add_listener
def _add_options(parser):
    env = os.environ.get
    parser.add_argument("--in", dest="in_file", env_var="IN", default="out/records.json",
                        help="records file to send (a JSON array, JSON Lines, or an object holding the records) [IN]")
    parser.add_argument("--ram-unit", env_var="RAM_UNIT", default="auto",
                        help="unit of the file's RAM figures: auto (found from the file, and logged), mib, kib or bytes [RAM_UNIT]")
    parser.add_argument("--token-file", env_var="INGEST_TOKEN_FILE", default="",
                        help="file whose first non-empty line is the ingest token (`make up` writes "
                             ".vmpulse/ingest-token); INGEST_TOKEN=<token> gives the token itself and wins [INGEST_TOKEN_FILE]")
    parser.add_argument("--no-token", action="store_true", default=False,
                        help="send without a token, to an ingress that runs without auth")
    add_phase_options(parser, "VMs", "SEND_WAIT", "1-4")
    parser.add_argument("--max-attempts", type=int, env_var="MAX_ATTEMPTS", default=10,
                        help="attempts per record before giving up on it [MAX_ATTEMPTS]")
    parser.add_argument("--request-timeout", type=float, env_var="TIMEOUT", default=30.0,
                        help="per-request timeout in seconds [TIMEOUT]")
    parser.set_defaults(
        num_users=int(env("SEND_USERS") or 150),
        spawn_rate=float(env("SEND_SPAWN_RATE") or 5),
    )


@events.init.add_listener
def _init(environment, **_kw):
    opts = phase_options(environment, "locustfile_send.py keeps its queue")
    if opts is None:  # used as a library
        return
    OPTS["wait"] = wait_option(opts.wait)
    OPTS["max_attempts"] = max(opts.max_attempts, 1)
    OPTS["in"] = opts.in_file
    OPTS["timeout"] = (min(opts.request_timeout, 5.0), opts.request_timeout)
    OPTS["run_file"] = opts.run_file
    if not opts.no_token:
        try:
            OPTS["token"] = load_token(os.environ.get("INGEST_TOKEN", ""), opts.token_file)
        except ValueError as e:
            sys.exit(f"send: {e}")
    try:
        rf = read_records_file(opts.in_file, opts.ram_unit)
    except (OSError, RecordsFileError) as e:
        sys.exit(f"--in {opts.in_file}: {e}")
    STATE.file = rf
    log.info("send: %s: %s", opts.in_file, rf.describe())
    groups = {}
    for i, r in enumerate(rf.records):
        vm = r.get("vm") if isinstance(r, dict) and isinstance(r.get("vm"), str) and r.get("vm") else "unknown"
        groups.setdefault(vm, []).append(Job(i, r))
    STATE.queues = [Queue(vm, jobs) for vm, jobs in groups.items()]
    STATE.total = len(rf.records)
    OPTS["users"], OPTS["rate"], OPTS["sequential"], OPTS["duration"] = per_target_load(opts, len(STATE.queues))
    STATE.conductor = Conductor(environment, max(len(STATE.queues), 1), OPTS["users"], OPTS["rate"], OPTS["duration"],
                                OPTS["sequential"], done=_group_done, begin=lambda i: _group(i) and _group(i).rec.begin(),
                                end=_group_end)
    log.info("send: VMs %s %s -> %s/ingest %s, each %d users at %g/s, wait %g-%g s, at most %d attempts per record",
             ", ".join(f"{q.vm} ({q.total})" for q in STATE.queues),
             "one after another" if OPTS["sequential"] else "at once",
             (environment.host or IngressUser.host).rstrip("/"),
             "with the ingest token" if OPTS["token"] else "without a token (--no-token)",
             OPTS["users"], OPTS["rate"], OPTS["wait"][0], OPTS["wait"][1], OPTS["max_attempts"])


def _group(i):
    return STATE.queues[i] if i < len(STATE.queues) else None


def _group_done(i):
    q = _group(i)
    return q is None or q.idle() or STATE.unauthorized is not None


def _group_end(i):
    q = _group(i)
    if q:
        q.finished = True
        q.rec.finish()


@events.test_start.add_listener
def _test_start(environment, **_kw):
    if STATE.conductor:
        STATE.conductor.start([q.rec for q in STATE.queues], lambda: STATE.stopping, _progress)


def _progress(runner, total):
    log.info("send: %s; %d users, %.1f req/s",
             "; ".join(f"{q.vm}: {q.committed}/{q.total} committed, {len(q.in_flight)} in flight, "
                       f"{len(q.retries)} to retry, {len(q.rejected)} rejected, {len(q.gave_up)} gave up"
                       for q in STATE.queues if q.rec.start is not None),
             runner.user_count if runner else 0, total.current_rps if total else 0.0)


def _backoff(attempt, retry_after):
    d = min(BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF)
    return max(d / 2 + random.uniform(0, d / 2), retry_after)


class IngressUser(HttpUser):
    """A user that sends the next record of its VM's queue."""

    host = os.environ.get("INGRESS_URL") or "http://127.0.0.1:8000"

    def wait_time(self):
        return random.uniform(*OPTS["wait"])

    def on_start(self):
        self.queue = _group(STATE.conductor.bind()) if STATE.conductor else None
        if self.queue:
            self.queue.rec.users += 1

    def on_stop(self):
        if getattr(self, "queue", None):
            self.queue.rec.users -= 1

    @task
    def send_one(self):
        q = self.queue
        if q is None or q.finished or q.rec.start is None or STATE.unauthorized:
            return
        job = q.take()
        if job is None:  # nothing ready: others are in flight or retries are due later
            return
        name = "POST /ingest" if job.attempt == 1 else "POST /ingest (retry)"
        headers = {"Content-Type": "application/json"}
        if OPTS["token"]:
            headers["Authorization"] = "Bearer " + OPTS["token"]
        # If the run is stopped during the request, the job stays in flight and is
        # reported unsent.
        t0 = time.monotonic()
        try:
            with self.client.post("/ingest", data=job.body, name=name, catch_response=True,
                                  timeout=OPTS["timeout"], headers=headers) as resp:
                _handle(q, job, resp, (time.monotonic() - t0) * 1000)
        except gevent.GreenletExit:
            raise
        except Exception as e:  # a bug or a client error: never strand the record
            if id(job) in q.in_flight:
                _failed(q, job, 0, f"client error: {e!r}", 0.0)
            raise


def _handle(q, job, resp, ms):
    status = resp.status_code
    if status in (401, 403):
        resp.failure(f"HTTP {status}: token refused")
        q.done(job)
        q.pending.appendleft(job)  # never answered: unsent
        job.attempt -= 1
        if STATE.unauthorized is None:
            STATE.unauthorized = f"HTTP {status}: {first_line(resp, 300) or 'token refused'}"
            log.error("send: the ingress refused the token (%s): stopping", STATE.unauthorized)
        return
    q.rec.observe(ms, not 200 <= status < 300)
    if 200 <= status < 300:
        resp.success()
        q.done(job)
        q.committed += 1
        q.sent.append(job)
        try:
            body = json.loads(resp.content or b"{}")
        except ValueError:
            body = {}
        route = body.get("route") if isinstance(body, dict) and body.get("route") else "unknown"
        r = q.routes.setdefault(route, [0, []])
        r[0] += int(body.get("stored") or 1) if isinstance(body, dict) else 1
        cm = body.get("commit_ms") if isinstance(body, dict) else None
        if isinstance(cm, (int, float)) and not isinstance(cm, bool):
            r[1].append(float(cm))
        return
    if 400 <= status < 500 and status not in (408, 429):
        msg = first_line(resp, 300) or f"HTTP {status}"
        resp.failure(f"rejected: HTTP {status}: {msg}")
        q.done(job)
        q.rejected.append((job, status, msg))
        STATE.note(f"send: rejected {job}: HTTP {status}: {msg}")
        return
    if status == 0:
        msg = f"connection error: {getattr(resp, 'error', None)}"
    else:
        msg = f"HTTP {status}: {first_line(resp, 300)}"
    resp.failure(msg)
    retry_after = 0.0
    try:
        retry_after = min(float(resp.headers.get("Retry-After") or 0), 60.0) if resp.headers else 0.0
    except (TypeError, ValueError):
        pass
    _failed(q, job, status, msg, retry_after)


def _failed(q, job, status, msg, retry_after):
    """A retryable failure: back to the queue after a backoff, or given up."""
    q.failures += 1
    if job.attempt >= OPTS["max_attempts"]:
        q.done(job)
        q.gave_up.append((job, status, msg))
        STATE.note(f"send: gave up on {job} after {job.attempt} attempts: {msg}")
        return
    delay = _backoff(job.attempt, retry_after)
    STATE.note(f"send: attempt {job.attempt} of {job} failed ({msg}); retrying in {delay:.1f}s")
    q.retry(job, delay)


@events.quitting.add_listener
def _quitting(environment, **_kw):
    STATE.stopping = True
    code = 0
    tool = f"locust {locust.__version__}"
    phases, unsent_all = [], []
    committed = 0
    for q in STATE.queues:
        if q.rec.start is None:
            unsent_all += q.unsent()
            log.warning("send: %s: not sent (stopped before its turn)", q.vm)
            code = 1
            continue
        q.rec.finish()
        el = q.rec.elapsed()
        unsent = q.unsent()
        unsent_all += unsent
        committed += q.committed
        lat = q.rec.total.summary()
        log.info("send: %s: %d/%d records committed in %.1fs; %d requests (%.1f req/s); %d failed attempts "
                 "(%d resends); %d rejected; %d gave up; %d unsent; latency p50 %.1f ms, p95 %.1f ms",
                 q.vm, q.committed, q.total, el, q.rec.requests, q.rec.requests / el if el else 0.0,
                 q.failures, q.resends, len(q.rejected), len(q.gave_up), len(unsent), lat["p50_ms"], lat["p95_ms"])
        if q.routes:
            log.info("send: %s: by route, as the 201 bodies say: %s", q.vm, "; ".join(
                f"{r} {n} (commit p50 {percentile(cm, 0.5):.1f} ms, p95 {percentile(cm, 0.95):.1f} ms)"
                for r, (n, cm) in sorted(q.routes.items())))
        reasons = collections.Counter(f"HTTP {s}: {m}" for _, s, m in q.rejected)
        for reason, n in reasons.most_common(10):
            log.info("send:   rejected %d x %s", n, reason)
        first, last = q.hora_span()
        p = phase_common(q.rec, "send", tool, (environment.host or IngressUser.host).rstrip("/"), q.vm,
                         OPTS["users"], OPTS["rate"], f"{OPTS['wait'][0]:g}s-{OPTS['wait'][1]:g}s",
                         "sequential" if OPTS["sequential"] else "parallel", OPTS["in"])
        p.update(ram_unit=STATE.file.unit if STATE.file else "mib", records=q.total, committed=q.committed,
                 rejected=len(q.rejected), unsent=len(unsent), first_hora=first, last_hora=last,
                 routes={r: {"records": n, "commit_ms": cm} for r, (n, cm) in q.routes.items()}, outcome="ok")
        if q.rejected or unsent:
            p.update(outcome="short", message=f"{q.committed} of {q.total} records committed: "
                                              f"{len(q.rejected)} rejected, {len(unsent)} unsent")
            code = 1
        phases.append(p)
    if unsent_all:
        base = OPTS["in"][:-5] if OPTS["in"].endswith(".json") else OPTS["in"]
        path = base + ".unsent.json"
        try:
            write_atomic(path, encode_records([j.record for j in sorted(unsent_all, key=lambda j: j.index)]))
            log.warning("send: the %d unsent records are in %s (send them with --in %s)", len(unsent_all), path, path)
        except OSError as e:
            log.error("send: writing %s: %s", path, e)
        code = 1
    if OPTS["run_file"] and phases:
        try:
            joined = save_run(OPTS["run_file"], phases, join_records_file=OPTS["in"])
            log.info("send: recorded in %s %s", OPTS["run_file"],
                     f"with the collect phase that wrote {OPTS['in']}" if joined
                     else f"(a new run: no collect phase there wrote {OPTS['in']})")
        except OSError as e:
            log.error("send: writing %s: %s", OPTS["run_file"], e)
            code = 1
    if STATE.unauthorized:
        log.error("STOPPED: the ingress refused the token (%s): check INGEST_TOKEN or --token-file "
                  "(`make up` writes a fresh token to .vmpulse/ingest-token at every start)", STATE.unauthorized)
        code = 1
    if code == 0:
        log.info("send: all %d records committed", committed)
    log.info("send: %d/%d records committed", committed, STATE.total)
    environment.process_exit_code = code
