"""The records file shared by both load phases, and the option parsing they share.

The records file is a JSON array of records (the record contract is docs/manual.md,
section 1), one compact record per line, written atomically. The Go driver
(loadtest/driver) reads and writes the same format.

Files from other implementations are read too (read_records_file), exactly as the Go
driver reads them (loadtest/driver/peerfile.go; both are tested on
loadtest/testdata/records): a bare array, JSON Lines, one record, or an object holding
the array under a common key ("metrics", "records", "data", ...); RAM figures in KiB
or bytes are found per file and converted to MiB, so that they are never stored
1 024 times too large.

Locust puts the locustfile's directory on sys.path, so the locustfiles import this
module by name. Standard library only.
"""

import json
import math
import os
import re
import sys
import tempfile

# Members of a JSON object that may hold a file's records, in the order looked for.
WRAPPER_KEYS = ("metrics", "records", "data", "samples", "items", "results",
                "registros", "muestras", "datos", "metricas", "métricas")
RECORD_FIELDS = ("total_ram", "ram_libre", "uso_ram", "porcentaje_cpu_uso", "porcentaje_ram",
                 "total_procesos", "hora")
RAM_FIELDS = ("total_ram", "ram_libre", "uso_ram")
UNIT_DIV = {"mib": 1, "kib": 1 << 10, "bytes": 1 << 20}
UNIT_NAME = {"mib": "MiB", "kib": "KiB", "bytes": "bytes"}
# A VM has 256 MiB..256 GiB of RAM: the one unit that puts total_ram there is the
# file's (the three ranges touch and do not overlap).
MIN_VM_MIB, MAX_VM_MIB = 256, 256 << 10


class RecordsFileError(ValueError):
    """The file as a whole cannot be read (the message says why and what to do)."""


def unit_word(s):
    s = str(s).strip().lower()
    if s in ("mib", "mb", "m", "megabytes", "mebibytes", "mbytes"):
        return "mib"
    if s in ("kib", "kb", "k", "kilobytes", "kibibytes", "kbytes"):
        return "kib"
    if s in ("bytes", "byte", "b"):
        return "bytes"
    return None


def parse_ram_unit(s):
    """The --ram-unit value: auto, mib, kib or bytes."""
    if s is None or str(s).strip().lower() in ("", "auto"):
        return "auto"
    u = unit_word(s)
    if u is None:
        raise ValueError(f"RAM unit {s!r}: want auto, mib, kib or bytes")
    return u


def _is_record(obj):
    return any(f in obj for f in RECORD_FIELDS)


def _hints(key, value, depth=0):
    """(where, value, unit) for members naming the RAM unit, two levels deep."""
    lk = key.lower()
    named = "unit" in lk or "unidad" in lk
    if isinstance(value, str):
        u = unit_word(value) if named else None
        return [(key, value, u)] if u else []
    if not isinstance(value, dict) or depth >= 2:
        return []
    out = []
    for k, v in value.items():
        if named:
            if k.lower() in ("total_ram", "ram", "memory", "memoria") and isinstance(v, str) and unit_word(v):
                out.append((f"{key}.{k}", v, unit_word(v)))
            continue
        out += [(f"{key}.{w}", val, u) for w, val, u in _hints(k, v, depth + 1)]
    return out


