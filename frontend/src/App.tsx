// The dashboard. Frames from the relay go straight into the DashboardStore (outside
// React); a 250 ms tick turns the store into views: charts and current values four
// times per second, the heavier aggregates (percentiles, sparklines, route race) once
// per second. So 100 records/s cost four renders per second, not a hundred.
import { useEffect, useMemo, useRef, useState } from 'react';
import { ErrorBoundary, PanelError } from './components/ErrorBoundary';
import { CapacityPanel, ConnPill, MetricChart, ProcessPanel, RoutePanel } from './components/Panels';
import { formatAgo, windowLabel } from './lib/format';
import type { DashboardConfig } from './lib/config';
import { browserDeps, RelayConnection, type ConnectionInfo } from './lib/connection';
import { LANG_KEY, translator, type Lang } from './lib/i18n';
import { DashboardStore, WINDOWS_S } from './lib/store';
import { capacityView, chartView, processView, routeView, type CapacityView, type ChartView, type ProcessView, type RouteRow } from './lib/views';
import type { VmRecord } from './lib/types';
import { hooks, mark } from './testHooks';

const TICK_MS = 250;
const SLOW_MS = 1000;

interface LiveView {
  chart: ChartView;
  latest: VmRecord | null;
  latestT: number;
  vms: string[];
  vm: string;
}

interface SlowView {
  procs: ProcessView | null;
  capacity: CapacityView | null;
  routes: RouteRow[];
  nowS: number;
  clientNow: number;
  accepted: number;
  duplicates: number;
  invalid: number;
  limited: number;
}

function safeSet(key: string, v: string): void {
  try {
    localStorage.setItem(key, v);
  } catch {
    /* private mode */
  }
}

const EMPTY_CHART: ChartView = {
  t: new Float64Array(0),
  cpu: new Float32Array(0),
  ram: new Float32Array(0),
  cpuAvg: new Float32Array(0),
  ramAvg: new Float32Array(0),
  lastSecondSamples: 0,
  fromT: 0,
  toT: 1,
  points: 0,
};

