// useViews: the flush tick that turns the store into what the panels draw. Charts and
// current values four times per second, the heavier aggregates (percentiles, sparklines,
// route race, the comparison) once per second. So 100 records/s cost four renders per
// second, not a hundred.
import { useCallback, useEffect, useRef, useState } from 'react';
import type { DashboardStore } from '../lib/store';
import type { VmRecord } from '../lib/types';
import {
  capacityView,
  chartView,
  compareView,
  processView,
  routeView,
  type CapacityView,
  type ChartView,
  type CompareView,
  type ProcessView,
  type RouteRow,
} from '../lib/views';
import { hooks } from '../testHooks';

export const TICK_MS = 250;
export const SLOW_MS = 1000;

export interface LiveView {
  chart: ChartView;
  latest: VmRecord | null;
  latestT: number;
  /** every VM held, by name */
  vms: string[];
  /** the VM shown in detail */
  vm: string;
  source: string;
  lagS: number;
}

export interface SlowView {
  procs: ProcessView | null;
  capacity: CapacityView | null;
  routes: RouteRow[];
  /** null with fewer than two VMs */
  compare: CompareView | null;
  nowS: number;
  clientNow: number;
  accepted: number;
  duplicates: number;
  invalid: number;
  limited: number;
  evicted: number;
}

export const EMPTY_CHART: ChartView = {
  t: new Float64Array(0),
  cpu: new Float32Array(0),
  ram: new Float32Array(0),
  cpuAvg: new Float32Array(0),
  ramAvg: new Float32Array(0),
  lastSecondSamples: 0,
  fromT: 0,
  toT: 1,
  points: 0,
};

const EMPTY_LIVE: LiveView = { chart: EMPTY_CHART, latest: null, latestT: NaN, vms: [], vm: '', source: '', lagS: NaN };

/**
 * useViews recomputes the views on a tick, and at once when the window or the picked VM
 * changes or flush() is called. The VM shown is the one picked, else the most active VM
 * when the page first needed one, kept while it is held.
 */
export function useViews(
  store: DashboardStore,
  windowS: number,
  vmPick: string | null,
  machineTypes: Record<string, string> | undefined,
): { live: LiveView; slow: SlowView | null; flush: () => void } {
  const [live, setLive] = useState<LiveView>(EMPTY_LIVE);
  const [slow, setSlow] = useState<SlowView | null>(null);
  const tickRef = useRef<() => void>(() => {});
  const params = useRef({ windowS, vmPick, machineTypes });
  params.current = { windowS, vmPick, machineTypes };

  useEffect(() => {
    let lastVersion = -1;
    let lastKey = '';
    let lastSlow = 0;
    let slowHadData = false;
    let auto = '';
    const tick = () => {
      const p = params.current;
      const now = Date.now();
      const vms = store.vmNames().sort((x, y) => x.localeCompare(y));
      let vm: string;
      if (p.vmPick !== null && store.vms.has(p.vmPick)) vm = p.vmPick;
      else {
        if (!store.vms.has(auto)) {
          auto = vms[0] ?? '';
          for (const n of vms) if (store.activityOf(n, now) > store.activityOf(auto, now)) auto = n;
        }
        vm = auto;
      }
      const key = `${vm}\u0000${p.windowS}`;
      const keyChanged = key !== lastKey;
      lastKey = key;
      const h = hooks();
      if (store.version !== lastVersion || keyChanged) {
        lastVersion = store.version;
        const chart = chartView(store, vm, p.windowS);
        const st = store.vms.get(vm);
        setLive({
          chart,
          latest: st?.latest ?? null,
          latestT: st?.latestT ?? NaN,
          vms,
          vm,
          source: st?.source ?? '',
          lagS: st?.lagS ?? NaN,
        });
        h.points = { cpu: chart.points, ram: chart.points };
        h.latestId = store.latestId;
        h.accepted = store.accepted;
        h.duplicates = store.duplicates;
        h.vms = vms;
        h.flushes++;
      }
      const hasData = store.accepted > 0;
      if (keyChanged || now - lastSlow >= SLOW_MS || (hasData && !slowHadData)) {
        lastSlow = now;
        slowHadData = hasData;
        const nowS = store.serverNowS(now);
        const routes = routeView(store, nowS, p.windowS);
        const compare = store.vms.size > 1 ? compareView(store, p.windowS, now, p.vmPick, p.machineTypes) : null;
        h.routes = Object.fromEntries(routes.map((r) => [r.route, r.total]));
        setSlow({
          procs: processView(store, vm, p.windowS),
          // the comparison already judged every VM over the same window
          capacity: hasData ? (compare?.rows.find((r) => r.vm === vm)?.capacity ?? capacityView(store, vm, p.windowS)) : null,
          routes,
          compare,
          nowS,
          clientNow: now,
          accepted: store.accepted,
          duplicates: store.duplicates,
          invalid: store.invalid,
          limited: store.limited,
          evicted: store.evicted,
        });
      }
    };
    tickRef.current = tick;
    tick();
    const id = window.setInterval(tick, TICK_MS);
    return () => window.clearInterval(id);
  }, [store]);
  useEffect(() => tickRef.current(), [windowS, vmPick, machineTypes]);

  const flush = useCallback(() => tickRef.current(), []);
  return { live, slow, flush };
}
