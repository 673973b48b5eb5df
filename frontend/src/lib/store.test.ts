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

  it('keeps VMs apart; a new name beyond maxVms evicts the least active VM, never the pinned one', () => {
    const st = new DashboardStore({ ...DEFAULT_LIMITS, maxVms: 2 });
    // a sends 3 records, b one
    st.ingest(batch([item(T0, { vm: 'a' }), item(T0 + 1, { vm: 'a' }), item(T0 + 2, { vm: 'a' }), item(T0 + 3, { vm: 'b' })]), T0);
    st.ingest(batch([item(T0 + 4, { vm: 'c' })]), T0 + 1000);
    expect(st.vmNames().sort()).toEqual(['a', 'c']);
    expect(st.evicted).toBe(1);
    expect(chartView(st, 'a', 60).points).toBe(3);
    expect(chartView(st, 'c', 60).points).toBe(1);
    expect(chartView(st, 'nope', 60).points).toBe(0);
    // the user picked c: d evicts a, although a was more active
    st.pin('c');
    st.ingest(batch([item(T0 + 5, { vm: 'd' })]), T0 + 2000);
    expect(st.vmNames().sort()).toEqual(['c', 'd']);
    expect(st.totalSamples).toBe(2);
  });

  it('is not starved by a flood of invented VM names, and keeps the picked one', () => {
    const st = new DashboardStore();
    // the real VM: one sample a second for 5 minutes
    for (let s = 0; s < 300; s++) st.ingest(batch([item(T0 + s * 1000, { vm: 'real' })]), T0 + s * 1000 + 50);
    // a flood VM the user happens to pick
    st.ingest(batch([item(T0 + 300_000, { vm: 'flood-picked' })]), T0 + 300_050);
    st.pin('flood-picked');
    // then 100 s of 200 invented names a second, the real VM still sending
    let n = 0;
    for (let s = 300; s < 400; s++) {
      const items: RelayItem[] = [item(T0 + s * 1000, { vm: 'real' })];
      for (let k = 0; k < 200; k++) items.push(item(T0 + s * 1000 + k, { vm: `flood-${n++}` }));
      st.ingest(batch(items), T0 + s * 1000 + 50);
    }
    expect(st.vms.size).toBe(DEFAULT_LIMITS.maxVms);
    expect(st.vms.has('real')).toBe(true);
    expect(st.vms.get('real')!.series.length).toBe(400);
    expect(chartView(st, 'real', 900).points).toBe(400);
    expect(st.vms.has('flood-picked')).toBe(true);
    expect(st.evicted).toBe(20_001 - (DEFAULT_LIMITS.maxVms - 1));
    expect(st.totalSamples).toBe([...st.vms.values()].reduce((a, v) => a + v.series.length, 0));
  });

  it('bounds the samples of all VMs together, trimming the VM that holds the most', () => {
    const limits = { ...DEFAULT_LIMITS, maxSamplesTotal: 20_000, maxVms: 8 };
    const st = new DashboardStore(limits);
    // 8 VMs at 100 records/s each for 60 s: 48 000 samples offered
    let t = T0;
    for (let f = 0; f < 600; f++) {
      const items: RelayItem[] = [];
      for (let v = 0; v < 8; v++) for (let i = 0; i < 10; i++) items.push(item(t + i, { vm: `vm-${v}` }));
      t += 100;
      st.ingest(batch(items), t);
    }
    expect(st.accepted).toBe(48_000);
    expect(st.totalSamples).toBeLessThanOrEqual(limits.maxSamplesTotal);
    const held = [...st.vms.values()].map((v) => v.series.length);
    expect(st.totalSamples).toBe(held.reduce((a, b) => a + b, 0));
    // shared out: nobody holds much more than an eighth
    expect(Math.max(...held)).toBeLessThan(limits.maxSamplesTotal / 8 + 1000);
    const allocated = [...st.vms.values()].reduce((a, v) => a + v.series.allocated, 0);
    expect(allocated).toBeLessThanOrEqual(4 * limits.maxSamplesTotal);
    // what is held is the newest
    expect(chartView(st, 'vm-0', 60).toT).toBeCloseTo((t - 100 + 9) / 1000, 3);
  });

  it('draws a replay at its sample time and says how far behind its commit it is', () => {
    const st = new DashboardStore();
    const taken = T0 - 2 * 3600_000;
    // samples taken two hours ago, one a second, sent now at 20 a second
    const items = Array.from({ length: 60 }, (_, i) => {
      const it = item(T0 + i * 50, { vm: 'replayed' });
      it.record.hora = new Date(taken + i * 1000).toISOString().slice(0, 19).replace('T', ' ');
      return it;
    });
    st.ingest(batch(items), T0 + 3000);
    const vm = st.vms.get('replayed')!;
    expect(vm.latestT).toBe((taken + 59_000) / 1000);
    expect(vm.lagS).toBeCloseTo((T0 + 59 * 50 - (taken + 59_000)) / 1000, 3);
    const cv = chartView(st, 'replayed', 60);
    expect(cv.points).toBe(60);
    expect(cv.t[0]).toBe(taken / 1000);
    // the route race stays on commit time
    expect(routeView(st, (T0 + 3000) / 1000, 60)[0].rateLive).toBeGreaterThan(0);
  });

  it('keeps where the newest sample was read', () => {
    const st = new DashboardStore();
    st.ingest(batch([item(T0, { source: 'kmod' }), item(T0 + 1000, { source: 'procfs' }), item(T0 + 500, { source: 'kmod' })]), T0 + 1000);
    expect(st.vms.get('vm-1')!.source).toBe('procfs');
    st.ingest(batch([item(T0 + 2000, { vm: 'other' })]), T0 + 2000);
    expect(st.vms.get('other')!.source).toBe('');
  });

  it('lists the ids it holds by commit time', () => {
    const st = new DashboardStore();
    const items = stream(10, 100);
    st.ingest(batch(items), T0 + 1000);
    expect(st.committedBetween(T0 + 200, T0 + 500).sort()).toEqual(items.slice(2, 5).map((x) => x.record.id).sort());
  });

  it('refuses a sample taken long after its own commit', () => {
    const st = new DashboardStore();
    const it = item(T0);
    it.record.hora = new Date(T0 + 10 * 60_000).toISOString().slice(0, 19).replace('T', ' ');
    st.ingest(batch([it, item(T0 + 10)]), T0 + 20);
    expect(st.invalid).toBe(1);
    expect(st.accepted).toBe(1);
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

