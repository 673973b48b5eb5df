// DashboardStore: everything the page knows, kept outside React. Frames from the relay
// are ingested as they arrive (cheap: a dedupe lookup and a sorted insert per item);
// the page reads views from it a few times per second. Memory is bounded: per-VM and
// per-route buffers are capped by retention (the largest window plus a minute) and by a
// hard sample cap, the dedupe set by a ring of ids, and the number of VMs and routes.
import { itemTime, type ParsedFrame } from './protocol';
import { SeriesBuffer } from './series';
import { downsampleLast, maxOf, quantiles, rollingMean, secondMeans } from './stats';
import type { RelayItem, TopProcess, VmRecord } from './types';

/** Column indexes of a VM series. */
export const COL = { cpu: 0, ram: 1, run: 2, sleep: 3, zombie: 4, stop: 5, total: 6 } as const;
const NCOLS = 7;

/** The windows the user can pick, seconds. */
export const WINDOWS_S = [60, 300, 900] as const;
export const MAX_WINDOW_S = 900;

export interface StoreLimits {
  /** hard cap of samples kept per VM (15 min at ~133 records/s) */
  maxSamplesPerVm: number;
  /** hard cap of commit samples kept per route */
  maxSamplesPerRoute: number;
  /** seconds of history kept behind the newest sample */
  retainS: number;
  /** ids remembered for dedupe */
  maxIds: number;
  maxVms: number;
  maxRoutes: number;
}

export const DEFAULT_LIMITS: StoreLimits = {
  maxSamplesPerVm: 120_000,
  maxSamplesPerRoute: 120_000,
  retainS: MAX_WINDOW_S + 60,
  maxIds: 150_000,
  maxVms: 32,
  maxRoutes: 8,
};

/**
 * An item stamped more than this ahead of the relay's clock (as estimated from the live
 * stream) is refused and counted as invalid: one sample from a clock far in the future
 * would become the newest time of its series, push every real sample out of retention
 * and make the ones that follow look too old to keep.
 */
export const MAX_AHEAD_MS = 60_000;
/**
 * After this many frames in a row with every item "too far ahead", the page's estimate
 * of the relay clock is what is wrong (e.g. the browser's clock is behind, or jumped):
 * the estimate is dropped and the frame taken as it is.
 */
export const AHEAD_FRAMES_RESET = 3;

/** IdSet remembers the last `cap` ids (insertion order) for dedupe. */
export class IdSet {
  private readonly set = new Set<string>();
  private readonly ring: (string | undefined)[];
  private head = 0;

  constructor(readonly cap: number) {
    this.ring = new Array(cap);
  }

  get size(): number {
    return this.set.size;
  }

  has(id: string): boolean {
    return this.set.has(id);
  }

  /** add returns false when id was already present. */
  add(id: string): boolean {
    if (this.set.has(id)) return false;
    const old = this.ring[this.head];
    if (old !== undefined) this.set.delete(old);
    this.ring[this.head] = id;
    this.head = (this.head + 1) % this.cap;
    this.set.add(id);
    return true;
  }
}

/** dedupeKey is record.id, or a composite of what identifies a record without one. */
export function dedupeKey(it: RelayItem): string {
  const r = it.record;
  if (typeof r.id === 'string' && r.id !== '') return r.id;
  return `~${r.vm ?? ''}|${r.hora}|${it.stored_at}|${it.route}|${r.porcentaje_cpu_uso}|${r.porcentaje_ram}`;
}

export interface VmState {
  name: string;
  series: SeriesBuffer;
  latest: VmRecord | null;
  latestT: number;
  latestTop: { procs: TopProcess[]; hora: string; t: number } | null;
  received: number;
}

export interface RouteState {
  name: string;
  /** column 0: commit_ms */
  series: SeriesBuffer;
  total: number;
  firstT: number;
}

