"""What both locustfiles share besides the records file: the run file (the record of
each phase that `vmpulse-load report` turns into a report; the same format the Go
driver writes, loadtest/report/run.go), per-second timelines with latency
percentiles, the start-up and the conductor that runs a phase against several agents
or VMs (all at once, or one after another with the same ramp-up each), the ingest
token, and what to say when a collect phase falls short. Standard library, gevent and
Locust's runner classes only.
"""

import json
import math
import os
import sys
import time
import urllib.request
from datetime import datetime, timezone

import gevent
from locust.runners import MasterRunner, WorkerRunner

from recordsfile import write_atomic

RUN_VERSION = 1


# --- latency histogram: 2 % buckets from 10 µs, as loadtest/driver/timeline.go ---

_BASE = 0.01
_LOG = math.log(1.02)


class Hist:
    def __init__(self):
        self.counts = {}
        self.n = 0
        self.sum = 0.0
        self.max = 0.0

    def add(self, ms):
        b = int(math.log(ms / _BASE) / _LOG) if ms > _BASE else 0
        self.counts[b] = self.counts.get(b, 0) + 1
        self.n += 1
        self.sum += ms
        self.max = max(self.max, ms)

    def quantile(self, q):
        if not self.n:
            return 0.0
        rank = max(math.ceil(q * self.n), 1)
        c = 0
        for b in sorted(self.counts):
            c += self.counts[b]
            if c >= rank:
                return min(_BASE * 1.02 ** (b + 1), self.max)
        return self.max

    def summary(self):
        if not self.n:
            return {"count": 0, "mean_ms": 0, "p50_ms": 0, "p95_ms": 0, "p99_ms": 0, "max_ms": 0}
        r = lambda x: round(x, 3)  # noqa: E731
        return {"count": self.n, "mean_ms": r(self.sum / self.n), "p50_ms": r(self.quantile(0.5)),
                "p95_ms": r(self.quantile(0.95)), "p99_ms": r(self.quantile(0.99)), "max_ms": r(self.max)}


def percentile(xs, q):
    """Nearest-rank q-quantile (0 for none)."""
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(max(math.ceil(q * len(s)) - 1, 0), len(s) - 1)]


class Recorder:
    """One phase's per-second timeline (users, requests, failures, latency) and totals."""

    def __init__(self):
        self.start_wall = None
        self.start = None
        self.end_wall = None
        self.secs = []  # [users, requests, failures, Hist]
        self.total = Hist()
        self.requests = 0
        self.failures = 0
        self.users = 0  # users bound to this phase now

    def begin(self):
        if self.start is None:
            self.start = time.monotonic()
            self.start_wall = datetime.now(timezone.utc)

    def finish(self):
        if self.start is not None and self.end_wall is None:
            self.tick()
            self.end_wall = datetime.now(timezone.utc)

    def _sec(self):
        i = max(int(time.monotonic() - self.start), 0)
        while len(self.secs) <= i:
            self.secs.append([None, 0, 0, Hist()])
        return self.secs[i]

    def observe(self, ms, failed):
        if self.start is None or self.end_wall is not None:
            return
        s = self._sec()
        s[1] += 1
        s[2] += failed
        s[3].add(ms)
        s[0] = self.users
        self.total.add(ms)
        self.requests += 1
        self.failures += failed

    def tick(self):
        if self.start is not None and self.end_wall is None:
            self._sec()[0] = self.users

    def timeline(self):
        out, users = [], 0
        for i, (u, req, fail, h) in enumerate(self.secs):
            if u is not None:
                users = u
            out.append({"t": i, "users": users, "requests": req, "failures": fail,
                        "p50_ms": round(h.quantile(0.5), 3), "p95_ms": round(h.quantile(0.95), 3)})
        return out

    def elapsed(self):
        if self.start_wall is None:
            return 0.0
        end = self.end_wall or datetime.now(timezone.utc)
        return (end - self.start_wall).total_seconds()


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt else "0001-01-01T00:00:00Z"


def phase_common(rec, phase, tool, url, vm, users, rate, wait, order, records_file):
    return {
        "phase": phase, "tool": tool, "url": url, "vm": vm,
        "started": rfc3339(rec.start_wall), "ended": rfc3339(rec.end_wall or rec.start_wall),
        "users": users, "spawn_rate": rate, "wait": wait, "order": order, "records_file": records_file,
        "requests": rec.requests, "failures": rec.failures, "latency": rec.total.summary(),
        "timeline": rec.timeline(),
    }


