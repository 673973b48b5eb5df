// The capacity verdict: the product's headline rule, shared with the report.

/** Thresholds of the capacity verdict (percent). */
export const THRESHOLDS = {
  cpuP95Tight: 70,
  cpuP95Fail: 90,
  ramPeakTight: 80,
  ramPeakFail: 90,
  minSamples: 30,
  minCoverS: 30,
} as const;

export type Verdict = 'ok' | 'tight' | 'fail' | 'insufficient';

export interface CapacityView {
  cpuPeak: number;
  cpuP95: number;
  cpuP50: number;
  ramPeak: number;
  ramP95: number;
  records: number;
  /** seconds between the first and the last sample in the window */
  coveredS: number;
  windowS: number;
  verdict: Verdict;
  /** which limit decided a tight/fail verdict */
  reasons: ('cpu' | 'ram')[];
}

/** verdictOf applies THRESHOLDS: the VM carries the load when CPU p95 and RAM peak stay low. */
export function verdictOf(c: Pick<CapacityView, 'cpuP95' | 'ramPeak' | 'records' | 'coveredS'>): {
  verdict: Verdict;
  reasons: ('cpu' | 'ram')[];
} {
  if (c.records < THRESHOLDS.minSamples || c.coveredS < THRESHOLDS.minCoverS) return { verdict: 'insufficient', reasons: [] };
  const fail: ('cpu' | 'ram')[] = [];
  const tight: ('cpu' | 'ram')[] = [];
  if (c.cpuP95 >= THRESHOLDS.cpuP95Fail) fail.push('cpu');
  else if (c.cpuP95 >= THRESHOLDS.cpuP95Tight) tight.push('cpu');
  if (c.ramPeak >= THRESHOLDS.ramPeakFail) fail.push('ram');
  else if (c.ramPeak >= THRESHOLDS.ramPeakTight) tight.push('ram');
  if (fail.length) return { verdict: 'fail', reasons: fail };
  if (tight.length) return { verdict: 'tight', reasons: tight };
  return { verdict: 'ok', reasons: [] };
}

