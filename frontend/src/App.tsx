// The dashboard. Frames from the relay go straight into the DashboardStore (outside
// React, see hooks/useRelay.ts); a tick turns the store into views (hooks/useViews.ts).
// With several VMs the comparison comes first; the detail view below shows the VM
// picked in it (or in the VM selector).
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { ComparePanel } from './components/ComparePanel';
import { ErrorBoundary, PanelError } from './components/ErrorBoundary';
import { CapacityPanel, ConnPill, MetricChart, ProcessPanel, RoutePanel, VmBar } from './components/Panels';
import { useRelay } from './hooks/useRelay';
import { useViews } from './hooks/useViews';
import type { DashboardConfig } from './lib/config';
import { formatAgo, windowLabel } from './lib/format';
import { LANG_KEY, LANGS, translator, vmLabel, type Lang } from './lib/i18n';
import { DashboardStore, WINDOWS_S } from './lib/store';

function safeSet(key: string, v: string): void {
  try {
    localStorage.setItem(key, v);
  } catch {
    /* private mode */
  }
}

export function App({ config, initialLang }: { config: Promise<DashboardConfig>; initialLang: Lang }) {
  const store = useMemo(() => new DashboardStore(), []);
  const [lang, setLang] = useState<Lang>(initialLang);
  const t = useMemo(() => translator(lang), [lang]);
  const [windowS, setWindowS] = useState<number>(WINDOWS_S[0]);
  const [vmPick, setVmPick] = useState<string | null>(null);
  const flushRef = useRef<() => void>(() => {});
  const { conn, config: cfg } = useRelay(config, store, (f, first) => {
    // the first data, and the history after a reconnect, are drawn at once instead of
    // at the next tick
    if ((first || f.kind === 'history') && f.items.length > 0) requestAnimationFrame(() => flushRef.current());
  });
  const { live, slow, flush } = useViews(store, windowS, vmPick, cfg?.machineTypes);
  flushRef.current = flush;

  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = `vmpulse · ${t(`state_${conn.state}`)}`;
  }, [lang, t, conn.state]);

  const pickVm = useCallback(
    (vm: string) => {
      // the picked VM is never evicted to make room for a new name
      store.pin(vm);
      setVmPick(vm);
    },
    [store],
  );
  const chooseLang = (next: Lang) => {
    safeSet(LANG_KEY, next);
    setLang(next);
  };

  const panelError = (e: Error) => <PanelError error={e} t={t} />;
  const ago = slow ? slow.nowS - live.latestT : NaN;
  const resetKey = slow?.clientNow;

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
              <select data-testid="vm-select" value={live.vm} onChange={(e) => pickVm(e.target.value)}>
                {live.vms.map((v) => (
                  <option key={v} value={v}>
                    {vmLabel(t, v)}
                  </option>
                ))}
              </select>
            </label>
          )}
          {live.vms.length === 1 && (
            <span className="control vm-one" data-testid="vm-name">
              <span className="muted small">{t('vm')}</span> <strong>{vmLabel(t, live.vm)}</strong>
            </span>
          )}
          <div className="control seg" role="group" aria-labelledby="window-label">
            <span className="muted small" id="window-label">
              {t('window')}
            </span>
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
          <div className="control seg" role="group" aria-label={t('language')}>
            {LANGS.map((l) => (
              <button
                key={l}
                type="button"
                lang={l}
                aria-pressed={lang === l}
                className={lang === l ? 'on' : ''}
                data-testid={`lang-${l}`}
                onClick={() => chooseLang(l)}
              >
                {l.toUpperCase()}
              </button>
            ))}
          </div>
        </div>
      </header>

      <main>
        {slow?.compare && (
          <ErrorBoundary fallback={panelError} resetKey={resetKey}>
            <ComparePanel view={slow.compare} selected={live.vm} onSelect={pickVm} lang={lang} t={t} />
          </ErrorBoundary>
        )}
        {live.vms.length > 0 && (
          <VmBar vm={live.vm} source={live.source} lagS={live.lagS} latestT={live.latestT} t={t} />
        )}
        <div className="grid">
          <ErrorBoundary fallback={panelError} resetKey={resetKey}>
            <MetricChart kind="cpu" chart={live.chart} latest={live.latest} lang={lang} t={t} />
          </ErrorBoundary>
          <ErrorBoundary fallback={panelError} resetKey={resetKey}>
            <MetricChart kind="ram" chart={live.chart} latest={live.latest} lang={lang} t={t} />
          </ErrorBoundary>
          <ErrorBoundary fallback={panelError} resetKey={resetKey}>
            <CapacityPanel cap={slow?.capacity ?? null} lang={lang} t={t} />
          </ErrorBoundary>
          <ErrorBoundary fallback={panelError} resetKey={resetKey}>
            <ProcessPanel pv={slow?.procs ?? null} lang={lang} t={t} />
          </ErrorBoundary>
          <ErrorBoundary fallback={panelError} resetKey={resetKey}>
            <RoutePanel rows={slow?.routes ?? []} lang={lang} t={t} windowS={windowS} />
          </ErrorBoundary>
        </div>
      </main>

      <footer className="footer muted small">
        <span data-testid="last-sample">{t('lastSample', { ago: formatAgo(ago, lang) })}</span>
        {' · '}
        <span>{t('footerRelay', { url: cfg?.relayUrl || '…' })}</span>
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
            {slow.evicted > 0 && (
              <span data-testid="evicted">
                {' · '}
                {t('evicted', { n: slow.evicted.toLocaleString(lang), max: store.limits.maxVms })}
              </span>
            )}
          </>
        )}
      </footer>
    </div>
  );
}