def _split(text):
    """(records, layout, wrapper, hints) of a records file's text."""
    text = text.lstrip("\ufeff").strip()
    if not text:
        raise RecordsFileError("empty: want a JSON array of records")
    if text[0] not in "[{":
        raise RecordsFileError("not JSON: want a JSON array of records (or an object holding one)")
    try:
        data = json.loads(text)
    except ValueError as e:
        if text[0] != "{" or "Extra data" not in str(e):
            raise RecordsFileError(f"not JSON: {e}") from None
        recs = []
        for n, line in enumerate(text.split("\n"), 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            if not isinstance(rec, dict):
                raise RecordsFileError(f"line {n}: not a JSON object (the file looked like JSON Lines: one record per line)") from None
            recs.append(rec)
        return recs, "JSON Lines (one record per line)", "", []
    if isinstance(data, list):
        for i, r in enumerate(data):
            if not isinstance(r, dict):
                raise RecordsFileError(f"element {i} is not a JSON object (a record)")
        return data, "a JSON array", "", []
    if _is_record(data):
        return [data], "one JSON object", "", []

    def pick(key, how=""):
        arr = data[key]
        if not isinstance(arr, list):
            raise RecordsFileError(f"member {key!r}: not an array of records")
        for i, r in enumerate(arr):
            if not isinstance(r, dict):
                raise RecordsFileError(f"member {key!r}: element {i} is not a JSON object (a record)")
        layout = f'a JSON object, records under "{key}"{how}'
        others = sorted(k for k in data if k != key)
        if others:
            layout += " (other members: " + ", ".join(f'"{k}"' for k in others) + ")"
        hints = [h for k in others for h in _hints(k, data[k])]
        return arr, layout, key, hints

    for k in WRAPPER_KEYS:
        if k in data:
            return pick(k)
    cands = [k for k, v in data.items()
             if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
    if len(cands) == 1:
        return pick(cands[0], ", its only array of objects")
    raise RecordsFileError("a JSON object that is neither a record nor holds records under one of "
                           + ", ".join(f'"{k}"' for k in WRAPPER_KEYS)
                           + " (members: " + ", ".join(f'"{k}"' for k in sorted(data)) + ")")


def _unit_of(v):
    for u in ("mib", "kib", "bytes"):
        if MIN_VM_MIB <= v / UNIT_DIV[u] < MAX_VM_MIB:
            return u
    return None


def _human_mib(m):
    if m >= 1 << 20:
        return f"{m / (1 << 20):.1f} TiB"
    if m >= 1 << 10:
        return f"{m / (1 << 10):.1f} GiB"
    return f"{m:.0f} MiB"


def _num(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _detect_unit(records, given, hints):
    totals = sorted(float(r["total_ram"]) for r in records
                    if isinstance(r.get("total_ram"), (int, float)) and not isinstance(r.get("total_ram"), bool)
                    and r["total_ram"] > 0)
    if given != "auto":
        return given, "given by --ram-unit"
    units = {u for _, _, u in hints}
    if len(units) > 1:
        raise RecordsFileError("the file names two RAM units (" + ", ".join(f'{w} is "{v}"' for w, v, _ in hints)
                               + "): pass --ram-unit mib, kib or bytes")
    hinted = units.pop() if units else None
    hint_text = ", ".join(f'{w} is "{v}"' for w, v, _ in hints)
    if not totals:
        if hinted:
            return hinted, "the file says so: " + hint_text
        return "mib", "no record has a total_ram to tell the unit by; nothing converted"
    by_unit = {}
    for v in totals:
        by_unit[_unit_of(v)] = by_unit.get(_unit_of(v), 0) + 1
    med = totals[len(totals) // 2]
    mag = _unit_of(med)
    if len(by_unit) > 1:
        parts = [f"{by_unit[u]} look like {UNIT_NAME.get(u, 'none (implausible)')}"
                 for u in ("mib", "kib", "bytes", None) if by_unit.get(u)]
        raise RecordsFileError(f"the records' total_ram values disagree on their unit ({', '.join(parts)}; "
                               f"total_ram {_num(totals[0])}..{_num(totals[-1])}): pass --ram-unit mib, kib or bytes")
    if mag is None:
        raise RecordsFileError(f"total_ram {_num(med)} is no plausible VM size in MiB, KiB or bytes "
                               "(want 256 MiB..256 GiB): pass --ram-unit mib, kib or bytes")
    why = f"total_ram {_num(med)} is {_human_mib(med / UNIT_DIV[mag])} read as {UNIT_NAME[mag]}"
    if mag != "mib":
        why += f" but {_human_mib(med)} read as MiB"
    if len(totals) > 1:
        why += f" (the median of {len(totals)} records)"
    why += "; a VM has 256 MiB..256 GiB"
    if hinted:
        if hinted != mag:
            raise RecordsFileError(f"the file says its RAM unit is {UNIT_NAME[hinted]} ({hint_text}) but {why}: "
                                   "pass --ram-unit to say which is right")
        return hinted, f"the file says so ({hint_text}) and {why}"
    return mag, why


class RecordsFile:
    """A records file as read: records (RAM figures in MiB), layout, unit and why."""

    def __init__(self, records, layout, wrapper, unit, reason, converted):
        self.records, self.layout, self.wrapper = records, layout, wrapper
        self.unit, self.unit_reason, self.converted = unit, reason, converted

    def describe(self):
        n = "1 record" if len(self.records) == 1 else f"{len(self.records)} records"
        s = f"{n} in {self.layout}; RAM figures in {UNIT_NAME[self.unit]} ({self.unit_reason})"
        if self.converted:
            s += f"; converted to MiB in {self.converted} records"
        return s


def parse_records_file(text, ram_unit="auto"):
    """Read the records of a file of any layout above, RAM figures converted to MiB
    (rounded to the nearest MiB, halves up). Raises RecordsFileError."""
    try:
        unit = parse_ram_unit(ram_unit)
    except ValueError as e:
        raise RecordsFileError(str(e)) from None
    records, layout, wrapper, hints = _split(text)
    unit, reason = _detect_unit(records, unit, hints)
    converted = 0
    if unit != "mib":
        div = UNIT_DIV[unit]
        for r in records:
            changed = False
            for f in RAM_FIELDS:
                v = r.get(f)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    r[f] = int(math.floor(v / div + 0.5))
                    changed = True
            converted += changed
    return RecordsFile(records, layout, wrapper, unit, reason, converted)


def read_records_file(path, ram_unit="auto"):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return parse_records_file(text, ram_unit)
    except RecordsFileError as e:
        raise RecordsFileError(f"{path}: {e}") from None


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


def truthy(s):
    """An on/off environment variable: 1, true, yes or on (any case) is on."""
    return str(s or "").strip().lower() in ("1", "true", "yes", "on")


def add_phase_options(parser, targets, wait_env, wait_default):
    """Add the options both locustfiles take: --sequential (over several targets,
    "agents" or "VMs"), --run-file, and --wait from wait_env (default wait_default,
    such as "1-2"). One place, so that the two phases keep the same names and help."""
    lo, hi = wait_default.split("-")
    parser.add_argument("--sequential", action="store_true", default=truthy(os.environ.get("SEQUENTIAL")),
                        help=f"with several {targets}: one after another, each with the same ramp-up [SEQUENTIAL]")
    parser.add_argument("--run-file", env_var="RUN_FILE", default="out/run.json",
                        help="run file the phase is recorded in, for `vmpulse-load report` (empty: none) [RUN_FILE]")
    parser.add_argument("--wait", env_var=wait_env, default=wait_default,
                        help="each user waits a random time in this range after each request, "
                             f"seconds or durations: {lo}-{hi}, {lo}s-{hi}s [{wait_env}]")


def wait_option(s):
    """parse_wait for the --wait option: a bad value ends the run, saying why."""
    try:
        return parse_wait(s)
    except ValueError as e:
        sys.exit(f"--wait: {e}")


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
