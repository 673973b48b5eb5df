// Exponential backoff with jitter for the relay reconnect loop.

export interface BackoffOptions {
  /** delay ceiling of the first retry, ms */
  baseMs: number;
  /** ceiling of every retry, ms */
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 10_000 };

/**
 * backoffDelay returns how long to wait before retry number `attempt` (1 = first retry).
 * The ceiling doubles per attempt up to capMs; the delay is drawn uniformly from
 * [ceiling/2, ceiling] ("equal jitter"), so clients that lost the relay together do not
 * come back together, and no retry is ever immediate.
 */
export function backoffDelay(
  attempt: number,
  random: () => number = Math.random,
  opts: BackoffOptions = DEFAULT_BACKOFF,
): number {
  const n = Math.max(1, Math.floor(attempt));
  // 2 ** 30 keeps the intermediate finite for absurd attempt counts.
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(n - 1, 30));
  const r = Math.min(Math.max(random(), 0), 1);
  return ceiling / 2 + r * (ceiling / 2);
}
