import { describe, expect, it } from 'vitest';
import { SeriesBuffer } from './series';

function values(b: SeriesBuffer, col = 0): number[] {
  const [a, e] = b.bounds();
  return [...b.col(col, a, e)];
}
function times(b: SeriesBuffer): number[] {
  const [a, e] = b.bounds();
  return [...b.times(a, e)];
}

describe('SeriesBuffer', () => {
  it('appends in order and keeps times sorted when items arrive out of order', () => {
    const b = new SeriesBuffer(1, 100, 1e9, 4);
    for (const t of [1, 2, 5, 3, 4, 4, 0.5]) b.insert(t, [t * 10]);
    expect(times(b)).toEqual([0.5, 1, 2, 3, 4, 4, 5]);
    expect(values(b)).toEqual([5, 10, 20, 30, 40, 40, 50]);
    expect(b.newest).toBe(5);
    expect(b.oldest).toBe(0.5);
  });

  it('drops the oldest samples past the hard cap and never allocates more than 2 × cap', () => {
    const b = new SeriesBuffer(2, 1000, 1e9, 16);
    for (let i = 0; i < 10_000; i++) b.insert(i, [i, -i]);
    expect(b.length).toBe(1000);
    expect(b.oldest).toBe(9000);
    expect(b.newest).toBe(9999);
    expect(b.allocated).toBeLessThanOrEqual(2000);
    expect(values(b, 1)[0]).toBe(-9000);
    // a late sample older than everything kept is refused when full
    expect(b.insert(5, [0, 0])).toBe(false);
    expect(b.length).toBe(1000);
  });

  it('drops samples older than retention behind the newest', () => {
    const b = new SeriesBuffer(1, 1e6, 60, 8);
    for (let t = 0; t <= 200; t += 1) b.insert(t, [t]);
    expect(b.oldest).toBe(140);
    expect(b.length).toBe(61);
    expect(b.insert(100, [1])).toBe(false); // too old
    expect(b.insert(150.5, [1])).toBe(true); // inside retention, goes in the middle
    expect(times(b).slice(10, 13)).toEqual([150, 150.5, 151]);
  });

  it('ranges by time with inclusive bounds and gives zero-copy views', () => {
    const b = new SeriesBuffer(1, 100, 1e9);
    for (let t = 0; t < 10; t++) b.insert(t, [t]);
    const [a, e] = b.range(3, 6);
    expect(e - a).toBe(4);
    const view = b.times(a, e);
    expect([...view]).toEqual([3, 4, 5, 6]);
    expect(view.buffer).toBe(b.t.buffer);
    const [x, y] = b.range(20, 30);
    expect(y - x).toBe(0);
    expect(b.lowerBound(-1)).toBe(b.bounds()[0]);
  });

  it('survives many compactions with interleaved out-of-order inserts', () => {
    const b = new SeriesBuffer(1, 500, 1e9, 4);
    let expectedMax = 0;
    for (let i = 0; i < 5000; i++) {
      const t = i + (i % 3 === 0 ? -0.5 : 0); // every third is a bit late
      b.insert(t, [t]);
      expectedMax = Math.max(expectedMax, t);
    }
    const ts = times(b);
    expect(ts.length).toBe(500);
    for (let i = 1; i < ts.length; i++) expect(ts[i]).toBeGreaterThanOrEqual(ts[i - 1]);
    expect(values(b)).toEqual(ts);
    expect(b.newest).toBe(expectedMax);
  });

  it('rejects non-finite times', () => {
    const b = new SeriesBuffer(1, 10, 10);
    expect(b.insert(NaN, [1])).toBe(false);
    expect(b.length).toBe(0);
  });
});

describe('SeriesBuffer.dropOldest', () => {
  it('drops the oldest samples and gives back memory when mostly empty', () => {
    const s = new SeriesBuffer(1, 100_000, 1e9, 64);
    for (let i = 0; i < 50_000; i++) s.insert(i, [i]);
    const big = s.allocated;
    s.dropOldest(49_000);
    expect(s.length).toBe(1000);
    expect(s.oldest).toBe(49_000);
    expect(s.newest).toBe(49_999);
    expect(s.allocated).toBeLessThan(big / 4);
    s.insert(50_000, [1]);
    expect(s.length).toBe(1001);
    s.dropOldest(5000);
    expect(s.length).toBe(0);
  });
});
