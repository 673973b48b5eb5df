// View builders: what the panels draw, computed from the DashboardStore a few times per
// second. They only read the store; each returns plain data (zero-copy subarrays of the
// store's buffers where uPlot draws them directly).
import { COL, REPLAY_LAG_S, type DashboardStore } from './store';
import { SeriesBuffer } from './series';
import { bucketMeans, downsampleLast, quantiles, rollingMean } from './stats';
import type { TopProcess } from './types';
import { judge, type Judgement } from './verdict';

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

export interface CapacityView extends Judgement {
  windowS: number;
}

/** capacityView judges the VM over the window ending at its newest sample (see verdict.ts). */
export function capacityView(store: DashboardStore, vm: string, windowS: number): CapacityView {
  const cv = chartView(store, vm, windowS, false);
  return { ...judge(cv.t, cv.cpu, cv.ram), windowS };
}

/** A VM's line in the comparison table. */
export interface CompareRow {
  vm: string;
  /** its verdict over the window, as the detail view shows it */
  capacity: CapacityView;
  /** from the server's config; '' when unknown */
  machineType: string;
  /** where its newest sample was read: 'kmod', 'procfs' or '' */
  source: string;
  /** commit time minus sample time of its latest record, seconds; a replay past REPLAY_LAG_S */
  lagS: number;
  replay: boolean;
  /** total and running processes in its newest sample */
  procs: number;
  running: number;
  /** its newest sample time, seconds */
  latestT: number;
  /** the chart color, when the VM is on the comparison charts */
  color: string | null;
}

export interface CompareView {
  rows: CompareRow[];
  /** the charts' x values: whole seconds from fromS to toS */
  t: number[];
  /** one line per charted VM: one-second means, null where the VM has no sample */
  lines: { vm: string; color: string; cpu: (number | null)[]; ram: (number | null)[] }[];
  fromT: number;
  toT: number;
  windowS: number;
}

/** Colors of the comparison lines, readable on the light and the dark theme. */
export const COMPARE_COLORS = ['#ea580c', '#2563eb', '#059669', '#9333ea', '#db2777', '#0891b2', '#ca8a04', '#64748b'];
/** at most this many VMs are drawn on the comparison charts (the table lists all) */
export const MAX_COMPARE_LINES = COMPARE_COLORS.length;

/**
 * compareView puts the VMs side by side. Each VM is judged over the window ending at its
 * own newest sample, as the detail view does; the charts share one x range, the window
 * ending at the newest sample of any charted VM, and draw one-second means. The charts
 * hold the picked VM and the most active others (MAX_COMPARE_LINES in all).
 */
export function compareView(
  store: DashboardStore,
  windowS: number,
  clientNowMs: number,
  picked: string | null = null,
  machineTypes: Record<string, string> = {},
): CompareView {
  const names = store.vmNames();
  const byActivity = [...names].sort((x, y) => store.activityOf(y, clientNowMs) - store.activityOf(x, clientNowMs) || x.localeCompare(y));
  const charted = new Set<string>();
  if (picked !== null && store.vms.has(picked)) charted.add(picked);
  for (const n of byActivity) {
    if (charted.size >= MAX_COMPARE_LINES) break;
    charted.add(n);
  }
  const chartedSorted = [...charted].sort((x, y) => x.localeCompare(y));
  const colorOf = new Map(chartedSorted.map((n, i) => [n, COMPARE_COLORS[i]]));

  const rows: CompareRow[] = names.map((vm) => {
    const st = store.vms.get(vm)!;
    return {
      vm,
      capacity: capacityView(store, vm, windowS),
      machineType: machineTypes[vm] ?? '',
      source: st.source,
      lagS: st.lagS,
      replay: st.lagS > REPLAY_LAG_S,
      procs: st.latest?.total_procesos ?? NaN,
      running: st.latest?.procesos_corriendo ?? NaN,
      latestT: st.latestT,
      color: colorOf.get(vm) ?? null,
    };
  });

  let toT = -Infinity;
  for (const n of chartedSorted) toT = Math.max(toT, store.vms.get(n)!.latestT);
  if (!Number.isFinite(toT)) toT = clientNowMs / 1000;
  const toS = Math.floor(toT);
  const fromS = toS - windowS;
  const len = windowS + 1;
  const t = Array.from({ length: len }, (_, k) => fromS + k);
  const lines = chartedSorted.map((vm) => {
    const s = store.vms.get(vm)!.series;
    const [a, b] = s.range(fromS, toS + 1);
    const times = s.times(a, b);
    return {
      vm,
      color: colorOf.get(vm)!,
      cpu: bucketMeans(times, s.col(COL.cpu, a, b), fromS, len),
      ram: bucketMeans(times, s.col(COL.ram, a, b), fromS, len),
    };
  });
  return { rows, t, lines, fromT: fromS, toT: toS, windowS };
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
