"""vmpulse load generation, phase 2: send the collected records to the ingress.

Simulated users take records from one shared queue, so that each record is sent by one
user at a time and committed exactly once, and POST each to the traffic split's
/ingest (Content-Type: application/json, one record per request). The ingress answers
201 only after the row is committed and is idempotent on the record id, so resending
after a failure is safe:

  * 2xx: committed.
  * 5xx, 408, 429, connection errors, timeouts: a failure, counted (it shows in Locust's
    statistics), and the record goes back to the queue to be retried after an
    exponential backoff (0.5 s doubling up to 15 s, with jitter; Retry-After honoured),
    by whichever user is free, up to --max-attempts; then it is given up and reported.
  * other 4xx: the ingress rejects the record (the message names the field); counted
    as rejected and logged, not retried.

The run ends by itself when the queue is empty and nothing is in flight. Records never
acknowledged (given up, or left when --run-time or Ctrl-C stops the run) are written to
<in>.unsent.json, which can be sent again with --in; nothing is dropped silently.

Defaults follow the assignment: 150 users, each waiting 1-4 s between requests, 5 new
users per second (the assignment's "every second"; all 150 run after 30 s).

    locust -f loadtest/locustfile_send.py --headless -H http://127.0.0.1:8000 \\
        -u 150 -r 5 --in out/records.json \\
        --csv out/records-send --html out/records-send.html

Options (flag, environment variable, default):
    -H/--host         INGRESS_URL (or LOCUST_HOST)   http://127.0.0.1:8000
    -u/--users        SEND_USERS (or LOCUST_USERS)   150
    -r/--spawn-rate   SEND_SPAWN_RATE (or LOCUST_SPAWN_RATE) 5
    -t/--run-time     LOCUST_RUN_TIME                none: until every record is sent
    --in              IN                             out/records.json
    --wait            SEND_WAIT                      1-4 (seconds; "1s-4s" works too)
    --max-attempts    MAX_ATTEMPTS                   10
    --request-timeout TIMEOUT                        30 (seconds)

Run it as one Locust process (no --master/--worker): the queue lives in it.
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
from locust import HttpUser, events, task
from locust.runners import MasterRunner, WorkerRunner

from recordsfile import encode_records, parse_wait, write_atomic


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
    """Every record is pending, waiting for a retry, in flight with one user, or done.
    gevent switches only at I/O, so plain Python structures are safe here."""

    def __init__(self, records):
        self.total = len(records)
        self.pending = collections.deque(Job(i, r) for i, r in enumerate(records))
        self.retries = []  # heap of (due, seq, job)
        self.seq = itertools.count()
        self.in_flight = {}
        self.committed = 0
        self.rejected = []  # (job, status, message)
        self.gave_up = []   # (job, status, message)
        self.failures = 0   # retryable failed attempts
        self.resends = 0
        self.logged = 0
        self.finished = False
        self.started = None
        self.ended = None

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

    def note(self, line):
        if self.logged < MAX_LOGGED:
            self.logged += 1
            log.warning("%s", line)
            if self.logged == MAX_LOGGED:
                log.warning("send: further failures and rejections are only counted")


QUEUE = Queue([])
OPTS = {"wait": (1.0, 4.0), "max_attempts": 10, "in": "out/records.json", "timeout": (5.0, 30.0)}


@events.init_command_line_parser.add_listener
def _add_options(parser):
    env = os.environ.get
    parser.add_argument("--in", dest="in_file", env_var="IN", default="out/records.json",
                        help="records file to send (JSON array of records) [IN]")
    parser.add_argument("--wait", env_var="SEND_WAIT", default="1-4",
                        help="each user waits a random time in this range after each request, "
                             "seconds or durations: 1-4, 1s-4s [SEND_WAIT]")
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
    global QUEUE
    if isinstance(environment.runner, (MasterRunner, WorkerRunner)):
        sys.exit("locustfile_send.py keeps its queue in one process: run it without --master/--worker")
    opts = environment.parsed_options
    if opts is None:  # used as a library
        return
    try:
        OPTS["wait"] = parse_wait(opts.wait)
    except ValueError as e:
        sys.exit(f"--wait: {e}")
    OPTS["max_attempts"] = max(opts.max_attempts, 1)
    OPTS["in"] = opts.in_file
    OPTS["timeout"] = (min(opts.request_timeout, 5.0), opts.request_timeout)
    try:
        with open(opts.in_file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"--in {opts.in_file}: {e}")
    records = data if isinstance(data, list) else [data]
    QUEUE = Queue(records)
    log.info("send: %d records from %s -> %s/ingest, wait %g-%g s, at most %d attempts each",
             QUEUE.total, opts.in_file, (environment.host or IngressUser.host).rstrip("/"),
             OPTS["wait"][0], OPTS["wait"][1], OPTS["max_attempts"])


@events.test_start.add_listener
def _test_start(environment, **_kw):
    if QUEUE.started is None:
        QUEUE.started = time.monotonic()
        gevent.spawn(_progress, environment)
        _maybe_finish(environment)  # an empty file


def _progress(environment):
    while not QUEUE.finished:
        gevent.sleep(2)
        runner = environment.runner
        total = runner.stats.total if runner else None
        log.info("send: %d/%d committed, %d in flight, %d waiting to retry, %d failed attempts, "
                 "%d rejected, %d gave up, %d users, %.1f req/s",
                 QUEUE.committed, QUEUE.total, len(QUEUE.in_flight), len(QUEUE.retries),
                 QUEUE.failures, len(QUEUE.rejected), len(QUEUE.gave_up),
                 runner.user_count if runner else 0, total.current_rps if total else 0.0)


def _maybe_finish(environment):
    if QUEUE.idle() and not QUEUE.finished:
        QUEUE.finished = True
        QUEUE.ended = time.monotonic()
        log.info("send: every record answered: stopping")
        gevent.spawn(environment.runner.quit)


def _backoff(attempt, retry_after):
    d = min(BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF)
    return max(d / 2 + random.uniform(0, d / 2), retry_after)


def _message(resp):
    try:
        text = (resp.text or "").strip()
    except Exception:  # noqa: BLE001 - a broken body is still just a message
        text = ""
    return text.splitlines()[0][:300] if text else ""


class IngressUser(HttpUser):
    """A user that sends the next record of the shared queue."""

    host = os.environ.get("INGRESS_URL") or "http://127.0.0.1:8000"

    def wait_time(self):
        return random.uniform(*OPTS["wait"])

    @task
    def send_one(self):
        job = QUEUE.take()
        if job is None:  # nothing ready: others are in flight or retries are due later
            _maybe_finish(self.environment)
            return
        name = "POST /ingest" if job.attempt == 1 else "POST /ingest (retry)"
        # If the run is stopped during the request, the job stays in flight and is
        # reported unsent.
        try:
            with self.client.post("/ingest", data=job.body, name=name, catch_response=True,
                                  timeout=OPTS["timeout"],
                                  headers={"Content-Type": "application/json"}) as resp:
                self._handle(job, resp)
        except gevent.GreenletExit:
            raise
        except Exception as e:  # a bug or a client error: never strand the record
            if id(job) in QUEUE.in_flight:
                _failed(job, 0, f"client error: {e!r}", 0.0)
            raise
        finally:
            _maybe_finish(self.environment)

    def _handle(self, job, resp):
        status = resp.status_code
        if 200 <= status < 300:
            resp.success()
            QUEUE.done(job)
            QUEUE.committed += 1
            return
        if 400 <= status < 500 and status not in (408, 429):
            msg = _message(resp) or f"HTTP {status}"
            resp.failure(f"rejected: HTTP {status}: {msg}")
            QUEUE.done(job)
            QUEUE.rejected.append((job, status, msg))
            QUEUE.note(f"send: rejected {job}: HTTP {status}: {msg}")
            return
        if status == 0:
            msg = f"connection error: {getattr(resp, 'error', None)}"
        else:
            msg = f"HTTP {status}: {_message(resp)}"
        resp.failure(msg)
        retry_after = 0.0
        try:
            retry_after = min(float(resp.headers.get("Retry-After") or 0), 60.0) if resp.headers else 0.0
        except (TypeError, ValueError):
            pass
        _failed(job, status, msg, retry_after)


def _failed(job, status, msg, retry_after):
    """A retryable failure: back to the queue after a backoff, or given up."""
    QUEUE.failures += 1
    if job.attempt >= OPTS["max_attempts"]:
        QUEUE.done(job)
        QUEUE.gave_up.append((job, status, msg))
        QUEUE.note(f"send: gave up on {job} after {job.attempt} attempts: {msg}")
        return
    delay = _backoff(job.attempt, retry_after)
    QUEUE.note(f"send: attempt {job.attempt} of {job} failed ({msg}); retrying in {delay:.1f}s")
    QUEUE.retry(job, delay)


@events.quitting.add_listener
def _quitting(environment, **_kw):
    q = QUEUE
    q.finished = True
    end = q.ended or time.monotonic()
    elapsed = end - q.started if q.started else 0.0
    unsent = q.unsent()
    total = environment.runner.stats.total if environment.runner else None
    requests = total.num_requests if total else 0
    log.info("send: %d/%d records committed in %.1fs; %d requests (%.1f req/s); %d failed attempts "
             "(%d resends); %d rejected; %d gave up; %d unsent",
             q.committed, q.total, elapsed, requests, requests / elapsed if elapsed else 0.0,
             q.failures, q.resends, len(q.rejected), len(q.gave_up), len(unsent))
    reasons = collections.Counter(f"HTTP {s}: {m}" for _, s, m in q.rejected)
    for reason, n in reasons.most_common(10):
        log.info("send:   rejected %d x %s", n, reason)
    code = 0
    if unsent:
        base = OPTS["in"][:-5] if OPTS["in"].endswith(".json") else OPTS["in"]
        path = base + ".unsent.json"
        try:
            write_atomic(path, encode_records([j.record for j in unsent]))
            log.warning("send: the %d unsent records are in %s (send them with --in %s)", len(unsent), path, path)
        except OSError as e:
            log.error("send: writing %s: %s", path, e)
        code = 1
    if q.rejected:
        code = 1
    environment.process_exit_code = code