def save_run(path, phases, join_records_file=None):
    """Write phases as a new run, or (join_records_file set) add them to the run in
    path when a collect phase of it wrote that records file. Returns True when joined."""
    run, joined = {"version": RUN_VERSION, "phases": []}, False
    if join_records_file is not None:
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
            want = os.path.abspath(join_records_file)
            if old.get("version") == RUN_VERSION and any(
                    p.get("phase") == "collect" and os.path.abspath(p.get("records_file", "")) == want
                    for p in old.get("phases", [])):
                run, joined = old, True
        except (OSError, ValueError):
            pass
    run["phases"].extend(phases)
    starts = [p["started"] for p in run["phases"]]
    ends = [p["ended"] for p in run["phases"]]
    run["started"], run["ended"] = min(starts), max(ends)
    write_atomic(path, json.dumps(run, indent=1) + "\n")
    return joined


# --- start-up ---

def phase_options(environment, keeps):
    """Locust's parsed options (None when the locustfile is used as a library). keeps
    says what the phase holds in this one process ("locustfile_send.py keeps its
    queue"): under --master/--worker it would be split, so the run ends at once."""
    if isinstance(environment.runner, (MasterRunner, WorkerRunner)):
        sys.exit(f"{keeps} in one process: run it without --master/--worker")
    return environment.parsed_options


# --- several agents or VMs: all at once, or in turn with the same ramp-up each ---

def per_target_load(opts, n):
    """(users, spawn rate, sequential, time limit) of each of n targets from Locust's
    options, which speak for the whole run: so that every target gets -u users at -r,
    a parallel run has Locust spawn users × n at rate × n, and the time limit (-t)
    is per target, kept by the Conductor rather than by Locust."""
    users, rate = opts.num_users, opts.spawn_rate
    sequential = opts.sequential and n > 1
    duration = opts.run_time or 0
    opts.run_time = None
    if not sequential and n > 1:
        opts.num_users = users * n
        opts.spawn_rate = rate * n
    return users, rate, sequential, duration


class Conductor:
    """Runs a phase for n targets. Parallel: main's runner.start already spawns
    users × n users, bound to the targets in turn; the phase ends when every target
    is done or the time limit passes. Sequential: main spawns users for target 0;
    when it is done (or its time limit passes) all users are stopped and users are
    spawned again at the same rate for the next target."""

    def __init__(self, environment, n, users, rate, duration, sequential, done, begin, end):
        self.env, self.n, self.users, self.rate = environment, n, users, rate
        self.duration, self.sequential = duration, sequential
        self.done, self.begin, self.end = done, begin, end  # callbacks taking the target index
        self.current = 0
        self.next_user = 0
        self.greenlet = None
        self.finished = False

    def bind(self):
        """The target of a user starting now."""
        if self.sequential:
            return self.current
        i = self.next_user % self.n
        self.next_user += 1
        return i

    def start(self, recorders, stopping, progress):
        """Start the phase, once: the conductor, the recorders' ticker and, every 2 s
        until stopping(), progress(runner, total stats) (either may be None)."""
        if self.greenlet is not None:
            return
        self.greenlet = gevent.spawn(self._run)
        gevent.spawn(ticker, recorders, stopping)
        gevent.spawn(self._progress, stopping, progress)

    def _progress(self, stopping, progress):
        while not stopping():
            gevent.sleep(2)
            runner = self.env.runner
            progress(runner, runner.stats.total if runner else None)

    def _wait(self, idx):
        t0 = time.monotonic()
        while True:
            if all(self.done(i) for i in idx):
                return
            if self.duration and time.monotonic() - t0 >= self.duration:
                return
            gevent.sleep(0.1)

    def _run(self):
        runner = self.env.runner
        try:
            if not self.sequential:
                for i in range(self.n):
                    self.begin(i)
                self._wait(range(self.n))
                for i in range(self.n):
                    self.end(i)
                return
            for i in range(self.n):
                if i > 0:
                    runner.start(0, min(max(self.users, 1), 100))
                    t0 = time.monotonic()
                    while runner.user_count > 0 and time.monotonic() - t0 < 30:
                        gevent.sleep(0.1)
                    self.current = i
                    runner.start(self.users, self.rate)
                self.current = i
                self.begin(i)
                self._wait([i])
                self.end(i)
        finally:
            self.finished = True
            gevent.spawn(runner.quit)


def first_line(resp, limit):
    """The first line of a response's body, at most limit characters, for a message."""
    try:
        text = (resp.text or "").strip()
    except Exception:  # noqa: BLE001 - a broken body is still just a message
        return ""
    return text.splitlines()[0][:limit] if text else ""


def ticker(recorders, stop):
    """Every second, note each recorder's users (so that idle seconds have them)."""
    while not stop():
        gevent.sleep(1)
        for r in recorders:
            r.tick()


# --- the ingest token ---

NO_TOKEN = ("no ingest token: the ingress answers 401 without one. Pass it as INGEST_TOKEN=<token>, "
            "or in a file with --token-file FILE (INGEST_TOKEN_FILE; `make up` writes .vmpulse/ingest-token), "
            "or use --no-token for an ingress that runs without auth")


