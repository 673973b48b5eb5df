// useRelay: the relay connection of the page. Reads the run-time config, opens the
// websocket (reconnecting forever, see lib/connection.ts) and feeds every frame straight
// into the store, outside React; the page only re-renders for connection state changes.
import { useEffect, useRef, useState } from 'react';
import type { DashboardConfig } from '../lib/config';
import { browserDeps, RelayConnection, type ConnectionInfo } from '../lib/connection';
import type { ParsedFrame } from '../lib/protocol';
import type { DashboardStore } from '../lib/store';
import { hooks, mark } from '../testHooks';

export interface RelayState {
  conn: ConnectionInfo;
  /** null until /config.json was read */
  config: DashboardConfig | null;
}

/**
 * useRelay connects to the relay named by config. afterIngest runs after each frame went
 * into the store; `first` is true for the frame that brought the first data.
 */
export function useRelay(
  config: Promise<DashboardConfig>,
  store: DashboardStore,
  afterIngest: (frame: ParsedFrame, first: boolean) => void,
): RelayState {
  const [conn, setConn] = useState<ConnectionInfo>({ state: 'connecting', failures: 0, retryAt: null, opens: 0 });
  const [cfg, setCfg] = useState<DashboardConfig | null>(null);
  const after = useRef(afterIngest);
  after.current = afterIngest;

  useEffect(() => {
    let stopped = false;
    let c: RelayConnection | null = null;
    const onOnline = () => c?.retryNow();
    const onOffline = () => c?.markOffline();
    window.addEventListener('online', onOnline);
    window.addEventListener('offline', onOffline);
    hooks().committedBetween = (fromMs, toMs) => store.committedBetween(fromMs, toMs);
    void config.then((resolved) => {
      if (stopped) return;
      mark('config');
      setCfg(resolved);
      c = new RelayConnection(
        resolved.relayUrl,
        {
          onFrame: (f, at) => {
            mark('frame');
            const first = store.accepted === 0;
            store.ingest(f, at);
            after.current(f, first && store.accepted > 0);
          },
          onState: (info) => {
            const h = hooks();
            h.state = info.state;
            h.opens = info.opens;
            if (info.state === 'live') mark('open');
            setConn(info);
          },
        },
        browserDeps(),
      );
      c.start();
    });
    return () => {
      stopped = true;
      c?.stop();
      window.removeEventListener('online', onOnline);
      window.removeEventListener('offline', onOffline);
    };
  }, [store, config]);

  return { conn, config: cfg };
}
