"""Writes verdict-cases.json: crafted sample timelines with the capacity verdict and the
explanation each must get. The expected values are computed here, by a second
implementation of the rule written from its statement (verdict-cases.json "rule"), so
that the Go report (loadtest/report) and the dashboard are checked against something
other than themselves. Run: python3 verdict_cases.py > verdict-cases.json
"""

import datetime
import json
import math
import random

RULE = {
    "window": "all samples of one VM over the run (or the dashboard's window)",
    "one_second_means": "the samples of one second (their hora, UTC, second resolution) are averaged; CPU is judged on these means",
    "cpu_p95": "nearest-rank 95th percentile of the one-second CPU means: sorted ascending, the element at index ceil(0.95 n) - 1",
    "ram_peak": "the largest porcentaje_ram of any sample",
    "insufficient": "fewer than 30 samples, or under 30 s between the first and the last sample's hora",
    "fail": "CPU p95 >= 90 or RAM peak >= 90",
    "tight": "CPU p95 >= 70 or RAM peak >= 80",
    "unstressed": "otherwise, CPU p95 < 25 and RAM peak < 50",
    "ok": "otherwise",
    "crossing": "fail and tight name the resource that crossed its tight threshold first: CPU at the first second s whose trailing 30 s (one-second means in (s-30 s, s]) have a nearest-rank p95 >= 70; RAM at the first sample >= 80; on a tie CPU",
    "time_in": "whole seconds from the window's start (load.start when a load timeline is given, else the first sample) to the crossing, rounded down; written '45 s' or '2 min 05 s'",
    "users": "of the load timeline's last point before the end of the crossing second (its at < crossing second + 1 s); 0 when the load had not started",
    "numbers": "one decimal, halves rounded up",
    "explanations": {
        "fail/tight with load": "CPU p95 crossed 70 % at 120 users (2 min 05 s in)  |  RAM crossed 80 % at 150 users (1 min 10 s in)",
        "fail/tight without load": "CPU p95 crossed 70 % 2 min 05 s in",
        "unstressed": "never stressed: CPU p95 12.3 % and RAM peak 35.0 % stayed under 25 % and 50 %[ at up to N users]: the run proves nothing about capacity",
        "ok": "CPU p95 52.3 % and RAM peak 61.0 % stayed under 70 % and 80 %[ at up to N users]",
        "insufficient": "only 12 samples over 11 s: a verdict needs at least 30 samples over at least 30 s",
    },
}

T0 = datetime.datetime(2025, 7, 2, 3, 6, 0)


