// Run-time configuration: the relay URL comes from /config.json served next to the
// page ({"relayUrl": "wss://..."}), never from the bundle. Empty or missing means the
// same origin's /ws.

export interface LocationLike {
  protocol: string; // "http:" | "https:"
  host: string; // host[:port]
}

export interface DashboardConfig {
  relayUrl: string;
  /** where the URL came from, shown in the footer */
  source: 'config' | 'same-origin';
}

/** sameOriginWs is ws(s)://<host>/ws for the page's own origin. */
export function sameOriginWs(loc: LocationLike): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`;
}

/**
 * resolveRelayUrl turns the relayUrl of config.json into a websocket URL.
 * ws:// and wss:// are kept; http(s):// is mapped to ws(s)://; a path ("/ws") is
 * resolved against the page's origin; anything else (empty, not a string, other
 * schemes) falls back to same-origin /ws.
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
  return { relayUrl: u.toString(), source: 'config' };
}

export type FetchLike = (input: string, init?: { cache?: 'no-store'; signal?: AbortSignal }) => Promise<{
  ok: boolean;
  json(): Promise<unknown>;
}>;

/**
 * loadConfig fetches /config.json; a missing file, a non-2xx answer, bad JSON or a
 * network error all mean same-origin /ws (the local stack serves the page and /ws from
 * one process).
 */
export async function loadConfig(
  fetchFn: FetchLike,
  loc: LocationLike,
  timeoutMs = 5000,
): Promise<DashboardConfig> {
  const ctl = typeof AbortController !== 'undefined' ? new AbortController() : undefined;
  const timer = ctl ? setTimeout(() => ctl.abort(), timeoutMs) : undefined;
  try {
    const res = await fetchFn('/config.json', { cache: 'no-store', signal: ctl?.signal });
    if (!res.ok) return resolveRelayUrl(undefined, loc);
    const body = await res.json();
    const raw = body && typeof body === 'object' ? (body as { relayUrl?: unknown }).relayUrl : undefined;
    return resolveRelayUrl(raw, loc);
  } catch {
    return resolveRelayUrl(undefined, loc);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
