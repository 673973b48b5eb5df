// Run-time configuration: the relay URL comes from /config.json served next to the
// page ({"relayUrl": "wss://...", "machineTypes": {"vm-a": "e2-small"}}), never from the
// bundle. Empty or missing means the same origin's /ws. machineTypes (optional) names
// each VM's machine type for the comparison table; records do not carry it.
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';

export interface LocationLike {
  protocol: string; // "http:" | "https:"
  host: string; // host[:port]
}

export interface DashboardConfig {
  relayUrl: string;
  /** where the URL came from, shown in the footer */
  source: 'config' | 'same-origin';
  /** VM name → machine type, when the server knows them */
  machineTypes?: Record<string, string>;
}

/** at most this many machine types are read, each name and type at most 64 characters */
export const MAX_MACHINE_TYPES = 256;

/** parseMachineTypes keeps the string → string entries of raw (bounded); null when none. */
export function parseMachineTypes(raw: unknown): Record<string, string> | null {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return null;
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string' || v === '' || k.length > 64 || v.length > 64) continue;
    out[k] = v;
    if (++n >= MAX_MACHINE_TYPES) break;
  }
  return n > 0 ? out : null;
}

/** sameOriginWs is ws(s)://<host>/ws for the page's own origin. */
export function sameOriginWs(loc: LocationLike): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`;
}

/**
 * resolveRelayUrl turns the relayUrl of config.json into a websocket URL.
 * ws:// and wss:// are kept; http(s):// is mapped to ws(s)://; a path ("/ws") is
 * resolved against the page's origin; anything else (empty, not a string, other
 * schemes) falls back to same-origin /ws. On an https page ws:// is upgraded to
 * wss:// (browsers refuse an insecure websocket from a secure page).
 */
export function resolveRelayUrl(raw: unknown, loc: LocationLike): DashboardConfig {
  const fallback: DashboardConfig = { relayUrl: sameOriginWs(loc), source: 'same-origin' };
  if (typeof raw !== 'string') return fallback;
  const s = raw.trim();
  if (s === '') return fallback;
  if (s.startsWith('/') && !s.startsWith('//')) {
    return { relayUrl: `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}${s}`, source: 'config' };
  }
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return fallback;
  }
  switch (u.protocol) {
    case 'ws:':
    case 'wss:':
      break;
    case 'http:':
      u.protocol = 'ws:';
      break;
    case 'https:':
      u.protocol = 'wss:';
      break;
    default:
      return fallback;
  }
  if (loc.protocol === 'https:' && u.protocol === 'ws:') u.protocol = 'wss:';
  return { relayUrl: u.toString(), source: 'config' };
}

export type FetchLike = (input: string, init?: { cache?: 'no-store'; signal?: AbortSignal }) => Promise<{
  ok: boolean;
  status: number;
  json(): Promise<unknown>;
}>;

export interface LoadConfigOptions {
  /** per attempt */
  timeoutMs: number;
  /** the wait between failed attempts (the reconnect backoff by default) */
  backoff: BackoffOptions;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
}

const DEFAULT_LOAD_OPTIONS: LoadConfigOptions = {
  timeoutMs: 5000,
  backoff: DEFAULT_BACKOFF,
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  random: Math.random,
};

/** RETRY: this attempt failed in a way that may pass (network, timeout, 5xx, …). */
const RETRY = null;

async function fetchConfigOnce(fetchFn: FetchLike, loc: LocationLike, timeoutMs: number): Promise<DashboardConfig | null> {
  const ctl = typeof AbortController !== 'undefined' ? new AbortController() : undefined;
  const timer = ctl ? setTimeout(() => ctl.abort(), timeoutMs) : undefined;
  try {
    const res = await fetchFn('/config.json', { cache: 'no-store', signal: ctl?.signal });
    // the server says there is no config: the page and /ws come from one process
    if (res.status === 404 || res.status === 410) return resolveRelayUrl(undefined, loc);
    if (!res.ok) return RETRY;
    let body: unknown;
    try {
      body = await res.json();
    } catch (e) {
      // a 2xx that is not JSON (a static host answering every path with index.html)
      // is a server without a config, as good as a 404; a body cut off is not
      return e instanceof SyntaxError ? resolveRelayUrl(undefined, loc) : RETRY;
    }
    const o = body && typeof body === 'object' ? (body as { relayUrl?: unknown; machineTypes?: unknown }) : {};
    const cfg = resolveRelayUrl(o.relayUrl, loc);
    const types = parseMachineTypes(o.machineTypes);
    return types ? { ...cfg, machineTypes: types } : cfg;
  } catch {
    return RETRY; // network error or timeout
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/**
 * loadConfig fetches /config.json. A 404 (or a 2xx without a relayUrl) means
 * same-origin /ws (the local stack serves the page and /ws from one process). A
 * network error, a timeout or another non-2xx answer (5xx while the server starts) is
 * retried with backoff until it works: falling back to same-origin /ws then would
 * connect to the wrong server forever.
 */
export async function loadConfig(
  fetchFn: FetchLike,
  loc: LocationLike,
  opts: Partial<LoadConfigOptions> = {},
): Promise<DashboardConfig> {
  const o = { ...DEFAULT_LOAD_OPTIONS, ...opts };
  for (let attempt = 1; ; attempt++) {
    const cfg = await fetchConfigOnce(fetchFn, loc, o.timeoutMs);
    if (cfg) return cfg;
    await o.sleep(backoffDelay(attempt, o.random, o.backoff));
  }
}