def load_token(token, path):
    """INGEST_TOKEN when set, else the first non-empty line of path; ValueError
    (never quoting the token) when there is none."""
    if token and token.strip():
        return token.strip()
    if not path:
        raise ValueError(NO_TOKEN)
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    return line.strip()
    except OSError as e:
        raise ValueError(f"reading the token file: {e}") from None
    raise ValueError(f"token file {path} is empty")


# --- the agent's sampling interval, and what to say when a phase falls short ---

def parse_go_duration(s):
    import re
    total, pos = 0.0, 0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    for m in re.finditer(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", s or ""):
        if m.start() != pos:
            return 0.0
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    return total if pos == len(s or "") and total > 0 else 0.0


def probe_agent(url, timeout=5):
    """(vm, interval seconds or 0) from the agent's /healthz; (None, 0) when it says nothing."""
    base = url.rstrip("/")
    if base.endswith("/sample"):
        base = base[:-len("/sample")]
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=timeout) as r:
            body = json.loads(r.read(65536) or b"{}")
    except Exception as e:  # noqa: BLE001 - an HTTP error body may still say it
        body = {}
        read = getattr(e, "read", None)
        if read:
            try:
                body = json.loads(read(65536) or b"{}")
            except (ValueError, OSError):
                body = {}
    if not isinstance(body, dict):
        return None, 0.0
    return body.get("vm"), parse_go_duration(str(body.get("interval", "")))


def infer_interval(records):
    """The sampling interval from the records' hora (one-second resolution)."""
    from datetime import datetime as dt
    times = []
    for r in records:
        try:
            times.append(dt.strptime(str(r.get("hora", ""))[:19].replace("T", " "), "%Y-%m-%d %H:%M:%S"))
        except ValueError:
            continue
    if len(times) < 2:
        return 0.0
    span = (max(times) - min(times)).total_seconds()
    if span < 2:
        return 0.0
    return (span + 1) / len(times)


def fmt_duration(sec):
    """Seconds as Go writes durations: 90ms, 1.5s, 3m0s."""
    if sec < 1:
        ms = round(sec * 1000, 3)
        return f"{ms:g}ms"
    if sec < 60:
        return f"{round(sec, 3):g}s"
    m, s = divmod(round(sec), 60)
    return f"{m}m{s}s"


def suggest_interval(target, duration):
    if target <= 0:
        return 0.0
    d = duration * 0.9 / target
    d = math.floor(d * 1000 / 5) * 5 / 1000
    return max(d, 0.01)


def shortfall(got, target, duration, elapsed, requests, failures, interval, source, agent, interrupted):
    """Why a collect phase against one agent ended below target and what to change ("" when it did not)."""
    if target <= 0 or got >= target:
        return ""
    head = f"collected {got} of {target} unique samples from {agent} in {elapsed:.1f}s"
    if interrupted:
        return head + ": interrupted before the end"
    fails = f"; {failures} of {requests} requests failed (see the failures above)" if failures else ""
    if got == 0:
        return head + ": the agent gave no valid sample" + fails
    sugg = fmt_duration(suggest_interval(target, duration))
    need = fmt_duration(duration / target)
    if interval <= 0:
        return (f"{head}. The agent makes one sample per sampling interval, however often it is polled, and neither "
                f"its /healthz nor the samples tell the interval: for {target} in {fmt_duration(duration)} it must sample "
                f"every {need} or faster (vmpulse's agent: -interval {sugg}; `make up -agent-interval {sugg}`), "
                f"or lower RECORDS, or raise DURATION{fails}")
    possible = int(duration / interval + 1e-9)
    if possible < target * 105 // 100:
        return (f"{head}. The agent makes one sample every {fmt_duration(interval)} ({source}), however often it is "
                f"polled, so {fmt_duration(duration)} hold at most {possible}. For {target} in {fmt_duration(duration)} "
                f"it must sample every {need} or faster: restart it with -interval {sugg} "
                f"(`make up -agent-interval {sugg}`, or SAMPLE_INTERVAL={sugg}), or lower RECORDS, or raise DURATION "
                f"to {fmt_duration(round(interval * target * 1.1))}{fails}")
    rate = requests / elapsed if elapsed else 0.0
    return (f"{head}. The agent samples every {fmt_duration(interval)} ({source}), so {fmt_duration(duration)} hold "
            f"about {possible}, but the users caught only {got}: they polled {rate:.0f} times a second for "
            f"{1 / interval:.1f} new samples a second. Poll more often: more users (-u, USERS), a shorter wait "
            f"(--wait, COLLECT_WAIT), a faster spawn rate (-r, SPAWN_RATE){fails}")
