import { describe, expect, it } from 'vitest';
import { commitTime, parseFrame, parseHora, parseStoredAt, sampleTime, ulidTimeMs } from './protocol';
import { item, rec } from './testdata';

describe('time parsing', () => {
  it('parses hora as UTC', () => {
    expect(parseHora('2025-06-17 02:21:54')).toBe(Date.UTC(2025, 5, 17, 2, 21, 54));
    expect(parseHora('2025-06-17T02:21:54Z')).toBe(Date.UTC(2025, 5, 17, 2, 21, 54));
    expect(parseHora('yesterday')).toBeNaN();
    expect(parseHora(undefined)).toBeNaN();
  });

  it('parses stored_at with micro- and nanoseconds', () => {
    const base = Date.UTC(2026, 10, 23, 12, 0, 0);
    expect(parseStoredAt('2026-11-23T12:00:00.123456Z')).toBe(base + 123);
    expect(parseStoredAt('2026-11-23T12:00:00.123456789Z')).toBe(base + 123);
    expect(parseStoredAt('2026-11-23T12:00:00Z')).toBe(base);
    expect(parseStoredAt('2026-11-23T13:00:00.5+01:00')).toBe(base + 500);
    expect(parseStoredAt('')).toBeNaN();
    expect(parseStoredAt(null)).toBeNaN();
  });

  it('uses stored_at for the commit time and falls back to hora', () => {
    const it1 = item(Date.UTC(2026, 10, 23, 12, 0, 0, 250));
    expect(commitTime(it1)).toBe(Date.UTC(2026, 10, 23, 12, 0, 0, 250));
    const it2 = { ...it1, stored_at: '' };
    expect(commitTime(it2)).toBe(Date.UTC(2026, 10, 23, 12, 0, 0));
  });

  it("reads the millisecond time of the agent's ids (record.IDSource) and nothing else", () => {
    // record.IDSource.New(time.UnixMilli(1469922850259)) in Go
    expect(ulidTimeMs('01ARZ3NDEKEVCDVNNN5FZ3QR67')).toBe(1469922850259);
    expect(ulidTimeMs('1751425569118_4886')).toBeNaN();
    expect(ulidTimeMs('01ARZ3NDEKEVCDVNNN5FZ3QR6U')).toBe(1469922850259); // only the time part is read
    expect(ulidTimeMs('0IARZ3NDEKEVCDVNNN5FZ3QR67')).toBeNaN(); // I is not Crockford
    expect(ulidTimeMs(undefined)).toBeNaN();
  });

  it('takes the sample time from hora, placed within its second by the id or stored_at', () => {
    const h = Date.UTC(2026, 10, 23, 12, 0, 7);
    const base = item(h + 2_000); // committed 2 s after the sample was taken
    const at = (p: object, stored = base.stored_at) => sampleTime({ ...base, stored_at: stored, record: { ...base.record, hora: '2026-11-23 12:00:07', ...p } });
    expect(at({ id: ulidAt(h + 437) })).toBe(h + 437);
    // an id whose time is not in hora's second says nothing about the sample
    expect(at({ id: ulidAt(h + 5_000) })).toBe(h);
    // a live record committed within the sample's second
    expect(at({ id: 'x' }, new Date(h + 120).toISOString())).toBe(h + 120);
    // a replay: committed an hour later, the sample stays at hora
    expect(at({ id: 'x' }, new Date(h + 3_600_000).toISOString())).toBe(h);
    expect(at({ hora: '2026-11-23T12:00:07.250Z' })).toBe(h + 250);
    expect(at({ hora: 'garbage' })).toBe(h + 2_000);
  });
});

/** ulidAt makes an id as record.IDSource does for epoch ms `ms`. */
function ulidAt(ms: number): string {
  const c = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let s = '';
  for (let i = 0; i < 10; i++) {
    s = c[ms % 32] + s;
    ms = Math.floor(ms / 32);
  }
  return s + 'EVCDVNNN5FZ3QR67';
}

describe('parseFrame', () => {
  it('parses history and batch frames and ignores unknown fields', () => {
    const h = parseFrame(JSON.stringify({ type: 'history', items: [item(1000)], extra: 1 }));
    expect(h?.kind).toBe('history');
    expect(h?.items).toHaveLength(1);
    expect(h?.dropped).toBe(0);
    const b = parseFrame(JSON.stringify({ type: 'batch', items: [item(1000), item(2000)] }));
    expect(b?.kind).toBe('batch');
    expect(b?.items[1].record.vm).toBe('vm-1');
  });

  it('accepts an empty history', () => {
    expect(parseFrame('{"type":"history","items":[]}')).toEqual({ kind: 'history', items: [], dropped: 0 });
    expect(parseFrame('{"type":"history"}')).toEqual({ kind: 'history', items: [], dropped: 0 });
  });

  it('returns null for unknown types and non-JSON', () => {
    expect(parseFrame('{"type":"hello"}')).toBeNull();
    expect(parseFrame('not json')).toBeNull();
    expect(parseFrame('null')).toBeNull();
    expect(parseFrame('[1,2]')).toBeNull();
  });

  it('drops unusable items and counts them, normalizing route and commit_ms', () => {
    const good = item(1000);
    const noRoute = { ...item(2000), route: undefined, commit_ms: 'x' };
    const frame = {
      type: 'batch',
      items: [good, null, 7, { route: 'route1' }, { record: { ...rec(), porcentaje_cpu_uso: 'high' } }, noRoute],
    };
    const f = parseFrame(JSON.stringify(frame))!;
    expect(f.items).toHaveLength(2);
    expect(f.dropped).toBe(4);
    expect(f.items[1].route).toBe('');
    expect(f.items[1].commit_ms).toBeNaN();
  });

  it('keeps top_procesos only as well-formed entries and makes hora a string', () => {
    const good = { pid: 1, name: 'init', state: 'S', rss_mib: 12 };
    const items = [
      item(1000, { top_procesos: [null, good, { ...good, name: 42 }, { ...good, pid: '7' }, { ...good, state: null }, { ...good, rss_mib: NaN }, 'x'] as never }),
      item(2000, { top_procesos: { 0: good } as never, hora: 20260101 as never }),
      item(3000, { top_procesos: 'lots' as never, hora: null as never }),
      item(4000, { top_procesos: Array.from({ length: 100 }, (_, i) => ({ ...good, pid: i })) }),
    ];
    const f = parseFrame(JSON.stringify({ type: 'batch', items }))!;
    expect(f.items).toHaveLength(4);
    expect(f.items[0].record.top_procesos).toEqual([good]);
    expect(f.items[1].record.top_procesos).toBeUndefined();
    expect(f.items[1].record.hora).toBe('20260101');
    expect(f.items[2].record.top_procesos).toBeUndefined();
    expect(f.items[2].record.hora).toBe('');
    expect(f.items[3].record.top_procesos).toHaveLength(32);
    for (const it of f.items) {
      expect(typeof it.record.hora).toBe('string');
      for (const p of it.record.top_procesos ?? []) {
        expect(typeof p.name).toBe('string');
        expect(typeof p.state).toBe('string');
      }
    }
  });

  it('ignores the relay keepalive {"type":"ping"}', () => {
    expect(parseFrame('{"type":"ping"}')).toBeNull();
  });
});
