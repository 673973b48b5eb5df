import { describe, expect, it } from 'vitest';
import { bucketMeans, downsampleLast, gapThreshold, maxOf, meanOf, quantiles, rollingMean, secondMeansAt, timeGaps } from './stats';

describe('quantiles (nearest rank)', () => {
  it('computes p50 and p95 of 1..100', () => {
    const v = Array.from({ length: 100 }, (_, i) => 100 - i); // unsorted on purpose
    expect(quantiles(v, [0.5, 0.95, 1, 0])).toEqual([50, 95, 100, 1]);
  });

  it('p95 of 20 values is the 19th smallest', () => {
    const v = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(quantiles(v, [0.95])).toEqual([19]);
  });

  it('one spike among 100 calm samples is the peak, not the p95', () => {
    const v = new Float32Array(100).fill(10);
    v[37] = 99;
    expect(maxOf(v)).toBeCloseTo(99);
    expect(quantiles(v, [0.95])[0]).toBeCloseTo(10);
  });

  it('ignores NaN and returns NaN when empty', () => {
    expect(quantiles([NaN, 3, NaN, 1, 2], [0.5])).toEqual([2]);
    expect(quantiles([], [0.5, 0.95]).every(Number.isNaN)).toBe(true);
    expect(maxOf([])).toBeNaN();
    expect(meanOf([NaN])).toBeNaN();
    expect(meanOf([1, 2, NaN, 3])).toBe(2);
  });

  it('does not reorder its input', () => {
    const v = new Float32Array([3, 1, 2]);
    quantiles(v, [0.5]);
    expect([...v]).toEqual([3, 1, 2]);
  });
});

describe('downsampleLast', () => {
  it('keeps the last value per bucket and NaN for empty buckets', () => {
    const times = [0, 1, 2, 3, 8, 9];
    const vals = [10, 11, 12, 13, 18, 19];
    const out = downsampleLast(times, vals, 0, 10, 5); // buckets of 2 s
    expect(out.slice(0, 2)).toEqual([11, 13]);
    expect(out[2]).toBeNaN();
    expect(out[3]).toBeNaN();
    expect(out[4]).toBe(19);
  });

  it('ignores samples outside the range', () => {
    const out = downsampleLast([-5, 5, 50], [1, 2, 3], 0, 10, 2);
    expect(out).toEqual([NaN, 2]);
  });
});

describe('gaps', () => {
  it('finds a relay outage in a 10 ms stream and nothing else', () => {
    const xs: number[] = [];
    for (let i = 0; i < 1000; i++) xs.push(i * 0.01);
    for (let i = 0; i < 1000; i++) xs.push(30 + i * 0.01); // 20 s outage after 10 s
    const thr = gapThreshold(xs, 0, xs.length - 1);
    expect(thr).toBe(5);
    expect(timeGaps(xs, 0, xs.length - 1, thr)).toEqual([[999, 1000]]);
  });

  it('adapts to a slow agent: 10 s samples are joined, a 2-minute hole is not', () => {
    const xs = [0, 10, 20, 30, 40, 160, 170, 180];
    const thr = gapThreshold(xs, 0, xs.length - 1);
    expect(thr).toBe(50);
    expect(timeGaps(xs, 0, xs.length - 1, thr)).toEqual([[4, 5]]);
  });

  it('handles tiny inputs', () => {
    expect(gapThreshold([1], 0, 0)).toBe(5);
    expect(timeGaps([1], 0, 0, 5)).toEqual([]);
  });
});

describe('rollingMean', () => {
  it('averages over the trailing window, inclusive of the current sample', () => {
    const t = [0, 0.25, 0.5, 0.75, 1.0, 1.25, 5];
    const v = [0, 100, 0, 100, 0, 100, 40];
    const out = new Float64Array(t.length);
    rollingMean(t, v, 1, out);
    expect([...out]).toEqual([0, 50, 100 / 3, 50, 50, 50, 40]);
  });

  it('is the raw value when samples are further apart than the window', () => {
    const out = new Array<number>(3);
    rollingMean([0, 1, 2], [10, 20, 30], 1, out);
    expect(out).toEqual([10, 20, 30]);
  });
});

describe('secondMeansAt: the means', () => {
  it('turns 10 ms samples flipping 0/100 into per-second means', () => {
    const t: number[] = [];
    const v: number[] = [];
    for (let i = 0; i < 300; i++) {
      t.push(1000 + i * 0.01);
      v.push(i % 4 === 0 ? 100 : 0); // 25 % busy
    }
    const m = secondMeansAt(t, v).means;
    expect(m.length).toBe(3);
    for (const x of m) expect(x).toBeCloseTo(25, 5);
    expect(quantiles(v, [0.95])[0]).toBe(100); // what the raw samples would claim
  });

  it('handles empty input', () => {
    expect(secondMeansAt([], []).means.length).toBe(0);
  });

  it('leaves out slivers of a second at the edges and around a hole', () => {
    const t: number[] = [];
    const v: number[] = [];
    t.push(999.99); // the last 10 ms of a second that began before the window
    v.push(100);
    for (let i = 0; i < 300; i++) {
      if (i >= 150 && i < 198) continue; // 1001.50 .. 1001.97 missing: a short hole
      t.push(1000 + i * 0.01);
      v.push(i % 4 === 0 ? 100 : 0);
    }
    t.push(1003.001); // one busy sample in a second that just started
    v.push(100);
    const m = secondMeansAt(t, v).means;
    expect(m.length).toBe(3); // 1000, 1001 (52 samples: kept) and 1002
    for (const x of m) expect(x).toBeCloseTo(25, 0);
    expect(Math.max(...m)).toBeLessThan(30);
  });

  it('keeps every second when samples are a second or more apart', () => {
    expect([...secondMeansAt([10, 11, 12, 13.5], [1, 2, 3, 4]).means]).toEqual([1, 2, 3, 4]);
    expect([...secondMeansAt([10, 15, 20], [5, 6, 7]).means]).toEqual([5, 6, 7]);
    expect([...secondMeansAt([10.2, 10.7, 11.1], [10, 30, 50]).means]).toEqual([20, 50]); // 2 vs 1 per second: kept
  });
});

describe('secondMeansAt', () => {
  it('gives the second each kept mean belongs to', () => {
    const r = secondMeansAt([10.2, 10.7, 11.1, 13.9], [10, 30, 50, 70]);
    expect([...r.seconds]).toEqual([10, 11, 13]);
    expect([...r.means]).toEqual([20, 50, 70]);
  });
});

describe('bucketMeans', () => {
  it('averages per whole second and leaves empty seconds null', () => {
    expect(bucketMeans([9.5, 10.2, 10.7, 12.1, 14.2], [1, 10, 30, 50, 9], 10, 4)).toEqual([20, null, 50, null]);
  });
});