export function App({ config, initialLang }: { config: Promise<DashboardConfig>; initialLang: Lang }) {
  const store = useMemo(() => new DashboardStore(), []);
  const [lang, setLang] = useState<Lang>(initialLang);
  const t = useMemo(() => translator(lang), [lang]);
  const [windowS, setWindowS] = useState<number>(WINDOWS_S[0]);
  const [vmPick, setVmPick] = useState<string | null>(null);
  const [conn, setConn] = useState<ConnectionInfo>({ state: 'connecting', failures: 0, retryAt: null, opens: 0 });
  const [relayUrl, setRelayUrl] = useState('');
  const [live, setLive] = useState<LiveView>({ chart: EMPTY_CHART, latest: null, latestT: NaN, vms: [], vm: '' });
  const [slow, setSlow] = useState<SlowView | null>(null);
  /** the flush (set by the tick effect below); callable to flush at once */
  const tickRef = useRef<() => void>(() => {});

  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = `vmpulse · ${t(`state_${conn.state}`)}`;
  }, [lang, t, conn.state]);

  // Connection: config first, then the websocket, reconnecting forever.
  useEffect(() => {
    let stopped = false;
    let c: RelayConnection | null = null;
    const onOnline = () => c?.retryNow();
    const onOffline = () => c?.markOffline();
    window.addEventListener('online', onOnline);
    window.addEventListener('offline', onOffline);
    void config.then((cfg) => {
      if (stopped) return;
      mark('config');
      setRelayUrl(cfg.relayUrl);
      c = new RelayConnection(
        cfg.relayUrl,
        {
          onFrame: (f, at) => {
            mark('frame');
            const first = store.accepted === 0;
            store.ingest(f, at);
            // the first data, and the history after a reconnect, are drawn at once
            // instead of at the next tick
            if ((first || f.kind === 'history') && f.items.length > 0) requestAnimationFrame(() => tickRef.current());
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

  // The flush tick: store → views.
  const params = useRef({ windowS, vmPick });
  params.current = { windowS, vmPick };
  useEffect(() => {
    let lastVersion = -1;
    let lastKey = '';
    let lastSlow = 0;
    let slowHadData = false;
    const tick = () => {
      const p = params.current;
      const vms = store.vmNames();
      const vm = p.vmPick !== null && store.vms.has(p.vmPick) ? p.vmPick : (vms[0] ?? '');
      const key = `${vm}\u0000${p.windowS}`;
      const now = Date.now();
      const keyChanged = key !== lastKey;
      lastKey = key;
      const h = hooks();
      if (store.version !== lastVersion || keyChanged) {
        lastVersion = store.version;
        const chart = chartView(store, vm, p.windowS);
        const st = store.vms.get(vm);
        setLive({ chart, latest: st?.latest ?? null, latestT: st?.latestT ?? NaN, vms, vm });
        h.points = { cpu: chart.points, ram: chart.points };
        h.latestId = store.latestId;
        h.accepted = store.accepted;
        h.duplicates = store.duplicates;
        h.flushes++;
      }
      const hasData = store.accepted > 0;
      if (keyChanged || now - lastSlow >= SLOW_MS || (hasData && !slowHadData)) {
        lastSlow = now;
        slowHadData = hasData;
        const nowS = store.serverNowS(now);
        const routes = routeView(store, nowS, p.windowS);
        h.routes = Object.fromEntries(routes.map((r) => [r.route, r.total]));
        setSlow({
          procs: processView(store, vm, p.windowS),
          capacity: hasData ? capacityView(store, vm, p.windowS) : null,
          routes,
          nowS,
          clientNow: now,
          accepted: store.accepted,
          duplicates: store.duplicates,
          invalid: store.invalid,
          limited: store.limited,
        });
      }
    };
    tickRef.current = tick;
    tick();
    const id = window.setInterval(tick, TICK_MS);
    return () => window.clearInterval(id);
  }, [store]);
  useEffect(() => tickRef.current(), [windowS, vmPick]);

  const toggleLang = () => {
    const next: Lang = lang === 'es' ? 'en' : 'es';
    safeSet(LANG_KEY, next);
    setLang(next);
  };

  const vmName = (v: string) => (v === '' ? t('vmUnnamed') : v);
  const panelError = (e: Error) => <PanelError error={e} t={t} />;
  const ago = slow ? slow.nowS - live.latestT : NaN;

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden="true">
            ∿
          </span>
          <div>
            <h1>{t('title')}</h1>
            <p className="muted small tagline">{t('subtitle')}</p>
          </div>
        </div>
        <div className="controls">
          <ConnPill info={conn} t={t} now={slow?.clientNow ?? Date.now()} />
          {live.vms.length > 1 && (
            <label className="control">
              <span className="muted small">{t('vm')}</span>
              <select
                data-testid="vm-select"
                aria-label={t('vmSelect')}
                value={live.vm}
                onChange={(e) => setVmPick(e.target.value)}
              >
                {live.vms.map((v) => (
                  <option key={v} value={v}>
                    {vmName(v)}
                  </option>
                ))}
              </select>
            </label>
          )}
          {live.vms.length === 1 && (
            <span className="control vm-one" data-testid="vm-name">
              <span className="muted small">{t('vm')}</span> <strong>{vmName(live.vm)}</strong>
            </span>
          )}
          <div className="control seg" role="group" aria-label={t('window')}>
            <span className="muted small">{t('window')}</span>
            {WINDOWS_S.map((w) => (
              <button
                key={w}
                type="button"
                aria-pressed={windowS === w}
                className={windowS === w ? 'on' : ''}
                data-testid={`window-${w}`}
                onClick={() => setWindowS(w)}
              >
                {windowLabel(w)}
              </button>
            ))}
          </div>
          <button type="button" className="lang" onClick={toggleLang} aria-label={t('language')} data-testid="lang-toggle">
            <span className={lang === 'es' ? 'on' : ''}>ES</span>
            <span className={lang === 'en' ? 'on' : ''}>EN</span>
          </button>
        </div>
      </header>

      <main className="grid">
        <ErrorBoundary fallback={panelError} resetKey={slow?.clientNow}>
          <MetricChart kind="cpu" chart={live.chart} latest={live.latest} lang={lang} t={t} />
        </ErrorBoundary>
        <ErrorBoundary fallback={panelError} resetKey={slow?.clientNow}>
          <MetricChart kind="ram" chart={live.chart} latest={live.latest} lang={lang} t={t} />
        </ErrorBoundary>
        <ErrorBoundary fallback={panelError} resetKey={slow?.clientNow}>
          <CapacityPanel cap={slow?.capacity ?? null} lang={lang} t={t} />
        </ErrorBoundary>
        <ErrorBoundary fallback={panelError} resetKey={slow?.clientNow}>
          <ProcessPanel pv={slow?.procs ?? null} lang={lang} t={t} />
        </ErrorBoundary>
        <ErrorBoundary fallback={panelError} resetKey={slow?.clientNow}>
          <RoutePanel rows={slow?.routes ?? []} lang={lang} t={t} windowS={windowS} />
        </ErrorBoundary>
      </main>

      <footer className="footer muted small">
        <span data-testid="last-sample">{t('lastSample', { ago: formatAgo(ago, lang) })}</span>
        {' · '}
        <span>{t('footerRelay', { url: relayUrl || '…' })}</span>
        {slow && (
          <>
            {' · '}
            <span data-testid="counters">
              {t('stats', {
                accepted: slow.accepted.toLocaleString(lang),
                dup: slow.duplicates.toLocaleString(lang),
                invalid: slow.invalid.toLocaleString(lang),
              })}
            </span>
            {slow.limited > 0 && <span> · {t('limited', { n: slow.limited.toLocaleString(lang) })}</span>}
          </>
        )}
      </footer>
    </div>
  );
}
