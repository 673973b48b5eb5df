// The capacity verdict: the product's headline rule. The load report applies the same
// rule to the same samples; loadtest/report/testdata/verdict-cases.json (written by an
// independent implementation, verdict_cases.py) and src/lib/testdata/verdict-cases.json
// hold crafted timelines both must judge alike.
//
// Per VM over a window, CPU judged on one-second means:
//   insufficient  fewer than 30 samples, or under 30 s covered
//   fail          CPU p95 ≥ 90 % or RAM peak ≥ 90 %
//   tight         CPU p95 ≥ 70 % or RAM peak ≥ 80 %
//   unstressed    otherwise, when CPU p95 < 25 % and RAM peak < 50 %: the load never
//                 pushed the VM, so the run proves nothing (said instead of passing it)
//   ok            otherwise
//
// A tight or failing verdict names the resource that crossed its tight threshold first,
// and when: CPU at the first second whose trailing 30 s of one-second means have a p95 of
// 70 % or more, RAM at the first sample of 80 % or more; on a tie CPU.
import { maxOf, quantiles, secondMeansAt } from './stats';

/** Thresholds of the capacity verdict (percent, samples, seconds). */
export const THRESHOLDS = {
  cpuP95Tight: 70,
  cpuP95Fail: 90,
  ramPeakTight: 80,
  ramPeakFail: 90,
  /** below both of these the load never pushed the VM */
  cpuP95Unstressed: 25,
  ramPeakUnstressed: 50,
  minSamples: 30,
  minCoverS: 30,
  /** the CPU crossing is judged on the p95 of this many trailing seconds */
  trailingS: 30,
} as const;

export type Verdict = 'ok' | 'tight' | 'fail' | 'unstressed' | 'insufficient';
export type Resource = 'cpu' | 'ram';

/** The severity order of verdicts, worst first (for sorting). */
export const VERDICT_ORDER: readonly Verdict[] = ['fail', 'tight', 'ok', 'unstressed', 'insufficient'];

export interface Crossing {
  resource: Resource;
  /** sample time (seconds) of the crossing: the one-second bucket for CPU, the sample for RAM */
  atS: number;
  /** whole seconds from the start (the first sample's second, or the load's start) to the crossing's second */
  sinceStartS: number;
}

export interface Judgement {
  verdict: Verdict;
  /** the resources that decided a tight or fail verdict */
  reasons: Resource[];
  cpuPeak: number;
  cpuP95: number;
  cpuP50: number;
  ramPeak: number;
  ramP95: number;
  records: number;
  /** seconds between the first and the last sample */
  coveredS: number;
  /** for tight and fail: the resource that crossed its tight threshold first */
  crossing: Crossing | null;
}

/** verdictOf applies THRESHOLDS to the summary figures. */
export function verdictOf(c: { cpuP95: number; ramPeak: number; records: number; coveredS: number }): {
  verdict: Verdict;
  reasons: Resource[];
} {
  if (c.records < THRESHOLDS.minSamples || c.coveredS < THRESHOLDS.minCoverS) return { verdict: 'insufficient', reasons: [] };
  const fail: Resource[] = [];
  const tight: Resource[] = [];
  if (c.cpuP95 >= THRESHOLDS.cpuP95Fail) fail.push('cpu');
  else if (c.cpuP95 >= THRESHOLDS.cpuP95Tight) tight.push('cpu');
  if (c.ramPeak >= THRESHOLDS.ramPeakFail) fail.push('ram');
  else if (c.ramPeak >= THRESHOLDS.ramPeakTight) tight.push('ram');
  if (fail.length) return { verdict: 'fail', reasons: fail };
  if (tight.length) return { verdict: 'tight', reasons: tight };
  if (c.cpuP95 < THRESHOLDS.cpuP95Unstressed && c.ramPeak < THRESHOLDS.ramPeakUnstressed) return { verdict: 'unstressed', reasons: [] };
  return { verdict: 'ok', reasons: [] };
}

/**
 * judge applies the rule to one VM's samples (times in seconds, sorted; CPU and RAM in
 * percent). CPU is judged on one-second means: a sample taken every 10 ms sees a core
 * either busy or idle for the whole tick, so raw samples flip between 0 and 100 % and
 * their p95 says nothing about load. With samples a second or more apart the means are
 * the samples. startS is where "seconds in" count from: the first sample, or the load's
 * start when a load timeline is known (the report's).
 */
export function judge(t: ArrayLike<number>, cpu: ArrayLike<number>, ram: ArrayLike<number>, startS?: number): Judgement {
  const n = t.length;
  const sec = secondMeansAt(t, cpu);
  const [cpuP50, cpuP95] = quantiles(sec.means, [0.5, 0.95]);
  const [ramP95] = quantiles(ram, [0.95]);
  const base = {
    cpuPeak: maxOf(sec.means),
    cpuP95,
    cpuP50,
    ramPeak: maxOf(ram),
    ramP95,
    records: n,
    coveredS: n > 1 ? t[n - 1] - t[0] : 0,
  };
  const v = verdictOf(base);
  const crossing =
    v.verdict === 'tight' || v.verdict === 'fail' ? firstCrossing(t, ram, sec.seconds, sec.means, startS ?? (n > 0 ? t[0] : 0)) : null;
  return { ...base, ...v, crossing };
}

/**
 * firstCrossing finds the resource that crossed its tight threshold first. CPU: the first
 * second whose trailing THRESHOLDS.trailingS seconds of one-second means (fewer at the
 * start of the samples) have a p95 at or above cpuP95Tight. RAM: the first sample at or
 * above ramPeakTight. On a tie (RAM within CPU's second or later) CPU is named.
 */
export function firstCrossing(
  t: ArrayLike<number>,
  ram: ArrayLike<number>,
  seconds: ArrayLike<number>,
  means: ArrayLike<number>,
  startS: number,
): Crossing | null {
  let cpuAt = Infinity;
  const win: number[] = [];
  let j = 0;
  for (let i = 0; i < seconds.length; i++) {
    while (seconds[j] <= seconds[i] - THRESHOLDS.trailingS) j++;
    win.length = 0;
    for (let k = j; k <= i; k++) win.push(means[k]);
    if (quantiles(win, [0.95])[0] >= THRESHOLDS.cpuP95Tight) {
      cpuAt = seconds[i];
      break;
    }
  }
  let ramAt = Infinity;
  for (let i = 0; i < t.length; i++) {
    if (ram[i] >= THRESHOLDS.ramPeakTight) {
      ramAt = t[i];
      break;
    }
  }
  if (cpuAt === Infinity && ramAt === Infinity) return null;
  const resource: Resource = Math.floor(ramAt) < cpuAt ? 'ram' : 'cpu';
  const atS = resource === 'cpu' ? cpuAt : ramAt;
  return { resource, atS, sinceStartS: Math.max(0, Math.floor(atS) - Math.floor(startS)) };
}
