import { describe, expect, it } from 'vitest';
import { DashboardStore, DEFAULT_LIMITS } from './store';
import { batch, item, stream, T0 } from './testdata';
import type { RelayItem } from './types';
import { capacityView, chartView, compareView, MAX_COMPARE_LINES, processView, routeView } from './views';

describe('views', () => {
  it('windows the chart to the newest sample', () => {
    const st = new DashboardStore();
    st.ingest(batch(stream(300, 1000, (i) => ({ porcentaje_cpu_uso: i % 100 }))), T0 + 300_000);
    const one = chartView(st, 'vm-1', 60);
    expect(one.points).toBe(61); // inclusive bounds: t-60 .. t
    expect(one.toT).toBe((T0 + 299_000) / 1000);
    expect(one.fromT).toBe(one.toT - 60);
    expect(one.cpu[one.points - 1]).toBe(99);
    expect(chartView(st, 'vm-1', 300).points).toBe(300);
  });

  it('computes the capacity summary over the window', () => {
    const st = new DashboardStore();
    // 100 samples, 1 s apart: cpu 0..99, ram constant 40 except one spike
    st.ingest(
      batch(stream(100, 1000, (i) => ({ porcentaje_cpu_uso: i, porcentaje_ram: i === 50 ? 85 : 40 }))),
      T0 + 100_000,
    );
    const c = capacityView(st, 'vm-1', 300);
    expect(c.records).toBe(100);
    expect(c.coveredS).toBe(99);
    expect(c.cpuPeak).toBe(99);
    expect(c.cpuP95).toBe(94);
    expect(c.cpuP50).toBe(49);
    expect(c.ramPeak).toBe(85);
    expect(c.ramP95).toBe(40);
    // CPU p95 94 % is past the 90 % limit; the RAM spike (85 %) alone would be "tight"
    expect(c.verdict).toBe('fail');
    expect(c.reasons).toEqual(['cpu']);
  });

  it('judges CPU on one-second means, not on 10 ms samples that flip between 0 and 100 %', () => {
    const st = new DashboardStore();
    // 61 s at 100 samples/s; a quarter of the samples see a busy core
    st.ingest(batch(stream(6100, 10, (i) => ({ porcentaje_cpu_uso: i % 4 === 0 ? 100 : 0 }))), T0 + 61_000);
    const c = capacityView(st, 'vm-1', 60);
    expect(c.records).toBe(6001); // t-60 s .. t, both ends included
    expect(c.cpuPeak).toBeCloseTo(25, 5);
    expect(c.cpuP95).toBeCloseTo(25, 5);
    expect(c.verdict).toBe('ok');
    const cv = chartView(st, 'vm-1', 60);
    expect(cv.cpu[cv.points - 1] === 0 || cv.cpu[cv.points - 1] === 100).toBe(true);
    // the bold line and the headline: the mean over the last second
    expect(cv.cpuAvg[cv.points - 1]).toBeCloseTo(25, 0);
    expect(cv.cpuAvg[0]).toBeCloseTo(25, 0); // a full second of history before the left edge
    expect(cv.lastSecondSamples).toBe(100);
    expect(cv.cpuAvg.length).toBe(cv.points);
  });

  it('does not take one busy sample in a just-started second as the CPU peak', () => {
    const st = new DashboardStore();
    // 60 s at 100 samples/s, a quarter of them busy: every one-second mean is 25 %
    st.ingest(batch(stream(6000, 10, (i) => ({ porcentaje_cpu_uso: i % 4 === 0 ? 100 : 0 }))), T0 + 60_000);
    // the first sample of the next second happens to see the core busy
    st.ingest(batch([item(T0 + 60_005, { porcentaje_cpu_uso: 100 })]), T0 + 60_010);
    const c = capacityView(st, 'vm-1', 60);
    expect(c.cpuPeak).toBeCloseTo(25, 5);
    expect(c.cpuP95).toBeCloseTo(25, 5);
  });

  it('builds the process table with other = total - the four states and the change vs a minute ago', () => {
    const st = new DashboardStore();
    // 120 samples 1 s apart; total grows by 1 per sample; running 2..4; 3 processes in D/I state
    st.ingest(
      batch(
        stream(120, 1000, (i) => ({
          procesos_corriendo: 2 + (i % 3),
          procesos_durmiendo: 200 + i - (i % 3),
          procesos_zombie: 1,
          procesos_parados: 0,
          total_procesos: 206 + i,
          top_procesos: i === 100 ? [{ pid: 1, name: 'init', state: 'S', rss_mib: 12 }] : undefined,
        })),
      ),
      T0 + 120_000,
    );
    const pv = processView(st, 'vm-1', 60, 10)!;
    const row = Object.fromEntries(pv.rows.map((r) => [r.key, r]));
    expect(row.total.value).toBe(206 + 119);
    expect(row.running.value).toBe(2 + (119 % 3));
    expect(row.other.value).toBe(3);
    expect(row.running.value + row.sleeping.value + row.zombie.value + row.stopped.value + row.other.value).toBe(row.total.value);
    expect(pv.consistent).toBe(true);
    expect(row.total.delta).toBe(60); // vs the sample at t-60 s
    expect(row.zombie.delta).toBe(0);
    expect(row.total.spark).toHaveLength(10);
    expect(row.total.spark[9]).toBe(325);
    expect(pv.top?.procs[0].name).toBe('init');
    expect(pv.hora).toBe('2026-11-23 12:01:59');
  });

  it('has no change vs a minute ago when the data is younger than a minute', () => {
    const st = new DashboardStore();
    st.ingest(batch(stream(30, 1000)), T0 + 30_000);
    const pv = processView(st, 'vm-1', 60)!;
    expect(pv.rows.every((r) => r.delta === null)).toBe(true);
    expect(processView(st, 'other-vm', 60)).toBeNull();
  });

  it('flags a record whose states exceed its total', () => {
    const st = new DashboardStore();
    st.ingest(batch([item(T0, { total_procesos: 10, procesos_durmiendo: 20 })]), T0);
    expect(processView(st, 'vm-1', 60)!.consistent).toBe(false);
  });
});

