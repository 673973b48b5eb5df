import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF } from './backoff';

describe('backoffDelay', () => {
  it('doubles the ceiling per attempt and draws from [ceiling/2, ceiling]', () => {
    const opts = { baseMs: 500, capMs: 10_000 };
    expect(backoffDelay(1, () => 0, opts)).toBe(250);
    expect(backoffDelay(1, () => 1, opts)).toBe(500);
    expect(backoffDelay(2, () => 0, opts)).toBe(500);
    expect(backoffDelay(2, () => 1, opts)).toBe(1000);
    expect(backoffDelay(3, () => 0.5, opts)).toBe(1500);
    expect(backoffDelay(4, () => 1, opts)).toBe(4000);
  });

  it('never exceeds the cap, even for huge attempt counts', () => {
    for (const n of [6, 7, 10, 50, 1e6]) {
      expect(backoffDelay(n, () => 1)).toBe(DEFAULT_BACKOFF.capMs);
      expect(backoffDelay(n, () => 0)).toBe(DEFAULT_BACKOFF.capMs / 2);
    }
  });

  it('is never zero and clamps bad input', () => {
    expect(backoffDelay(0, () => 0)).toBe(250);
    expect(backoffDelay(-3, () => 0)).toBe(250);
    expect(backoffDelay(1, () => 7)).toBe(500); // random() out of range is clamped
    expect(backoffDelay(1, () => -1)).toBe(250);
  });

  it('spreads clients apart (jitter)', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) seen.add(Math.round(backoffDelay(5)));
    expect(seen.size).toBeGreaterThan(10);
    for (const d of seen) {
      expect(d).toBeGreaterThanOrEqual(4000);
      expect(d).toBeLessThanOrEqual(8000);
    }
  });
});