export class DashboardStore {
  /** increases on every change; views are recomputed only when it moved */
  version = 0;
  readonly vms = new Map<string, VmState>();
  readonly routes = new Map<string, RouteState>();
  /** unique items accepted */
  accepted = 0;
  /** items seen again (history overlap after a reconnect) */
  duplicates = 0;
  /** items the frame parser could not use, or stamped too far in the future */
  invalid = 0;
  /** items dropped by a limit (too many VMs or routes, older than retention) */
  limited = 0;
  /** the latest accepted record id */
  latestId = '';
  private readonly ids: IdSet;
  private readonly offsets: number[] = [];
  /** consecutive frames whose every item was too far ahead */
  private aheadFrames = 0;
  private readonly vals = new Float64Array(NCOLS);

  constructor(readonly limits: StoreLimits = DEFAULT_LIMITS) {
    this.ids = new IdSet(limits.maxIds);
  }

  /** ingest takes one parsed frame; receivedAtMs is the client clock at arrival. */
  ingest(frame: ParsedFrame, receivedAtMs: number): void {
    this.invalid += frame.dropped;
    const times = frame.items.map(itemTime);
    // The relay's clock at arrival, corrected by the current offset estimate (this
    // page's clock until the first live batch).
    let limitMs = this.serverNowS(receivedAtMs) * 1000 + MAX_AHEAD_MS;
    let timed = 0;
    let ahead = 0;
    for (const tMs of times) {
      if (Number.isNaN(tMs)) continue;
      timed++;
      if (tMs > limitMs) ahead++;
    }
    if (timed > 0) {
      this.aheadFrames = ahead === timed ? this.aheadFrames + 1 : 0;
      if (this.aheadFrames >= AHEAD_FRAMES_RESET) {
        this.aheadFrames = 0;
        this.offsets.length = 0;
        limitMs = Infinity;
      }
    }
    let newestMs = -Infinity;
    let changed = false;
    frame.items.forEach((it, i) => {
      const tMs = times[i];
      if (Number.isNaN(tMs) || tMs > limitMs) {
        this.invalid++;
        return;
      }
      if (tMs > newestMs) newestMs = tMs;
      if (this.add(it, tMs / 1000)) changed = true;
    });
    // Live batches estimate the offset between this clock and the relay's, so that
    // rates decay to zero when the stream stops instead of freezing. Items refused as
    // too far ahead do not count.
    if (frame.kind === 'batch' && newestMs > -Infinity) {
      this.offsets.push(receivedAtMs - newestMs);
      if (this.offsets.length > 50) this.offsets.shift();
    }
    if (changed) this.version++;
  }

  /** serverNowS estimates the relay's clock now, in seconds. */
  serverNowS(clientNowMs: number): number {
    if (this.offsets.length === 0) return clientNowMs / 1000;
    let m = Infinity;
    for (const o of this.offsets) if (o < m) m = o;
    return (clientNowMs - m) / 1000;
  }

  vmNames(): string[] {
    return [...this.vms.keys()];
  }

