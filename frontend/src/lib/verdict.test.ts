/// <reference types="node" />
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHora } from './protocol';
import { judge, THRESHOLDS, verdictOf } from './verdict';

describe('verdictOf', () => {
  it('applies the verdict thresholds', () => {
    const base = { records: 1000, coveredS: 60 };
    expect(verdictOf({ ...base, cpuP95: 40, ramPeak: 50 })).toEqual({ verdict: 'ok', reasons: [] });
    expect(verdictOf({ ...base, cpuP95: THRESHOLDS.cpuP95Tight, ramPeak: 50 })).toEqual({ verdict: 'tight', reasons: ['cpu'] });
    expect(verdictOf({ ...base, cpuP95: 10, ramPeak: THRESHOLDS.ramPeakTight })).toEqual({ verdict: 'tight', reasons: ['ram'] });
    expect(verdictOf({ ...base, cpuP95: 75, ramPeak: 95 })).toEqual({ verdict: 'fail', reasons: ['ram'] });
    expect(verdictOf({ ...base, cpuP95: 95, ramPeak: 95 })).toEqual({ verdict: 'fail', reasons: ['cpu', 'ram'] });
    // too little evidence is said so, whatever the numbers
    expect(verdictOf({ records: 10, coveredS: 60, cpuP95: 99, ramPeak: 99 }).verdict).toBe('insufficient');
    expect(verdictOf({ records: 1000, coveredS: 5, cpuP95: 10, ramPeak: 10 }).verdict).toBe('insufficient');
  });

  it('says a load that never pushed the VM proves nothing instead of passing it', () => {
    const base = { records: 1000, coveredS: 60 };
    expect(verdictOf({ ...base, cpuP95: 24.9, ramPeak: 49.9 }).verdict).toBe('unstressed');
    expect(verdictOf({ ...base, cpuP95: THRESHOLDS.cpuP95Unstressed, ramPeak: 10 }).verdict).toBe('ok');
    expect(verdictOf({ ...base, cpuP95: 10, ramPeak: THRESHOLDS.ramPeakUnstressed }).verdict).toBe('ok');
  });
});

interface VerdictCase {
  name: string;
  samples: { hora: string; porcentaje_cpu_uso: number; porcentaje_ram: number }[];
  /** the load generator's timeline, when known: "seconds in" count from its start */
  load: { start: string } | null;
  want: { verdict: string; cpu_p95: number; ram_peak: number; samples: number; crossed?: string; crossed_in_s?: number };
}

// The crafted timelines the dashboard and the load report must judge alike: the
// report's (loadtest/report/testdata, expectations from an independent implementation)
// and the dashboard's own (10 ms sampling, the exact boundaries), in the same shape.
const here = path.dirname(new URL(import.meta.url).pathname);
const CASE_FILES = [
  path.resolve(here, '../../../loadtest/report/testdata/verdict-cases.json'),
  path.join(here, 'testdata', 'verdict-cases.json'),
];

/** one decimal, halves up, as the cases state their figures */
const r1 = (x: number) => Math.floor(x * 10 + 0.5) / 10;

describe.each(CASE_FILES)('verdict cases in %s', (file) => {
  const cases = (JSON.parse(fs.readFileSync(file, 'utf8')) as { cases: VerdictCase[] }).cases;

  it('has cases', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const j = judge(
      c.samples.map((s) => parseHora(s.hora) / 1000),
      c.samples.map((s) => s.porcentaje_cpu_uso),
      c.samples.map((s) => s.porcentaje_ram),
      c.load ? parseHora(c.load.start) / 1000 : undefined,
    );
    expect({
      verdict: j.verdict,
      cpu_p95: r1(j.cpuP95),
      ram_peak: r1(j.ramPeak),
      samples: j.records,
      crossed: j.crossing?.resource,
      crossed_in_s: j.crossing?.sinceStartS,
    }).toEqual({
      verdict: c.want.verdict,
      cpu_p95: c.want.cpu_p95,
      ram_peak: c.want.ram_peak,
      samples: c.want.samples,
      crossed: c.want.crossed,
      crossed_in_s: c.want.crossed_in_s,
    });
  });
});

describe('judge', () => {
  it('names nothing for ok, unstressed and insufficient, and the time into the window', () => {
    const t = Array.from({ length: 100 }, (_, i) => 1000 + i);
    const j = judge(
      t,
      t.map(() => 10),
      t.map((x) => (x >= 1030 ? 85 : 30)),
    );
    expect(j.verdict).toBe('tight');
    expect(j.crossing).toEqual({ resource: 'ram', atS: 1030, sinceStartS: 30 });
    expect(judge(t, t.map(() => 10), t.map(() => 10)).crossing).toBeNull();
    expect(judge([], [], []).verdict).toBe('insufficient');
  });
});