describe('route race', () => {
  it('computes rates, totals and commit latency percentiles per route', () => {
    const st = new DashboardStore();
    // 100 records/s for 30 s, alternating routes: 50/s each
    const items = stream(3000, 10);
    for (let i = 0; i < items.length; i += 10) st.ingest(batch(items.slice(i, i + 10)), T0 + (i + 10) * 10);
    const nowS = (T0 + 30_000) / 1000;
    const rows = routeView(st, nowS, 60);
    expect(rows.map((r) => r.route)).toEqual(['route1', 'route2']);
    const [r1, r2] = rows;
    expect(r1.total).toBe(1500);
    expect(r2.total).toBe(1500);
    expect(r1.rateLive).toBeCloseTo(50, 0);
    expect(r2.rateLive).toBeCloseTo(50, 0);
    expect(r1.rateWindow).toBeCloseTo(50, 0); // window longer than the data: per second since first seen
    // route1 commit_ms cycles 1,2,3; route2 10..16
    expect(r1.p50).toBe(2);
    expect(r1.p95).toBe(3);
    expect(r2.p50).toBe(13);
    expect(r2.p95).toBe(16);
  });

  it('lets rates decay once the stream stops, using the estimated relay clock', () => {
    const st = new DashboardStore();
    const items = stream(1000, 10);
    // the browser clock runs 5 s ahead of the relay plus 50 ms latency
    for (let i = 0; i < items.length; i += 10) st.ingest(batch(items.slice(i, i + 10)), T0 + (i + 9) * 10 + 5050);
    const clientNow = T0 + 10_000 + 5050;
    expect(st.serverNowS(clientNow)).toBeCloseTo((T0 + 10_000) / 1000, 1);
    expect(routeView(st, st.serverNowS(clientNow), 60)[0].rateLive).toBeCloseTo(50, 0);
    const later = routeView(st, st.serverNowS(clientNow + 20_000), 60)[0];
    expect(later.rateLive).toBe(0);
    expect(later.total).toBe(500);
  });

  it('does not understate the live rate of a route seen for less than 10 s', () => {
    const st = new DashboardStore();
    const items = stream(400, 10); // 4 s at 100/s, 50/s per route
    st.ingest(batch(items), T0 + 4000);
    const [r1] = routeView(st, (T0 + 4000) / 1000, 60);
    expect(r1.rateLive).toBeCloseTo(50, 0);
    expect(r1.rateWindow).toBeCloseTo(50, 0);
  });

  it('divides by the time the buffer covers when its sample cap holds less than the window', () => {
    const st = new DashboardStore();
    // 150 records/s per route for 16 minutes: 135 000 per route in 15 min, over the 120 000 cap
    const perS = 300;
    const stepMs = 1000 / perS;
    const n = 16 * 60 * perS;
    for (let f = 0; f < n; f += 30) {
      const items: RelayItem[] = [];
      for (let i = f; i < f + 30; i++) items.push(item(T0 + i * stepMs, {}, i % 2 ? 'route2' : 'route1'));
      st.ingest(batch(items), T0 + (f + 30) * stepMs);
    }
    const nowS = (T0 + n * stepMs) / 1000;
    const rows = routeView(st, nowS, 900);
    for (const r of rows) {
      expect(st.routes.get(r.route)!.series.length).toBe(DEFAULT_LIMITS.maxSamplesPerRoute);
      expect(r.total).toBe(n / 2);
      expect(r.rateWindow).toBeGreaterThan(148);
      expect(r.rateWindow).toBeLessThan(152);
      expect(r.rateLive).toBeCloseTo(150, 0);
    }
  }, 30_000);

  it('always lists route1 and route2, and extra routes after them', () => {
    const st = new DashboardStore();
    st.ingest(batch([item(T0, {}, ''), item(T0 + 1, {}, 'route2')]), T0);
    const rows = routeView(st, T0 / 1000, 60);
    expect(rows.map((r) => r.route)).toEqual(['route1', 'route2', '']);
    expect(rows[0].total).toBe(0);
    expect(rows[0].p95).toBeNaN();
  });
});

