import { describe, expect, it } from 'vitest';
import { THRESHOLDS, verdictOf } from './verdict';

describe('verdict', () => {
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

});
