// Parsing of relay frames. The relay is trusted to send the contract, but the page must
// not fall over on a frame it does not understand: unknown frame types and unknown
// fields are ignored, items whose record is not usable are dropped and counted.
import type { RelayItem, TopProcess, VmRecord } from './types';

export interface ParsedFrame {
  kind: 'history' | 'batch';
  items: RelayItem[];
  /** items dropped because they were not usable (not an object, no record, NaN numbers) */
  dropped: number;
}

const HORA_RE = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/;

/** parseHora reads "YYYY-MM-DD HH:MM:SS" (UTC) or RFC 3339 into epoch ms (NaN if unparsable). */
export function parseHora(s: unknown): number {
  if (typeof s !== 'string') return NaN;
  const m = HORA_RE.exec(s.trim());
  if (!m) return NaN;
  if (s.includes('T')) {
    const t = Date.parse(s);
    if (!Number.isNaN(t)) return t;
  }
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

/** parseStoredAt reads the RFC 3339 stored_at (any number of fraction digits) into epoch ms. */
export function parseStoredAt(s: unknown): number {
  if (typeof s !== 'string' || s === '') return NaN;
  // Date.parse handles up to millisecond precision reliably everywhere; cut the
  // fraction to 3 digits so microseconds/nanoseconds never make it return NaN.
  const cut = s.replace(/(\.\d{3})\d+/, '$1');
  return Date.parse(cut);
}

/** commitTime is when the record was committed, in epoch ms: stored_at, else hora. */
export function commitTime(it: RelayItem): number {
  const t = parseStoredAt(it.stored_at);
  return Number.isNaN(t) ? parseHora(it.record.hora) : t;
}

/** The alphabet of the agent's ULID-style ids (Crockford base32). */
export const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * ulidTimeMs is the millisecond time in a ULID-style id (the agent's ids: 26 Crockford
 * base32 characters, the first 10 the time), or NaN for any other id.
 */
export function ulidTimeMs(id: unknown): number {
  if (typeof id !== 'string' || id.length !== 26) return NaN;
  let ms = 0;
  for (let i = 0; i < 10; i++) {
    const v = CROCKFORD.indexOf(id[i]);
    if (v < 0) return NaN;
    ms = ms * 32 + v;
  }
  return ms;
}

/**
 * sampleTime is when the VM took the sample, in epoch ms: its hora. hora has whole
 * seconds and an agent samples up to 100 times a second, so the sample is placed within
 * its second by the millisecond its id carries (the agent's ids are made from the same
 * clock reading as hora), else by stored_at when that falls in the same second (a live
 * record), else at the start of the second. Without a usable hora: the commit time.
 * Replays (phase 2 sends samples collected earlier) are thus drawn when they were taken.
 */
export function sampleTime(it: RelayItem): number {
  const h = parseHora(it.record.hora);
  if (Number.isNaN(h)) return commitTime(it);
  if (h % 1000 !== 0) return h; // RFC 3339 hora with a fraction: already precise
  const idMs = ulidTimeMs(it.record.id);
  if (idMs >= h && idMs < h + 1000) return idMs;
  const s = parseStoredAt(it.stored_at);
  if (s >= h && s < h + 1000) return s;
  return h;
}

const NUM_FIELDS: (keyof VmRecord)[] = [
  'porcentaje_ram',
  'porcentaje_cpu_uso',
  'procesos_corriendo',
  'total_procesos',
  'procesos_durmiendo',
  'procesos_zombie',
  'procesos_parados',
];

function usable(x: unknown): x is RelayItem {
  if (!x || typeof x !== 'object') return false;
  const rec = (x as { record?: unknown }).record;
  if (!rec || typeof rec !== 'object') return false;
  const r = rec as Record<string, unknown>;
  for (const f of NUM_FIELDS) {
    if (typeof r[f] !== 'number' || !Number.isFinite(r[f] as number)) return false;
  }
  return true;
}

/** the record contract allows at most this many top_procesos entries */
export const MAX_TOP_PROCESSES = 32;

function isTopProcess(x: unknown): x is TopProcess {
  if (!x || typeof x !== 'object') return false;
  const p = x as Record<string, unknown>;
  return (
    typeof p.pid === 'number' &&
    Number.isFinite(p.pid) &&
    typeof p.name === 'string' &&
    typeof p.state === 'string' &&
    typeof p.rss_mib === 'number' &&
    Number.isFinite(p.rss_mib)
  );
}

/**
 * sanitizeRecord makes the fields the page renders as text safe to render: hora is
 * always a string, source a string or absent, and top_procesos is kept only as an array of well-formed entries
 * (bad entries are dropped). A `null` entry or an object where a name should be would
 * otherwise throw while React renders and take the whole page down.
 */
function sanitizeRecord(r: VmRecord): void {
  const raw = r as unknown as Record<string, unknown>;
  if (raw.source !== undefined && typeof raw.source !== 'string') delete r.source;
  if (typeof raw.hora !== 'string') r.hora = raw.hora === undefined || raw.hora === null ? '' : String(raw.hora);
  if (raw.top_procesos !== undefined) {
    if (Array.isArray(raw.top_procesos)) r.top_procesos = raw.top_procesos.filter(isTopProcess).slice(0, MAX_TOP_PROCESSES);
    else delete r.top_procesos;
  }
}

/** parseFrame parses one text frame; null for anything that is not a history/batch frame. */
export function parseFrame(text: string): ParsedFrame | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object') return null;
  const o = v as { type?: unknown; items?: unknown };
  if (o.type !== 'history' && o.type !== 'batch') return null;
  const raw = Array.isArray(o.items) ? o.items : [];
  const items: RelayItem[] = [];
  for (const x of raw) {
    if (usable(x)) {
      const it = x as RelayItem;
      if (typeof it.route !== 'string') it.route = '';
      if (typeof it.commit_ms !== 'number' || !Number.isFinite(it.commit_ms)) it.commit_ms = NaN;
      sanitizeRecord(it.record);
      items.push(it);
    }
  }
  return { kind: o.type, items, dropped: raw.length - items.length };
}