def hora(s):
    return (T0 + datetime.timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S")


def r1(x):
    return math.floor(x * 10 + 0.5) / 10


def f1(x):
    return "%.1f" % r1(x)


def nearest_rank(xs, q):
    s = sorted(xs)
    return s[min(max(math.ceil(q * len(s)) - 1, 0), len(s) - 1)]


def elapsed(s):
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def judge(samples, load):
    """samples: [(second, cpu, ram)] ; load: None or (start_second, [(second, users)])."""
    n = len(samples)
    samples = sorted(samples, key=lambda s: s[0])
    span = samples[-1][0] - samples[0][0]
    by_sec = {}
    for s, c, _ in samples:
        by_sec.setdefault(s, []).append(c)
    secs = sorted(by_sec)
    means = [(s, sum(by_sec[s]) / len(by_sec[s])) for s in secs]
    cpu_p95 = nearest_rank([m for _, m in means], 0.95)
    ram_peak = max(r for _, _, r in samples)
    out = {"cpu_p95": r1(cpu_p95), "ram_peak": r1(ram_peak), "samples": n}
    if n < 30 or span < 30:
        out.update(verdict="insufficient",
                   explanation=f"only {n} samples over {span} s: a verdict needs at least 30 samples over at least 30 s")
        return out
    if cpu_p95 >= 90 or ram_peak >= 90:
        v = "fail"
    elif cpu_p95 >= 70 or ram_peak >= 80:
        v = "tight"
    elif cpu_p95 < 25 and ram_peak < 50:
        v = "unstressed"
    else:
        v = "ok"
    out["verdict"] = v
    up_to = f" at up to {max(u for _, u in load[1])} users" if load else ""
    if v == "unstressed":
        out["explanation"] = (f"never stressed: CPU p95 {f1(cpu_p95)} % and RAM peak {f1(ram_peak)} % stayed under "
                              f"25 % and 50 %{up_to}: the run proves nothing about capacity")
        return out
    if v == "ok":
        out["explanation"] = f"CPU p95 {f1(cpu_p95)} % and RAM peak {f1(ram_peak)} % stayed under 70 % and 80 %{up_to}"
        return out
    cpu_at = next((s for s, _ in means if nearest_rank([m for t, m in means if s - 30 < t <= s], 0.95) >= 70), None)
    ram_at = next((s for s, _, r in samples if r >= 80), None)
    if cpu_at is not None and (ram_at is None or ram_at >= cpu_at):
        what, thr, at = "CPU p95", 70, cpu_at
        out["crossed"] = "cpu"
    else:
        what, thr, at = "RAM", 80, ram_at
        out["crossed"] = "ram"
    start = load[0] if load else samples[0][0]
    when = elapsed(max(at - start, 0)) + " in"
    if load:
        users = ([u for t, u in load[1] if t < at + 1] or [0])[-1]
        out["explanation"] = f"{what} crossed {thr} % at {users} users ({when})"
        out["crossed_users"] = users
    else:
        out["explanation"] = f"{what} crossed {thr} % {when}"
    out["crossed_in_s"] = max(at - start, 0)
    return out


def ramp(start, seconds, rate=5, peak=300):
    """Users per second, rate more each second up to peak (only the points where the
    number changes are kept in the file)."""
    return [(start + t, min(rate * (t + 1), peak)) for t in range(seconds)]


def changes(points):
    out = []
    for t, u in points:
        if not out or out[-1][1] != u:
            out.append((t, u))
    return out


def make(name, about, seconds, cpu, ram, start=0, load=True, per_second=(1, 1, 2), seed=1, rate=5):
    rnd = random.Random(seed)
    samples = []
    users_at = dict(ramp(start, seconds, rate))
    lp = changes(ramp(start, seconds, rate)) if load else None
    for t in range(seconds):
        s = start + t
        for _ in range(rnd.choice(per_second)):
            u = users_at[s]
            samples.append((s, round(min(max(cpu(u, t, rnd), 0), 100), 1), round(min(max(ram(u, t, rnd), 0), 100), 1)))
    loadspec = (start, lp) if load else None
    want = judge(samples, loadspec)
    case = {"name": name, "about": about,
            "samples": [{"hora": hora(s), "porcentaje_cpu_uso": c, "porcentaje_ram": r} for s, c, r in samples]}
    if load:
        case["load"] = {"start": hora(start), "users": [{"at": hora(t), "users": u} for t, u in lp]}
    else:
        case["load"] = None
    case["want"] = want
    return case


cases = [
    make("cpu-bound", "CPU grows with the users (2 more a second) and passes 90 %: fail, CPU crossed 70 % first", 180,
         lambda u, t, r: 6 + 0.31 * u + r.uniform(-4, 4), lambda u, t, r: 38 + r.uniform(-1, 1), rate=2),
    make("cpu-bound-no-load", "the same VM without a load timeline (the dashboard live): the time only", 180,
         lambda u, t, r: 6 + 0.31 * u + r.uniform(-4, 4), lambda u, t, r: 38 + r.uniform(-1, 1), load=False, rate=2),
    make("ram-bound", "memory fills while CPU stays moderate: tight, RAM crossed 80 %", 170,
         lambda u, t, r: 30 + 0.05 * u + r.uniform(-6, 6), lambda u, t, r: 45 + 0.25 * t + r.uniform(-0.5, 0.5), seed=2),
    make("ram-before-cpu", "both cross, RAM first: fail, and the explanation names RAM", 150,
         lambda u, t, r: 5 + 0.33 * u + r.uniform(-3, 3), lambda u, t, r: 60 + 0.6 * t + r.uniform(-0.5, 0.5), seed=3),
    make("never-stressed", "300 users and the VM barely notices: unstressed, not a pass", 180,
         lambda u, t, r: 4 + 0.03 * u + r.uniform(-2, 2), lambda u, t, r: 31 + r.uniform(-1, 1), seed=4),
    make("ok", "pushed, within limits: ok", 180,
         lambda u, t, r: 20 + 0.12 * u + r.uniform(-5, 5), lambda u, t, r: 55 + 0.02 * t + r.uniform(-1, 1), seed=5),
    make("insufficient-count", "20 samples: too few for a verdict", 20,
         lambda u, t, r: 80 + r.uniform(-3, 3), lambda u, t, r: 85, per_second=(1,), seed=6),
    make("insufficient-span", "45 samples within 21 s: too short for a verdict", 22,
         lambda u, t, r: 95, lambda u, t, r: 40, per_second=(2, 2, 3), seed=7),
    make("late-start", "the load started 20 s before the first sample: time counts from the load's start", 120,
         lambda u, t, r: 2 + 0.45 * u + r.uniform(-2, 2), lambda u, t, r: 40, start=0, seed=8),
]
# late-start: drop the first 20 s of samples (the VM's samples begin after the load does).
lc = cases[-1]
lc["samples"] = [s for s in lc["samples"] if s["hora"] >= hora(20)]
lc["want"] = judge([(int((datetime.datetime.strptime(s["hora"], "%Y-%m-%d %H:%M:%S") - T0).total_seconds()),
                     s["porcentaje_cpu_uso"], s["porcentaje_ram"]) for s in lc["samples"]],
                   (0, [(int((datetime.datetime.strptime(p["at"], "%Y-%m-%d %H:%M:%S") - T0).total_seconds()), p["users"])
                        for p in lc["load"]["users"]]))

# hot-before-load: the VM is already busy before the load starts (10 s after the first
# sample): the crossing comes before any user, so "at 0 users (0 s in)".
hb = make("hot-before-load", "the VM is busy before the load starts: the crossing names 0 users", 90,
          lambda u, t, r: 92 + r.uniform(-2, 2), lambda u, t, r: 30, seed=9)
hb["load"] = {"start": hora(10), "users": [{"at": hora(10 + t), "users": u} for t, u in changes(ramp(0, 80))]}
hb["want"] = judge([(int((datetime.datetime.strptime(s["hora"], "%Y-%m-%d %H:%M:%S") - T0).total_seconds()),
                     s["porcentaje_cpu_uso"], s["porcentaje_ram"]) for s in hb["samples"]],
                   (10, [(10 + t, u) for t, u in changes(ramp(0, 80))]))
cases.append(hb)

doc = {"about": "Capacity verdict cases shared by the report (loadtest/report) and the dashboard: each case's "
                "samples (one VM) and load timeline (users over time; null when unknown), and the verdict, "
                "figures and explanation they must give. hora and load times are UTC. Written by "
                "verdict_cases.py, which implements the rule independently.",
       "rule": RULE, "cases": cases}


def dump(doc):
    """Indented JSON with one sample or load point per line, to keep the file readable."""
    flat = {}

    def mark(lst):
        key = f"@@{len(flat)}@@"
        flat[key] = "[\n" + ",\n".join("      " + json.dumps(x, ensure_ascii=False, separators=(", ", ": ")) for x in lst) + "\n    ]"
        return key

    for c in doc["cases"]:
        c["samples"] = mark(c["samples"])
        if c["load"]:
            c["load"]["users"] = mark(c["load"]["users"])
    out = json.dumps(doc, indent=2, ensure_ascii=False)
    for k, v in flat.items():
        out = out.replace(json.dumps(k), v)
    return out + "\n"


print(dump(doc), end="")
