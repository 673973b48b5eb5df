// DashboardStore: everything the page knows, kept outside React. Frames from the relay
// are ingested as they arrive (cheap: a dedupe lookup and a sorted insert per item);
// the page reads views from it a few times per second. Memory is bounded: per-VM and
// per-route buffers are capped by retention (the largest window plus a minute) and by a
// hard sample cap, the dedupe set by a ring of ids, and the number of VMs and routes.
import { itemTime, type ParsedFrame } from './protocol';
import { SeriesBuffer } from './series';
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
