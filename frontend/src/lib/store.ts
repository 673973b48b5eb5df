// DashboardStore: everything the page knows, kept outside React. Frames from the relay
// are ingested as they arrive (cheap: a dedupe lookup and a sorted insert per item);
// the page reads views from it a few times per second.
//
// Two clocks: a VM's series is ordered by when the VM took each sample (hora, see
// protocol.sampleTime), so a replay of samples collected earlier is drawn when they were
// taken; the route race and the estimate of the relay's clock use the commit time
// (stored_at).
//
// Memory is bounded: per-VM and per-route buffers are capped by retention (the largest
// window plus a minute) and by a hard sample cap, all VMs together by a sample budget
// (the VM holding the most gives up its oldest samples), the dedupe set by a ring of
// ids, and the number of VMs and routes. A new VM name beyond maxVms evicts the least
// active VM, never the one the user picked, so a flood of invented names cannot push
// out a VM that keeps sending.
import { commitTime, sampleTime, type ParsedFrame } from './protocol';
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
  /** hard cap of samples kept over all VMs */
  maxSamplesTotal: number;
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
  // three VMs at 100 records/s for the 16 minutes kept, plus room
  maxSamplesTotal: 400_000,
  maxSamplesPerRoute: 120_000,
  retainS: MAX_WINDOW_S + 60,
  maxIds: 150_000,
  maxVms: 32,
  maxRoutes: 8,
};

/**
 * An item committed more than this ahead of the relay's clock (as estimated from the
 * live stream) is refused and counted as invalid: one item from a clock far in the
 * future would become the newest time of its series, push every real sample out of
 * retention and make the ones that follow look too old to keep.
 */
export const MAX_AHEAD_MS = 60_000;
/**
 * A sample taken more than this after its own commit is refused as invalid (ingest
 * refuses an hora more than 5 minutes ahead of its clock; this adds a minute of slack).
 */
export const MAX_SAMPLE_AHEAD_MS = 6 * 60_000;
/**
 * After this many frames in a row with every item "too far ahead", the page's estimate
 * of the relay clock is what is wrong (e.g. the browser's clock is behind, or jumped):
 * the estimate is dropped and the frame taken as it is.
 */
export const AHEAD_FRAMES_RESET = 3;
/** A record committed this long after its sample was taken is a replay. */
export const REPLAY_LAG_S = 30;
/** Half-life of a VM's activity score (records received, decayed), seconds. */
export const ACTIVITY_HALF_LIFE_S = 60;

/**
 * IdSet remembers the last `cap` ids (insertion order) for dedupe, each with the commit
 * time of its item (NaN when the item was not kept), so a test can ask which ids the
 * page holds for a time range.
 */
export class IdSet {
  private readonly set = new Set<string>();
  private readonly ring: (string | undefined)[];
  private readonly times: Float64Array;
  private head = 0;

  constructor(readonly cap: number) {
    this.ring = new Array(cap);
    this.times = new Float64Array(cap);
  }

  get size(): number {
    return this.set.size;
  }

  has(id: string): boolean {
    return this.set.has(id);
  }

  /** add returns false when id was already present. */
  add(id: string, commitMs = NaN): boolean {
    if (this.set.has(id)) return false;
    const old = this.ring[this.head];
    if (old !== undefined) this.set.delete(old);
    this.ring[this.head] = id;
    this.times[this.head] = commitMs;
    this.head = (this.head + 1) % this.cap;
    this.set.add(id);
    return true;
  }

  /** committedBetween lists the kept ids committed in [fromMs, toMs). */
  committedBetween(fromMs: number, toMs: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.cap; i++) {
      const id = this.ring[i];
      const t = this.times[i];
      if (id !== undefined && t >= fromMs && t < toMs) out.push(id);
    }
    return out;
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
  /** by sample time */
  series: SeriesBuffer;
  /** the newest sample (by sample time) and its time, seconds */
  latest: VmRecord | null;
  latestT: number;
  latestTop: { procs: TopProcess[]; hora: string; t: number } | null;
  /** where the newest sample was read ("kmod", "procfs"; "" when the record does not say) */
  source: string;
  /** commit time minus sample time of the record received last, seconds (NaN: unknown) */
  lagS: number;
  /** records received, decayed with ACTIVITY_HALF_LIFE_S, as of activityAtMs (page clock) */
  activity: number;
  activityAtMs: number;
}

export interface RouteState {
  name: string;
  /** column 0: commit_ms, by commit time */
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
  /** items dropped by a limit (older than retention, a sample cap) */
  limited = 0;
  /** VMs dropped to make room for a new name (maxVms) */
  evicted = 0;
  /** the latest accepted record id */
  latestId = '';
  /** samples held over all VMs */
  totalSamples = 0;
  private readonly ids: IdSet;
  private readonly offsets: number[] = [];
  /** consecutive frames whose every item was too far ahead */
  private aheadFrames = 0;
  private readonly vals = new Float64Array(NCOLS);
  private pinned: string | null = null;

  constructor(readonly limits: StoreLimits = DEFAULT_LIMITS) {
    this.ids = new IdSet(limits.maxIds);
  }

  /** pin keeps the VM the user picked: it is never evicted for a new name (null: none). */
  pin(vm: string | null): void {
    this.pinned = vm;
  }

