// Small statistics used by the capacity summary and the route race.

/**
 * quantiles returns the nearest-rank quantiles of values (NaN entries are ignored):
 * q(p) is the smallest value v such that at least p·n of the values are <= v.
 * Returns NaN for each p when there is no value.
 */
export function quantiles(values: ArrayLike<number>, ps: number[]): number[] {
  const a = new Float64Array(values.length);
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isNaN(v)) a[n++] = v;
  }
  if (n === 0) return ps.map(() => NaN);
  const s = a.subarray(0, n).sort();
  return ps.map((p) => {
    const rank = Math.ceil(Math.min(Math.max(p, 0), 1) * n);
    return s[Math.min(Math.max(rank, 1), n) - 1];
  });
}

/** max of values ignoring NaN; NaN when empty. */
export function maxOf(values: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > m) m = values[i];
  return m === -Infinity ? NaN : m;
}

/** mean of values ignoring NaN; NaN when empty. */
export function meanOf(values: ArrayLike<number>): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isNaN(v)) {
      s += v;
      n++;
    }
  }
  return n ? s / n : NaN;
}

/**
 * downsampleLast reduces a (times, values) series to at most `buckets` points spread
 * evenly over [fromT, toT], keeping the last value of each bucket (NaN for an empty
 * bucket). Used for sparklines.
 */
export function downsampleLast(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  fromT: number,
  toT: number,
  buckets: number,
): number[] {
  const out = new Array<number>(buckets).fill(NaN);
  const span = toT - fromT;
  if (!(span > 0) || buckets <= 0) return out;
  for (let i = 0; i < times.length; i++) {
    const t = times[i];
    if (t < fromT || t > toT) continue;
    const b = Math.min(buckets - 1, Math.floor(((t - fromT) / span) * buckets));
    out[b] = values[i];
  }
  return out;
}

/**
 * gapThreshold is the spacing (seconds) above which two neighbouring samples are drawn
 * apart instead of joined: 5 × the median spacing, at least `minS`. The median comes
 * from at most 256 evenly spread neighbours, so the cost does not grow with the window.
 */
export function gapThreshold(xs: ArrayLike<number>, idx0: number, idx1: number, minS = 5): number {
  const n = idx1 - idx0;
  if (n < 1) return minS;
  const k = Math.min(256, n);
  const d = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    const i = idx0 + Math.floor((j * n) / k);
    d[j] = xs[i + 1] - xs[i];
  }
  d.sort();
  return Math.max(minS, 5 * d[k >> 1]);
}

/** timeGaps lists [i, i+1] index pairs in [idx0, idx1] whose spacing exceeds thresholdS. */
export function timeGaps(xs: ArrayLike<number>, idx0: number, idx1: number, thresholdS: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = idx0; i < idx1; i++) if (xs[i + 1] - xs[i] > thresholdS) out.push([i, i + 1]);
  return out;
}

/**
 * rollingMean writes into out[i] the mean of the values whose time lies in
 * (times[i] - windowS, times[i]]. times must be sorted. O(n).
 */
export function rollingMean(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  windowS: number,
  out: { [i: number]: number; length: number },
): void {
  let j = 0;
  let sum = 0;
  for (let i = 0; i < times.length; i++) {
    sum += values[i];
    const floor = times[i] - windowS;
    while (j < i && times[j] <= floor) sum -= values[j++];
    out[i] = sum / (i - j + 1);
  }
}

/**
 * secondMeansAt averages the values per whole second of their time (sorted input), and
 * gives the second (floor of the time) each mean belongs to.
 * A second that holds fewer than minShare × the median number of samples per second is
 * left out: at the edges of a window, and either side of a hole, a second is only a
 * sliver of itself, and the mean of a sliver of 10 ms samples that flip between 0 and
 * 100 % is noise (one sample in a just-started second would become the peak). With
 * samples a second or more apart every second holds one sample and all are kept.
 */
export function secondMeansAt(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  minShare = 0.25,
): { seconds: Float64Array; means: Float64Array } {
  const secs: number[] = [];
  const sums: number[] = [];
  const counts: number[] = [];
  let cur = NaN;
  for (let i = 0; i < times.length; i++) {
    const s = Math.floor(times[i]);
    if (s !== cur) {
      cur = s;
      secs.push(s);
      sums.push(0);
      counts.push(0);
    }
    sums[sums.length - 1] += values[i];
    counts[counts.length - 1]++;
  }
  if (counts.length === 0) return { seconds: new Float64Array(0), means: new Float64Array(0) };
  const sorted = Float64Array.from(counts).sort();
  const min = minShare * sorted[sorted.length >> 1];
  const seconds: number[] = [];
  const means: number[] = [];
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] >= min) {
      seconds.push(secs[i]);
      means.push(sums[i] / counts[i]);
    }
  }
  return { seconds: Float64Array.from(seconds), means: Float64Array.from(means) };
}

/**
 * bucketMeans averages (sorted) values per whole second from fromS (an integer) on:
 * out[k] is the mean of the values whose time lies in [fromS + k, fromS + k + 1), or
 * null for a second without any (a gap on a chart).
 */
export function bucketMeans(times: ArrayLike<number>, values: ArrayLike<number>, fromS: number, n: number): (number | null)[] {
  const sums = new Float64Array(n);
  const counts = new Uint32Array(n);
  for (let i = 0; i < times.length; i++) {
    const k = Math.floor(times[i]) - fromS;
    if (k < 0 || k >= n) continue;
    sums[k] += values[i];
    counts[k]++;
  }
  const out = new Array<number | null>(n);
  for (let k = 0; k < n; k++) out[k] = counts[k] ? sums[k] / counts[k] : null;
  return out;
}
