/// <reference types="node" />
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
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
  samples: { t: number; cpu: number; ram: number }[];
  expect: { verdict: string; resource: string | null; crossedAtS: number | null };
}

// The crafted timelines the dashboard and the load report must judge alike. Ours are
// here; the report's (written by the load-test side) are read too once they exist.
const here = path.dirname(new URL(import.meta.url).pathname);
const CASE_FILES = [
  path.join(here, 'testdata', 'verdict-cases.json'),
  path.resolve(here, '../../../loadtest/report/testdata/verdict-cases.json'),
];

describe.each(CASE_FILES.filter((f, i) => i === 0 || fs.existsSync(f)))('verdict cases in %s', (file) => {
  const cases = JSON.parse(fs.readFileSync(file, 'utf8')) as VerdictCase[];

  it('has cases', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const j = judge(
      c.samples.map((s) => s.t),
      c.samples.map((s) => s.cpu),
      c.samples.map((s) => s.ram),
    );
    expect({ verdict: j.verdict, resource: j.crossing?.resource ?? null, crossedAtS: j.crossing?.atS ?? null }).toEqual({
      verdict: c.expect.verdict,
      resource: c.expect.resource ?? null,
      crossedAtS: c.expect.crossedAtS ?? null,
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