  private add(it: RelayItem, t: number): boolean {
    const key = dedupeKey(it);
    if (this.ids.has(key)) {
      this.duplicates++;
      return false;
    }
    const r = it.record;
    const vmName = typeof r.vm === 'string' ? r.vm : '';
    let vm = this.vms.get(vmName);
    if (!vm) {
      if (this.vms.size >= this.limits.maxVms) {
        this.limited++;
        return false;
      }
      vm = {
        name: vmName,
        series: new SeriesBuffer(NCOLS, this.limits.maxSamplesPerVm, this.limits.retainS),
        latest: null,
        latestT: -Infinity,
        latestTop: null,
        received: 0,
      };
      this.vms.set(vmName, vm);
    }
    const v = this.vals;
    v[COL.cpu] = r.porcentaje_cpu_uso;
    v[COL.ram] = r.porcentaje_ram;
    v[COL.run] = r.procesos_corriendo;
    v[COL.sleep] = r.procesos_durmiendo;
    v[COL.zombie] = r.procesos_zombie;
    v[COL.stop] = r.procesos_parados;
    v[COL.total] = r.total_procesos;
    if (!vm.series.insert(t, v)) {
      this.limited++;
      // still remember the id: the same old item will come again with every history
      this.ids.add(key);
      return false;
    }
    this.ids.add(key);
    vm.received++;
    this.accepted++;
    if (t >= vm.latestT) {
      vm.latestT = t;
      vm.latest = r;
      if (typeof r.id === 'string') this.latestId = r.id;
    }
    if (Array.isArray(r.top_procesos) && r.top_procesos.length > 0 && (!vm.latestTop || t >= vm.latestTop.t)) {
      vm.latestTop = { procs: r.top_procesos, hora: r.hora, t };
    }

    const routeName = it.route;
    let rs = this.routes.get(routeName);
    if (!rs && this.routes.size < this.limits.maxRoutes) {
      rs = {
        name: routeName,
        series: new SeriesBuffer(1, this.limits.maxSamplesPerRoute, this.limits.retainS),
        total: 0,
        firstT: t,
      };
      this.routes.set(routeName, rs);
    }
    if (rs) {
      rs.total++;
      if (t < rs.firstT) rs.firstT = t;
      rs.series.insert(t, [it.commit_ms]);
    }
    return true;
  }
}

// ---- views -------------------------------------------------------------------------

/** The smoothing of the bold chart line and of the headline value, seconds. */
export const SMOOTH_S = 1;

export interface ChartView {
  /** seconds */
  t: Float64Array;
  cpu: Float32Array;
  ram: Float32Array;
  /** mean over the trailing SMOOTH_S at every sample (equal to the raw value when
   * samples are SMOOTH_S or more apart); empty when not asked for */
  cpuAvg: Float32Array;
  ramAvg: Float32Array;
  /** samples within the last SMOOTH_S (what the headline value averages) */
  lastSecondSamples: number;
  /** the x range shown: [toT - window, toT] */
  fromT: number;
  toT: number;
  points: number;
}

// Scratch space for the smoothed series, reused across flushes (uPlot reads them only
// when it draws, right after setData), so 4 flushes per second allocate nothing big.
const scratch = new WeakMap<SeriesBuffer, { cpu: Float32Array; ram: Float32Array }>();

function scratchFor(s: SeriesBuffer, n: number) {
  let sc = scratch.get(s);
  if (!sc || sc.cpu.length < n) {
    const len = Math.max(n, Math.min(2 * n, 2 * s.cap), 1024);
    sc = { cpu: new Float32Array(len), ram: new Float32Array(len) };
    scratch.set(s, sc);
  }
  return sc;
}

/** chartView is the selected VM's samples in the window ending at its newest sample. */
export function chartView(store: DashboardStore, vm: string, windowS: number, smooth = true): ChartView {
  const st = store.vms.get(vm);
  if (!st || st.series.length === 0) {
    const now = Date.now() / 1000;
    const e = new Float32Array(0);
    return { t: new Float64Array(0), cpu: e, ram: e, cpuAvg: e, ramAvg: e, lastSecondSamples: 0, fromT: now - windowS, toT: now, points: 0 };
  }
  const s = st.series;
  const toT = s.newest;
  const fromT = toT - windowS;
  const [a, b] = s.range(fromT, toT);
  // start the rolling mean SMOOTH_S earlier so the left edge is a full average too
  let cpuAvg: Float32Array = new Float32Array(0);
  let ramAvg = cpuAvg;
  if (smooth) {
    const a0 = s.lowerBound(fromT - SMOOTH_S);
    const sc = scratchFor(s, b - a0);
    const tt = s.times(a0, b);
    rollingMean(tt, s.col(COL.cpu, a0, b), SMOOTH_S, sc.cpu);
    rollingMean(tt, s.col(COL.ram, a0, b), SMOOTH_S, sc.ram);
    const off = a - a0;
    cpuAvg = sc.cpu.subarray(off, off + (b - a));
    ramAvg = sc.ram.subarray(off, off + (b - a));
  }
  return {
    t: s.times(a, b),
    cpu: s.col(COL.cpu, a, b),
    ram: s.col(COL.ram, a, b),
    cpuAvg,
    ramAvg,
    lastSecondSamples: b - s.upperBound(toT - SMOOTH_S),
    fromT,
    toT,
    points: b - a,
  };
}

