import { describe, expect, it } from 'vitest';
import { DashboardStore, dedupeKey, DEFAULT_LIMITS, IdSet, MAX_AHEAD_MS } from './store';
import { batch, history, item, stream, T0 } from './testdata';
import type { RelayItem } from './types';
import { chartView, routeView } from './views';

describe('IdSet', () => {
  it('dedupes and forgets the oldest ids past its cap', () => {
    const s = new IdSet(3);
    expect(s.add('a')).toBe(true);
    expect(s.add('a')).toBe(false);
    s.add('b');
    s.add('c');
    s.add('d'); // evicts a
    expect(s.size).toBe(3);
    expect(s.has('a')).toBe(false);
    expect(s.has('d')).toBe(true);
    expect(s.add('a')).toBe(true);
  });
});

describe('DashboardStore ingest', () => {
  it('dedupes by record.id: a history replay after a reconnect adds nothing twice', () => {
    const st = new DashboardStore();
    const items = stream(100, 10);
    st.ingest(history(items.slice(0, 40)), T0 + 400);
    st.ingest(batch(items.slice(40, 70)), T0 + 700);
    const v1 = st.version;
    // reconnect: the relay's history overlaps what we have and fills the gap 70..89
    st.ingest(history(items.slice(20, 90)), T0 + 900);
    expect(st.version).toBeGreaterThan(v1);
    st.ingest(batch(items.slice(85, 100)), T0 + 1000);
    expect(st.accepted).toBe(100);
    expect(st.duplicates).toBe(50 + 5);
    const cv = chartView(st, 'vm-1', 60);
    expect(cv.points).toBe(100);
    for (let i = 1; i < cv.t.length; i++) expect(cv.t[i]).toBeGreaterThanOrEqual(cv.t[i - 1]);
    expect(st.latestId).toBe(items[99].record.id);
  });

  it('does not bump the version when a frame brings nothing new', () => {
    const st = new DashboardStore();
    const items = stream(5, 10);
    st.ingest(batch(items), T0);
    const v = st.version;
    st.ingest(batch(items), T0);
    st.ingest(history([]), T0);
    expect(st.version).toBe(v);
  });

  it('dedupes records without id by their content', () => {
    const a = item(T0, { id: undefined });
    const b = { ...a, record: { ...a.record } };
    expect(dedupeKey(a)).toBe(dedupeKey(b));
    const st = new DashboardStore();
    st.ingest(batch([a, b]), T0);
    expect(st.accepted).toBe(1);
  });

  it('keeps VMs apart and caps their number', () => {
    const st = new DashboardStore({ ...DEFAULT_LIMITS, maxVms: 2 });
    st.ingest(batch([item(T0, { vm: 'a' }), item(T0 + 1, { vm: 'b' }), item(T0 + 2, { vm: 'c' }), item(T0 + 3, { vm: 'a' })]), T0);
    expect(st.vmNames()).toEqual(['a', 'b']);
    expect(st.vms.get('a')!.received).toBe(2);
    expect(st.limited).toBe(1);
    expect(chartView(st, 'b', 60).points).toBe(1);
    expect(chartView(st, 'nope', 60).points).toBe(0);
  });

  it('bounds memory for an hour at 100 records/s', () => {
    const st = new DashboardStore();
    const perFrame = 10;
    let t = T0;
    for (let f = 0; f < 36_000; f++) {
      const items: RelayItem[] = [];
      for (let i = 0; i < perFrame; i++) {
        t += 10;
        items.push(item(t, {}, i % 2 ? 'route2' : 'route1'));
      }
      st.ingest(batch(items), t + 5);
    }
    expect(st.accepted).toBe(360_000);
    const vm = st.vms.get('vm-1')!;
    // retention: 15 min window + 1 min = 96 000 samples at 100/s
    expect(vm.series.length).toBeLessThanOrEqual((DEFAULT_LIMITS.retainS + 1) * 100);
    expect(vm.series.allocated).toBeLessThanOrEqual(2 * DEFAULT_LIMITS.maxSamplesPerVm);
    for (const r of st.routes.values()) expect(r.series.allocated).toBeLessThanOrEqual(2 * DEFAULT_LIMITS.maxSamplesPerRoute);
    expect(st.routes.get('route1')!.total).toBe(180_000);
    // the 15-minute window is full
    expect(chartView(st, 'vm-1', 900).points).toBe(90_001);
  }, 30_000);

  it('refuses an item stamped far in the future instead of letting it evict everything', () => {
    const st = new DashboardStore();
    const items = stream(3000, 10); // 30 s at 100/s
    const feed = (from: number, to: number) => {
      for (let i = from; i < to; i += 10) st.ingest(batch(items.slice(i, i + 10)), T0 + (i + 9) * 10 + 40);
    };
    feed(0, 1500);
    // a route with a clock a day ahead, in the middle of a normal batch, and alone in a batch
    const bad = item(T0 + 86_400_000, { porcentaje_cpu_uso: 99 });
    st.ingest(batch([items[1500], bad, items[1501]]), T0 + 15_010 + 40);
    st.ingest(batch([item(T0 + 15_020 + 5 * MAX_AHEAD_MS)]), T0 + 15_030);
    expect(st.invalid).toBe(2);
    feed(1502, 3000);
    expect(st.accepted).toBe(3000);
    const cv = chartView(st, 'vm-1', 60);
    expect(cv.points).toBe(3000);
    expect(cv.toT).toBe((T0 + 29_990) / 1000);
    // the relay clock estimate was not dragged into the future either
    expect(st.serverNowS(T0 + 30_040)).toBeCloseTo((T0 + 29_990) / 1000, 1);
    expect(routeView(st, st.serverNowS(T0 + 30_040), 60)[0].rateLive).toBeCloseTo(50, 0);
    // a few seconds ahead (route clocks disagreeing a little) is fine
    st.ingest(batch([item(T0 + 30_000 + MAX_AHEAD_MS / 2)]), T0 + 30_050);
    expect(st.accepted).toBe(3001);
  });

  it('still takes the stream when the browser clock is minutes behind the relay', () => {
    const st = new DashboardStore();
    const skew = -10 * 60_000; // browser 10 min behind
    const items = stream(2000, 10);
    st.ingest(history(items.slice(0, 500)), T0 + 5000 + skew);
    for (let i = 500; i < 2000; i += 10) st.ingest(batch(items.slice(i, i + 10)), T0 + (i + 9) * 10 + 40 + skew);
    // at most the history and the first batches are lost while the page learns the offset
    expect(st.accepted).toBeGreaterThanOrEqual(1500 - 30);
    expect(st.vms.get('vm-1')!.latestT).toBe((T0 + 19_990) / 1000);
    expect(st.serverNowS(T0 + 20_030 + skew)).toBeCloseTo((T0 + 19_990) / 1000, 1);
  });
});