  /** ingest takes one parsed frame; receivedAtMs is the client clock at arrival. */
  ingest(frame: ParsedFrame, receivedAtMs: number): void {
    this.invalid += frame.dropped;
    const times = frame.items.map(commitTime);
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
      const sMs = sampleTime(it);
      if (Number.isNaN(tMs) || tMs > limitMs || Number.isNaN(sMs) || sMs > tMs + MAX_SAMPLE_AHEAD_MS) {
        this.invalid++;
        return;
      }
      if (tMs > newestMs) newestMs = tMs;
      if (this.add(it, tMs, sMs, receivedAtMs)) changed = true;
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

  /** activityOf is the VM's decayed record count at clientNowMs (0 for an unknown VM). */
  activityOf(vm: string, clientNowMs: number): number {
    const st = this.vms.get(vm);
    return st ? decayed(st, clientNowMs) : 0;
  }

  /** committedBetween lists the ids of the items held that were committed in [fromMs, toMs). */
  committedBetween(fromMs: number, toMs: number): string[] {
    return this.ids.committedBetween(fromMs, toMs);
  }

  private add(it: RelayItem, commitMs: number, sampleMs: number, nowMs: number): boolean {
    const key = dedupeKey(it);
    if (this.ids.has(key)) {
      this.duplicates++;
      return false;
    }
    const r = it.record;
    const vmName = typeof r.vm === 'string' ? r.vm : '';
    let vm = this.vms.get(vmName);
    if (!vm) {
      if (this.vms.size >= this.limits.maxVms && !this.evictLeastActive(nowMs)) {
        this.limited++;
        return false;
      }
      vm = {
        name: vmName,
        // small at first: most names in a flood never get a second sample
        series: new SeriesBuffer(NCOLS, this.limits.maxSamplesPerVm, this.limits.retainS, 128),
        latest: null,
        latestT: -Infinity,
        latestTop: null,
        source: '',
        lagS: NaN,
        activity: 0,
        activityAtMs: nowMs,
      };
      this.vms.set(vmName, vm);
    }
    const t = sampleMs / 1000;
    const v = this.vals;
    v[COL.cpu] = r.porcentaje_cpu_uso;
    v[COL.ram] = r.porcentaje_ram;
    v[COL.run] = r.procesos_corriendo;
    v[COL.sleep] = r.procesos_durmiendo;
    v[COL.zombie] = r.procesos_zombie;
    v[COL.stop] = r.procesos_parados;
    v[COL.total] = r.total_procesos;
    const before = vm.series.length;
    const kept = vm.series.insert(t, v);
    this.totalSamples += vm.series.length - before;
    if (!kept) {
      this.limited++;
      // still remember the id: the same old item will come again with every history
      this.ids.add(key);
      return false;
    }
    this.ids.add(key, commitMs);
    vm.activity = decayed(vm, nowMs) + 1;
    vm.activityAtMs = nowMs;
    vm.lagS = (commitMs - sampleMs) / 1000;
    this.accepted++;
    if (t >= vm.latestT) {
      vm.latestT = t;
      vm.latest = r;
      vm.source = typeof r.source === 'string' ? r.source : '';
      if (typeof r.id === 'string') this.latestId = r.id;
    }
    if (Array.isArray(r.top_procesos) && r.top_procesos.length > 0 && (!vm.latestTop || t >= vm.latestTop.t)) {
      vm.latestTop = { procs: r.top_procesos, hora: r.hora, t };
    }
    if (this.totalSamples > this.limits.maxSamplesTotal) this.trimToBudget();

    const routeName = it.route;
    let rs = this.routes.get(routeName);
    const ct = commitMs / 1000;
    if (!rs && this.routes.size < this.limits.maxRoutes) {
      rs = {
        name: routeName,
        series: new SeriesBuffer(1, this.limits.maxSamplesPerRoute, this.limits.retainS),
        total: 0,
        firstT: ct,
      };
      this.routes.set(routeName, rs);
    }
    if (rs) {
      rs.total++;
      if (ct < rs.firstT) rs.firstT = ct;
      rs.series.insert(ct, [it.commit_ms]);
    }
    return true;
  }

  /**
   * evictLeastActive drops the VM with the lowest activity score (ties: the one that
   * was quiet longest), never the pinned one. A VM that keeps sending keeps a score far
   * above a name seen once, so a flood of invented names only evicts its own kind.
   */
  private evictLeastActive(nowMs: number): boolean {
    let victim: VmState | null = null;
    let low = Infinity;
    for (const st of this.vms.values()) {
      if (st.name === this.pinned) continue;
      const a = decayed(st, nowMs);
      if (a < low || (a === low && victim !== null && st.activityAtMs < victim.activityAtMs)) {
        low = a;
        victim = st;
      }
    }
    if (!victim) return false;
    this.vms.delete(victim.name);
    this.totalSamples -= victim.series.length;
    this.evicted++;
    return true;
  }

  /**
   * trimToBudget brings the samples of all VMs to 95 % of maxSamplesTotal by dropping
   * the oldest samples of the VM holding the most (the 5 % slack makes it rare).
   */
  private trimToBudget(): void {
    const goal = Math.floor(0.95 * this.limits.maxSamplesTotal);
    while (this.totalSamples > goal) {
      let big: VmState | null = null;
      for (const st of this.vms.values()) if (!big || st.series.length > big.series.length) big = st;
      if (!big || big.series.length === 0) break;
      const n = Math.min(big.series.length, this.totalSamples - goal);
      big.series.dropOldest(n);
      this.totalSamples -= n;
    }
  }
}

function decayed(st: VmState, nowMs: number): number {
  const dt = Math.max(0, nowMs - st.activityAtMs) / 1000;
  return st.activity * Math.pow(2, -dt / ACTIVITY_HALF_LIFE_S);
}