export interface ProcRow {
  key: 'running' | 'sleeping' | 'zombie' | 'stopped' | 'other' | 'total';
  value: number;
  /** change vs the last sample at least 60 s older than the newest; null without one */
  delta: number | null;
  spark: number[];
}

export interface ProcessView {
  rows: ProcRow[];
  hora: string;
  /** the four states + other == total (always true by construction unless the record is inconsistent) */
  consistent: boolean;
  top: { procs: TopProcess[]; hora: string } | null;
}

function procValues(s: SeriesBuffer, i: number) {
  const run = s.at(COL.run, i);
  const sleep = s.at(COL.sleep, i);
  const zombie = s.at(COL.zombie, i);
  const stop = s.at(COL.stop, i);
  const total = s.at(COL.total, i);
  return { running: run, sleeping: sleep, zombie, stopped: stop, other: total - run - sleep - zombie - stop, total };
}

/** processView is the process table for the selected VM's newest sample. */
export function processView(store: DashboardStore, vm: string, windowS: number, sparkBuckets = 40): ProcessView | null {
  const st = store.vms.get(vm);
  if (!st || st.series.length === 0 || !st.latest) return null;
  const s = st.series;
  const [start, end] = s.bounds();
  const now = procValues(s, end - 1);
  const ago = s.upperBound(s.newest - 60) - 1;
  const then = ago >= start ? procValues(s, ago) : null;
  const fromT = s.newest - windowS;
  const [a, b] = s.range(fromT, s.newest);
  const times = s.times(a, b);
  const other = new Float64Array(b - a);
  for (let i = a; i < b; i++) {
    other[i - a] = s.at(COL.total, i) - s.at(COL.run, i) - s.at(COL.sleep, i) - s.at(COL.zombie, i) - s.at(COL.stop, i);
  }
  const colOf = { running: COL.run, sleeping: COL.sleep, zombie: COL.zombie, stopped: COL.stop, total: COL.total };
  const keys: ProcRow['key'][] = ['running', 'sleeping', 'zombie', 'stopped', 'other', 'total'];
  const rows = keys.map((k) => ({
    key: k,
    value: now[k],
    delta: then ? now[k] - then[k] : null,
    spark: downsampleLast(times, k === 'other' ? other : s.col(colOf[k], a, b), fromT, s.newest, sparkBuckets),
  }));
  return {
    rows,
    hora: st.latest.hora,
    consistent: now.other >= 0,
    top: st.latestTop ? { procs: st.latestTop.procs, hora: st.latestTop.hora } : null,
  };
}

/** Thresholds of the capacity verdict (percent). */
export const THRESHOLDS = {
  cpuP95Tight: 70,
  cpuP95Fail: 90,
  ramPeakTight: 80,
  ramPeakFail: 90,
  minSamples: 30,
  minCoverS: 30,
} as const;

export type Verdict = 'ok' | 'tight' | 'fail' | 'insufficient';

export interface CapacityView {
  cpuPeak: number;
  cpuP95: number;
  cpuP50: number;
  ramPeak: number;
  ramP95: number;
  records: number;
  /** seconds between the first and the last sample in the window */
  coveredS: number;
  windowS: number;
  verdict: Verdict;
  /** which limit decided a tight/fail verdict */
  reasons: ('cpu' | 'ram')[];
}