describe('compare', () => {
  /** three VMs, one sample a second for two minutes: CPU-bound, RAM-bound, idle */
  function threeVms(): DashboardStore {
    const st = new DashboardStore();
    for (let i = 0; i < 120; i++) {
      st.ingest(
        batch([
          item(T0 + i * 1000, { vm: 'cpu-vm', porcentaje_cpu_uso: i < 60 ? 20 : 95, porcentaje_ram: 40, source: 'kmod' }),
          item(T0 + i * 1000 + 1, { vm: 'ram-vm', porcentaje_cpu_uso: 30, porcentaje_ram: i < 30 ? 60 : 92, source: 'procfs' }),
          item(T0 + i * 1000 + 2, { vm: 'idle-vm', porcentaje_cpu_uso: 5, porcentaje_ram: 20 }),
        ]),
        T0 + i * 1000 + 10,
      );
    }
    return st;
  }

  it('judges each VM and charts one-second means over one window', () => {
    const st = threeVms();
    const cv = compareView(st, 60, T0 + 120_000, null, { 'cpu-vm': 'e2-small' });
    const row = Object.fromEntries(cv.rows.map((r) => [r.vm, r]));
    // the detail view reuses the row's judgement: it must be capacityView's own
    for (const vm of ['cpu-vm', 'ram-vm', 'idle-vm']) expect(row[vm].capacity).toEqual(capacityView(st, vm, 60));
    expect(row['cpu-vm'].capacity.verdict).toBe('fail');
    expect(row['cpu-vm'].machineType).toBe('e2-small');
    expect(row['cpu-vm'].source).toBe('kmod');
    expect(row['ram-vm'].capacity.verdict).toBe('fail');
    expect(row['ram-vm'].capacity.reasons).toEqual(['ram']);
    expect(row['ram-vm'].source).toBe('procfs');
    expect(row['idle-vm'].capacity.verdict).toBe('unstressed');
    expect(row['idle-vm'].machineType).toBe('');
    expect(row['idle-vm'].procs).toBe(233);
    expect(row['idle-vm'].replay).toBe(false);
    // over 5 minutes the CPU-bound VM is seen crossing
    const wide = compareView(st, 300, T0 + 120_000);
    const cpu = wide.rows.find((r) => r.vm === 'cpu-vm')!;
    expect(cpu.capacity.crossing).toMatchObject({ resource: 'cpu', atS: (T0 + 61_000) / 1000, sinceStartS: 61 });
    expect(cv.t).toHaveLength(61);
    expect(cv.toT).toBe(Math.floor((T0 + 119_002) / 1000));
    expect(cv.lines.map((l) => l.vm)).toEqual(['cpu-vm', 'idle-vm', 'ram-vm']);
    const cpuLine = cv.lines[0];
    expect(cpuLine.cpu[60]).toBe(95);
    expect(cpuLine.ram[0]).toBe(40);
    expect(new Set(cv.lines.map((l) => l.color)).size).toBe(3);
  });

  it('charts the picked VM and the most active others, and lists all', () => {
    const st = new DashboardStore();
    const n = MAX_COMPARE_LINES + 4;
    for (let v = 0; v < n; v++) {
      // vm-0 sends once, the others more the higher their number
      const items: RelayItem[] = [];
      for (let i = 0; i <= v; i++) items.push(item(T0 + i * 1000 + v, { vm: `vm-${v}` }));
      st.ingest(batch(items), T0 + 30_000);
    }
    const cv = compareView(st, 60, T0 + 30_000, 'vm-0');
    expect(cv.rows).toHaveLength(n);
    expect(cv.lines).toHaveLength(MAX_COMPARE_LINES);
    const charted = cv.lines.map((l) => l.vm);
    expect(charted).toContain('vm-0');
    expect(charted).toContain(`vm-${n - 1}`);
    expect(charted).not.toContain('vm-1');
    expect(cv.rows.filter((r) => r.color !== null)).toHaveLength(MAX_COMPARE_LINES);
  });
});
