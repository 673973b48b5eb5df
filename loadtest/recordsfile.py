"""The records file shared by both load phases, and the option parsing they share.

The records file is a JSON array of records (the contract in SPEC.md), one compact
record per line, written atomically. The Go driver (loadtest/driver) reads and writes
the same format. Locust puts the locustfile's directory on sys.path, so the
locustfiles import this module by name. Standard library only.
"""

import json
import os
import re
import tempfile


def parse_seconds(s):
    """A number of seconds, or a Go-style duration such as 500ms, 1.5s, 2m."""
    s = s.strip()
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?", s)
    if not m:
        raise ValueError(f"{s!r} is not a duration")
    return float(m.group(1)) * {None: 1, "s": 1, "ms": 0.001, "m": 60, "h": 3600}[m.group(2)]


def parse_wait(s):
    """'1-2', '1s-4s' or a single value -> (min, max) seconds."""
    lo, sep, hi = s.partition("-")
    lo = parse_seconds(lo)
    hi = parse_seconds(hi) if sep else lo
    if hi < lo:
        raise ValueError(f"wait {s!r}: the maximum is below the minimum")
    return lo, hi


def encode_records(records):
    """The records file: a JSON array, one compact record per line."""
    lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in records]
    return "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[\n]\n"


def write_atomic(path, text):
    """Write text to path through a synced temporary file renamed over it."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(d, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
    except OSError:
        pass
