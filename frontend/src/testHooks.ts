// Hooks the browser test reads (window.__vmpulse). They cost nothing and also help a
// person debugging in the console.

export interface VmpulseHooks {
  /** performance.now() when a chart first drew a point (ms since navigation start) */
  firstPointMs: number | null;
  state: string;
  opens: number;
  latestId: string;
  accepted: number;
  duplicates: number;
  points: { cpu: number; ram: number };
  routes: Record<string, number>;
  flushes: number;
  /** the VM names the page holds */
  vms: string[];
  /** the ids the page holds that were committed in [fromMs, toMs) (stored_at, epoch ms) */
  committedBetween?: (fromMs: number, toMs: number) => string[];
  /** performance.now() of the first config load, socket open and frame (ms) */
  marks: { start?: number; config?: number; open?: number; frame?: number };
}

declare global {
  interface Window {
    __vmpulse?: VmpulseHooks;
  }
}

export function hooks(): VmpulseHooks {
  if (!window.__vmpulse) {
    window.__vmpulse = {
      firstPointMs: null,
      state: 'connecting',
      opens: 0,
      latestId: '',
      accepted: 0,
      duplicates: 0,
      points: { cpu: 0, ram: 0 },
      routes: {},
      flushes: 0,
      vms: [],
      marks: {},
    };
  }
  return window.__vmpulse;
}

export function markFirstPoint(): void {
  const h = hooks();
  if (h.firstPointMs === null) h.firstPointMs = performance.now();
}

/** mark records the first time a milestone happened. */
export function mark(name: keyof VmpulseHooks['marks']): void {
  const m = hooks().marks;
  if (m[name] === undefined) m[name] = performance.now();
}
