import { beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_CONNECTION_OPTIONS,
  RelayConnection,
  type ConnectionDeps,
  type ConnectionInfo,
  type SocketLike,
} from './connection';
import type { ParsedFrame } from './protocol';
import { item } from './testdata';

class FakeSocket implements SocketLike {
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  closed = false;
  constructor(readonly url: string) {}
  close() {
    this.closed = true;
  }
  // server side
  open() {
    this.onopen?.({});
  }
  send(o: unknown) {
    this.onmessage?.({ data: typeof o === 'string' ? o : JSON.stringify(o) });
  }
  drop(code = 1006) {
    this.onclose?.({ code });
  }
}

/** A manual clock: timers run only when advance() passes them. */
class Harness implements ConnectionDeps {
  t = 0;
  timers: { at: number; fn: () => void; id: number }[] = [];
  sockets: FakeSocket[] = [];
  nextId = 1;
  rand = 0.5;
  failCreate = false;
  createSocket(url: string) {
    if (this.failCreate) throw new SyntaxError('bad url');
    const s = new FakeSocket(url);
    this.sockets.push(s);
    return s;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = this.nextId++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown) {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  now() {
    return this.t;
  }
  random() {
    return this.rand;
  }
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
  get last() {
    return this.sockets[this.sockets.length - 1];
  }
}

let h: Harness;
let states: ConnectionInfo[];
let frames: ParsedFrame[];
let conn: RelayConnection;

function make(opts = {}) {
  conn = new RelayConnection(
    'ws://relay/ws',
    { onFrame: (f) => frames.push(f), onState: (i) => states.push(i) },
    h,
    { backoff: { baseMs: 500, capMs: 10_000 }, offlineAfter: 3, idleTimeoutMs: 0, ...opts },
  );
}

beforeEach(() => {
  h = new Harness();
  states = [];
  frames = [];
  make();
});

describe('RelayConnection', () => {
  it('connects, goes live on open and delivers parsed frames', () => {
    conn.start();
    expect(h.sockets).toHaveLength(1);
    expect(h.last.url).toBe('ws://relay/ws');
    expect(conn.state.state).toBe('connecting');
    h.last.open();
    expect(conn.state).toMatchObject({ state: 'live', opens: 1, failures: 0 });
    h.last.send({ type: 'history', items: [item(1000)] });
    h.last.send({ type: 'hello' }); // unknown: ignored
    h.last.send('garbage');
    h.last.send({ type: 'batch', items: [item(2000), item(3000)] });
    expect(frames.map((f) => [f.kind, f.items.length])).toEqual([
      ['history', 1],
      ['batch', 2],
    ]);
  });

  it('reconnects with growing backoff, then reports offline, and recovers', () => {
    conn.start();
    h.last.open();
    h.last.send({ type: 'history', items: [] });
    h.last.drop();
    expect(conn.state).toMatchObject({ state: 'reconnecting', failures: 1, retryAt: 375 }); // 500·(0.5+0.5·0.5)
    expect(h.sockets).toHaveLength(1);
    h.advance(374);
    expect(h.sockets).toHaveLength(1);
    h.advance(1);
    expect(h.sockets).toHaveLength(2);
    // the retry fails without ever opening
    h.last.drop();
    expect(conn.state).toMatchObject({ state: 'reconnecting', failures: 2 });
    h.advance(750);
    expect(h.sockets).toHaveLength(3);
    h.last.onerror?.({});
    expect(conn.state).toMatchObject({ state: 'offline', failures: 3 });
    h.advance(1500);
    expect(h.sockets).toHaveLength(4);
    // the relay is back: a socket that stays open 30 s resets the failure count
    h.last.open();
    expect(conn.state.state).toBe('live');
    expect(conn.state.opens).toBe(2);
    h.last.send({ type: 'history', items: [item(5)] });
    expect(frames.at(-1)?.kind).toBe('history');
    h.advance(30_000);
    expect(conn.state.failures).toBe(0);
    // the next drop starts the backoff from the beginning again
    h.last.drop();
    expect(conn.state).toMatchObject({ state: 'reconnecting', failures: 1 });
  });

  it('caps the backoff at the ceiling', () => {
    h.rand = 1;
    conn.start();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const before = h.t;
      h.last.drop();
      const at = conn.state.retryAt!;
      delays.push(at - before);
      h.advance(at - before);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  });

  it('does not reset the backoff when a socket opens but closes before any frame', () => {
    conn.start();
    for (let i = 0; i < 4; i++) {
      h.last.open();
      h.last.drop();
      h.advance(conn.state.retryAt! - h.t);
    }
    expect(conn.state.failures).toBe(4);
  });

  it('ignores events from a socket it already gave up on', () => {
    conn.start();
    const first = h.last;
    first.drop();
    h.advance(10_000);
    const second = h.last;
    expect(second).not.toBe(first);
    first.send({ type: 'batch', items: [item(1)] });
    first.open();
    expect(frames).toHaveLength(0);
    expect(conn.state.state).toBe('reconnecting');
  });

  it('stop closes the socket and cancels pending retries', () => {
    conn.start();
    h.last.open();
    conn.stop();
    expect(h.last.closed).toBe(true);
    conn.start();
    h.last.drop();
    conn.stop();
    h.advance(60_000);
    expect(h.sockets).toHaveLength(2);
  });

  it('treats a socket that cannot be created as a failed attempt', () => {
    h.failCreate = true;
    conn.start();
    expect(conn.state).toMatchObject({ state: 'reconnecting', failures: 1 });
    h.failCreate = false;
    h.advance(10_000);
    expect(h.sockets).toHaveLength(1);
  });

  it('closes and reconnects a socket that went silent', () => {
    make({ idleTimeoutMs: 30_000 });
    conn.start();
    h.last.open();
    h.advance(20_000);
    h.last.send({ type: 'batch', items: [item(1)] }); // re-arms the watchdog
    h.advance(29_000);
    expect(h.sockets).toHaveLength(1);
    h.advance(1_000);
    expect(h.sockets[0].closed).toBe(true);
    expect(conn.state.state).toBe('reconnecting');
    h.advance(1_000);
    expect(h.sockets).toHaveLength(2);
  });

  it('keeps a quiet relay that only sends {"type":"ping"} connected; pings are not data', () => {
    make({ idleTimeoutMs: DEFAULT_CONNECTION_OPTIONS.idleTimeoutMs });
    // comfortably above the relay's 25 s ping period, even when a ping is skipped
    expect(DEFAULT_CONNECTION_OPTIONS.idleTimeoutMs).toBeGreaterThanOrEqual(70_000);
    expect(DEFAULT_CONNECTION_OPTIONS.idleTimeoutMs).toBeLessThanOrEqual(90_000);
    conn.start();
    h.last.drop();
    h.advance(10_000);
    h.last.drop();
    h.advance(10_000);
    expect(conn.state.failures).toBe(2);
    h.last.open();
    h.last.send({ type: 'history', items: [] });
    const got = frames.length;
    // ten minutes of nothing but pings, every 25 s
    for (let i = 0; i < 24; i++) {
      h.advance(25_000);
      h.last.send({ type: 'ping' });
      if (i === 0) expect(conn.state.failures).toBe(2); // a ping 25 s after open does not count as a good socket yet
    }
    expect(h.sockets).toHaveLength(3);
    expect(conn.state.state).toBe('live');
    expect(frames).toHaveLength(got); // pings never reach the store
    // a ping skipped because data went out early in its period: ~50 s of silence is fine
    h.advance(49_000);
    h.last.send({ type: 'ping' });
    expect(h.sockets).toHaveLength(3);
    // a really dead socket is still noticed
    h.advance(DEFAULT_CONNECTION_OPTIONS.idleTimeoutMs);
    expect(h.sockets[2].closed).toBe(true);
    expect(conn.state.state).toBe('reconnecting');
  });

  it('resets the backoff only after the socket stayed open 30 s, not on the first frame', () => {
    conn.start();
    for (let i = 0; i < 3; i++) {
      h.last.drop();
      h.advance(conn.state.retryAt! - h.t);
    }
    expect(conn.state.failures).toBe(3);
    // a relay that accepts, sends its history and drops us again after a few seconds
    for (let i = 0; i < 3; i++) {
      h.last.open();
      h.last.send({ type: 'history', items: [item(1)] });
      h.last.send({ type: 'batch', items: [item(2)] });
      h.advance(5_000);
      h.last.drop();
      h.advance(conn.state.retryAt! - h.t);
    }
    expect(conn.state.failures).toBe(6);
    h.last.open();
    h.advance(29_999);
    expect(conn.state.failures).toBe(6);
    h.advance(1);
    expect(conn.state.failures).toBe(0);
    h.last.drop();
    expect(conn.state).toMatchObject({ state: 'reconnecting', failures: 1 });
  });

  it('waits at least 5 s after the relay closed it as too slow (1013), even after a long session', () => {
    h.rand = 0;
    conn.start();
    h.last.open();
    h.last.send({ type: 'history', items: [item(1)] });
    h.advance(120_000);
    expect(conn.state.failures).toBe(0);
    const at = h.t;
    h.last.drop(1013);
    expect(conn.state.retryAt! - at).toBeGreaterThanOrEqual(5_000);
    h.advance(4_999);
    expect(h.sockets).toHaveLength(1);
    h.advance(1);
    expect(h.sockets).toHaveLength(2);
    // a plain drop after a long session still comes back fast
    h.last.open();
    h.advance(30_000);
    h.last.drop(1006);
    expect(conn.state.retryAt! - h.t).toBe(250);
  });

  it('retryNow skips the wait; markOffline reports the browser going offline', () => {
    conn.start();
    h.last.drop();
    conn.markOffline();
    expect(conn.state.state).toBe('offline');
    conn.retryNow();
    expect(h.sockets).toHaveLength(2);
    h.advance(60_000);
    expect(h.sockets).toHaveLength(2); // the cancelled timer did not fire a second attempt
  });
});
