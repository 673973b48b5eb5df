import { describe, expect, it } from 'vitest';
import { formatAgo, formatDuration, windowLabel } from './format';

describe('format', () => {
  it('formats durations the way the verdict explanation says them', () => {
    expect(formatDuration(45)).toBe('45 s');
    expect(formatDuration(125)).toBe('2 min 05 s');
    expect(formatDuration(3720)).toBe('1 h 02 min');
    expect(formatDuration(-3)).toBe('0 s');
    expect(formatDuration(NaN)).toBe('—');
  });

  it('formats ages and window labels', () => {
    expect(formatAgo(3.24, 'es')).toBe('3,2 s');
    expect(formatAgo(45, 'en')).toBe('45 s');
    expect(formatAgo(600, 'en')).toBe('10 min');
    expect(windowLabel(300)).toBe('5 min');
  });
});
