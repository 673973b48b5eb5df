// The capacity verdict: the product's headline rule. The load report applies the same
// rule to the same samples; loadtest/report/testdata/verdict-cases.json (and
// src/lib/testdata/verdict-cases.json here) hold crafted timelines both must judge alike.
//
// Per VM over a window, CPU judged on one-second means:
//   insufficient  fewer than 30 samples, or under 30 s covered
//   fail          CPU p95 ≥ 90 % or RAM peak ≥ 90 %
//   tight         CPU p95 ≥ 70 % or RAM peak ≥ 80 %
//   unstressed    otherwise, when CPU p95 < 25 % and RAM peak < 50 %: the load never
//                 pushed the VM, so the run proves nothing (said instead of passing it)
//   ok            otherwise
//
// The explanation names the resource that crossed its tight threshold first, and when:
// CPU when the p95 of the trailing 30 s of one-second means first reached 70 %, RAM when
// a sample first reached 80 %.
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
  /** seconds after the first sample judged */
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
 * the samples.
 */
export function judge(t: ArrayLike<number>, cpu: ArrayLike<number>, ram: ArrayLike<number>): Judgement {
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
  let crossing: Crossing | null = null;
  if (v.verdict === 'tight' || v.verdict === 'fail') {
    // every resource at or past its tight threshold over the window takes part, not only
    // the ones that decided: a RAM that reached 85 % before the CPU p95 reached 95 % ran
    // out first
    const pressed: Resource[] = [];
    if (cpuP95 >= THRESHOLDS.cpuP95Tight) pressed.push('cpu');
    if (base.ramPeak >= THRESHOLDS.ramPeakTight) pressed.push('ram');
    crossing = firstCrossing(t, ram, sec.seconds, sec.means, pressed);
  }
  return { ...base, ...v, crossing };
}

/**
 * firstCrossing finds which of `among` crossed its tight threshold first. CPU: the first
 * second whose trailing THRESHOLDS.trailingS seconds of one-second means (fewer at the
 * start of the samples) have a p95 at or above cpuP95Tight. RAM: the first sample at or
 * above ramPeakTight. On a tie CPU is named (its second starts no later than the RAM
 * sample within it).
 */
export function firstCrossing(
  t: ArrayLike<number>,
  ram: ArrayLike<number>,
  seconds: ArrayLike<number>,
  means: ArrayLike<number>,
  among: Resource[],
): Crossing | null {
  let cpuAt = Infinity;
  if (among.includes('cpu')) {
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
  }
  let ramAt = Infinity;
  if (among.includes('ram')) {
    for (let i = 0; i < t.length; i++) {
      if (ram[i] >= THRESHOLDS.ramPeakTight) {
        ramAt = t[i];
        break;
      }
    }
  }
  if (cpuAt === Infinity && ramAt === Infinity) return null;
  const resource: Resource = ramAt < cpuAt ? 'ram' : 'cpu';
  const atS = resource === 'cpu' ? cpuAt : ramAt;
  return { resource, atS, sinceStartS: t.length > 0 ? Math.max(0, atS - t[0]) : 0 };
}
