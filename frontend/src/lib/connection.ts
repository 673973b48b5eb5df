// The relay connection: one websocket, reconnected forever with exponential backoff and
// jitter. It knows nothing about React; the page subscribes to frames and state.
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
import { parseFrame, type ParsedFrame } from './protocol';

/**
 * connecting: first attempt in flight.
 * live: socket open.
 * reconnecting: the socket closed; a retry is scheduled (the first few failures).
 * offline: retries keep failing (or the browser says it is offline); still retrying,
 * at the backoff cap.
 */
export type ConnState = 'connecting' | 'live' | 'reconnecting' | 'offline';

/** The part of the browser WebSocket the connection uses. */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

export interface ConnectionDeps {
  createSocket(url: string): SocketLike;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
  random(): number;
}

export interface ConnectionOptions {
  backoff: BackoffOptions;
  /** consecutive failed attempts after which the state is "offline" instead of "reconnecting" */
  offlineAfter: number;
  /**
   * close and reconnect when an open socket has been silent this long (0 = never).
   * Browsers never surface websocket ping control frames, so the relay sends a text
   * frame {"type":"ping"} when it has sent nothing else for 25 s; any frame re-arms
   * this timer. It must stay well above 2 × 25 s: a ping skipped because data went out
   * early in one period can leave almost 50 s between frames.
   */
  idleTimeoutMs: number;
  /** a socket that stayed open this long resets the failure count (and so the backoff) */
  stableAfterMs: number;
  /**
   * after the relay closes this client as too slow (close code 1013, "try again
   * later"), the next attempt waits at least half of this and at most all of it, even
   * when the socket had been up for long: reconnecting at once would pull the whole
   * history again from a relay that just said it cannot keep up.
   */
  slowCloseDelayMs: number;
}

/** the close code the relay uses for a client whose queue overflowed */
export const CLOSE_TRY_AGAIN_LATER = 1013;

export const DEFAULT_CONNECTION_OPTIONS: ConnectionOptions = {
  backoff: DEFAULT_BACKOFF,
  offlineAfter: 3,
  idleTimeoutMs: 75_000,
  stableAfterMs: 30_000,
  slowCloseDelayMs: 10_000,
};

export interface ConnectionInfo {
  state: ConnState;
  /** consecutive failed attempts; reset once a socket has stayed open stableAfterMs */
  failures: number;
  /** when the next attempt is due (deps.now() clock), or null */
  retryAt: number | null;
  /** how many times the socket has opened */
  opens: number;
}

export interface ConnectionHandlers {
  onFrame(frame: ParsedFrame, receivedAt: number): void;
  onState(info: ConnectionInfo): void;
}

export class RelayConnection {
  private sock: SocketLike | null = null;
  private retryTimer: unknown = null;
  private idleTimer: unknown = null;
  private stableTimer: unknown = null;
  private stopped = true;
  private info: ConnectionInfo = { state: 'connecting', failures: 0, retryAt: null, opens: 0 };
  private readonly opts: ConnectionOptions;

  constructor(
    private readonly url: string,
    private readonly handlers: ConnectionHandlers,
    private readonly deps: ConnectionDeps,
    opts: Partial<ConnectionOptions> = {},
  ) {
    this.opts = { ...DEFAULT_CONNECTION_OPTIONS, ...opts };
  }

  get state(): ConnectionInfo {
    return { ...this.info };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.set({ state: 'connecting', retryAt: null });
    this.open();
  }

  stop(): void {
    this.stopped = true;
    this.clearRetry();
    this.clearIdle();
    this.clearStable();
    const s = this.sock;
    this.sock = null;
    if (s) {
      detach(s);
      try {
        s.close(1000, 'page closed');
      } catch {
        /* already closed */
      }
    }
  }

  /** retryNow skips the pending backoff wait (e.g. when the browser comes back online). */
  retryNow(): void {
    if (this.stopped || this.sock) return;
    this.clearRetry();
    this.open();
  }