/** verdictOf applies THRESHOLDS: the VM carries the load when CPU p95 and RAM peak stay low. */
export function verdictOf(c: Pick<CapacityView, 'cpuP95' | 'ramPeak' | 'records' | 'coveredS'>): {
  verdict: Verdict;
  reasons: ('cpu' | 'ram')[];
} {
  if (c.records < THRESHOLDS.minSamples || c.coveredS < THRESHOLDS.minCoverS) return { verdict: 'insufficient', reasons: [] };
  const fail: ('cpu' | 'ram')[] = [];
  const tight: ('cpu' | 'ram')[] = [];
  if (c.cpuP95 >= THRESHOLDS.cpuP95Fail) fail.push('cpu');
  else if (c.cpuP95 >= THRESHOLDS.cpuP95Tight) tight.push('cpu');
  if (c.ramPeak >= THRESHOLDS.ramPeakFail) fail.push('ram');
  else if (c.ramPeak >= THRESHOLDS.ramPeakTight) tight.push('ram');
  if (fail.length) return { verdict: 'fail', reasons: fail };
  if (tight.length) return { verdict: 'tight', reasons: tight };
  return { verdict: 'ok', reasons: [] };
}

/**
 * capacityView summarizes the selected VM over the window. CPU is judged on
 * one-second means: a sample taken every 10 ms sees a core either busy or idle for
 * the whole tick, so raw samples flip between 0 and 100 % and their p95 says nothing
 * about load. With samples a second or more apart the means are the samples.
 */
export function capacityView(store: DashboardStore, vm: string, windowS: number): CapacityView {
  const cv = chartView(store, vm, windowS, false);
  const cpuSec = secondMeans(cv.t, cv.cpu);
  const [cpuP50, cpuP95] = quantiles(cpuSec, [0.5, 0.95]);
  const [ramP95] = quantiles(cv.ram, [0.95]);
  const base = {
    cpuPeak: maxOf(cpuSec),
    cpuP95,
    cpuP50,
    ramPeak: maxOf(cv.ram),
    ramP95,
    records: cv.points,
    coveredS: cv.points > 1 ? cv.t[cv.points - 1] - cv.t[0] : 0,
    windowS,
  };
  return { ...base, ...verdictOf(base) };
}

export interface RouteRow {
  route: string;
  /** records/s over the last `liveS` seconds (relay clock) */
  rateLive: number;
  /** records/s over the window (or since the route was first seen, if later) */
  rateWindow: number;
  inWindow: number;
  total: number;
  p50: number;
  p95: number;
}

const ROUTE_ORDER = ['route1', 'route2'];

/** routeView is the route race: per route, rates and commit latency over the window. */
export function routeView(store: DashboardStore, nowS: number, windowS: number, liveS = 10): RouteRow[] {
  const names = [...store.routes.keys()].sort((x, y) => {
    const ix = ROUTE_ORDER.indexOf(x);
    const iy = ROUTE_ORDER.indexOf(y);
    return (ix < 0 ? 99 : ix) - (iy < 0 ? 99 : iy) || x.localeCompare(y);
  });
  for (const r of ROUTE_ORDER) if (!names.includes(r)) names.splice(ROUTE_ORDER.indexOf(r), 0, r);
  return names.map((name) => {
    const rs = store.routes.get(name);
    if (!rs) return { route: name, rateLive: 0, rateWindow: 0, inWindow: 0, total: 0, p50: NaN, p95: NaN };
    const s = rs.series;
    // Upper bound +Infinity: an item stamped a hair after the estimated relay clock
    // (clock drift) still counts.
    const [la, lb] = s.range(nowS - liveS, Infinity);
    const [wa, wb] = s.range(nowS - windowS, Infinity);
    const [p50, p95] = quantiles(s.col(0, wa, wb), [0.5, 0.95]);
    // Divide by the time the buffer actually covers when that is shorter than the
    // interval: a route seen for less than the interval (at the start), or one whose
    // buffer hit its sample cap and so holds less than the window (a fast route over
    // 15 min). Dividing by the whole interval would understate either.
    const covered = Math.max(s.length > 0 ? nowS - s.oldest : nowS - rs.firstT, 1);
    return {
      route: name,
      rateLive: (lb - la) / Math.min(liveS, covered),
      rateWindow: (wb - wa) / Math.min(windowS, covered),
      inWindow: wb - wa,
      total: rs.total,
      p50,
      p95,
    };
  });
}