  /** markOffline is for the browser's "offline" event: the state says so at once. */
  markOffline(): void {
    if (this.stopped) return;
    if (this.info.state !== 'live') this.set({ state: 'offline' });
  }

  private set(p: Partial<ConnectionInfo>): void {
    this.info = { ...this.info, ...p };
    this.handlers.onState({ ...this.info });
  }

  private open(): void {
    let s: SocketLike;
    try {
      s = this.deps.createSocket(this.url);
    } catch {
      // e.g. a malformed URL: treat it as a failed attempt and keep trying.
      this.failed(0);
      return;
    }
    this.sock = s;
    s.onopen = () => {
      if (this.sock !== s) return;
      this.set({ state: 'live', retryAt: null, opens: this.info.opens + 1 });
      this.armIdle();
      // The backoff starts over only once the socket has proved stable: a relay that
      // accepts and then drops (or closes us as slow) right away must not be hammered
      // every 0.5 s, each time sending its whole history.
      this.clearStable();
      this.stableTimer = this.deps.setTimeout(() => {
        this.stableTimer = null;
        if (this.sock === s && this.info.failures !== 0) this.set({ failures: 0 });
      }, Math.max(0, this.opts.stableAfterMs));
    };
    s.onmessage = (ev) => {
      if (this.sock !== s) return;
      // Every frame proves the socket alive, the relay's {"type":"ping"} keepalive
      // included; parseFrame ignores that one (it carries no data).
      this.armIdle();
      if (typeof ev.data !== 'string') return;
      const f = parseFrame(ev.data);
      if (f) this.handlers.onFrame(f, this.deps.now());
    };
    const onGone = (ev: unknown) => {
      if (this.sock !== s) return;
      detach(s);
      this.sock = null;
      this.clearIdle();
      this.clearStable();
      try {
        s.close();
      } catch {
        /* ignore */
      }
      const code = ev && typeof ev === 'object' ? (ev as { code?: unknown }).code : undefined;
      this.failed(code === CLOSE_TRY_AGAIN_LATER ? this.opts.slowCloseDelayMs : 0);
    };
    s.onclose = onGone;
    s.onerror = onGone;
  }

  /** failed schedules the next attempt; minCeilingMs > 0 makes it wait at least half of that. */
  private failed(minCeilingMs: number): void {
    if (this.stopped) return;
    const failures = this.info.failures + 1;
    const r = this.deps.random();
    let delay = backoffDelay(failures, () => r, this.opts.backoff);
    if (minCeilingMs > 0) {
      const floor = backoffDelay(1, () => r, { baseMs: minCeilingMs, capMs: minCeilingMs });
      delay = Math.max(delay, floor);
    }
    const retryAt = this.deps.now() + delay;
    this.clearRetry();
    this.retryTimer = this.deps.setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.open();
    }, delay);
    this.set({
      state: failures >= this.opts.offlineAfter ? 'offline' : 'reconnecting',
      failures,
      retryAt,
    });
  }

  private armIdle(): void {
    if (this.opts.idleTimeoutMs <= 0) return;
    this.clearIdle();
    const s = this.sock;
    this.idleTimer = this.deps.setTimeout(() => {
      this.idleTimer = null;
      if (this.sock === s && s) s.onclose?.({ reason: 'idle' });
    }, this.opts.idleTimeoutMs);
  }

  private clearIdle(): void {
    if (this.idleTimer !== null) this.deps.clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private clearStable(): void {
    if (this.stableTimer !== null) this.deps.clearTimeout(this.stableTimer);
    this.stableTimer = null;
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.deps.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
}

function detach(s: SocketLike): void {
  s.onopen = null;
  s.onmessage = null;
  s.onclose = null;
  s.onerror = null;
}

/** browserDeps wires the connection to the real WebSocket and timers. */
export function browserDeps(): ConnectionDeps {
  return {
    createSocket: (url) => new WebSocket(url) as unknown as SocketLike,
    setTimeout: (fn, ms) => window.setTimeout(fn, ms),
    clearTimeout: (h) => window.clearTimeout(h as number),
    now: () => Date.now(),
    random: () => Math.random(),
  };
}
