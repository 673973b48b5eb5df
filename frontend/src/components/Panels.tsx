// The panels of the dashboard. They are pure functions of the views the App computes
// a few times per second; none of them touches the store.
import type { ConnectionInfo } from '../lib/connection';
import { memo } from 'react';
import { formatAgo, formatClock, formatDuration, windowLabel } from '../lib/format';
import { fmt, vmLabel, type Key, type Lang, type T } from '../lib/i18n';
import { REPLAY_LAG_S } from '../lib/store';
import { THRESHOLDS } from '../lib/verdict';
import type { CapacityView, ChartView, ProcessView, RouteRow } from '../lib/views';
import type { VmRecord } from '../lib/types';
import { LiveChart, Sparkline } from './LiveChart';

export function ConnPill({ info, t, now }: { info: ConnectionInfo; t: T; now: number }) {
  const retry =
    info.retryAt !== null && info.state !== 'live' ? Math.max(0, Math.ceil((info.retryAt - now) / 1000)) : null;
  return (
    <div className={`pill pill-${info.state}`} data-testid="conn-state" data-state={info.state} role="status" aria-live="polite">
      <span className="dot" aria-hidden="true" />
      <span>{t(`state_${info.state}`)}</span>
      {retry !== null && <span className="muted small"> · {t('retryIn', { s: retry })}</span>}
    </div>
  );
}

export function MetricChart(props: {
  kind: 'cpu' | 'ram';
  chart: ChartView;
  latest: VmRecord | null;
  lang: Lang;
  t: T;
}) {
  const { kind, chart, latest, lang, t } = props;
  const isCpu = kind === 'cpu';
  // the headline is the mean of the last second: with samples every 10 ms a single
  // CPU sample is 0, 50 or 100 % and says little
  const avg = isCpu ? chart.cpuAvg : chart.ramAvg;
  const value = chart.points > 0 ? avg[chart.points - 1] : NaN;
  const detail = latest
    ? isCpu
      ? ''
      : t('ramMiB', { used: fmt(lang, latest.uso_ram, 0), total: fmt(lang, latest.total_ram, 0) })
    : t('noData');
  const sub = [chart.lastSecondSamples > 1 ? t('avgLastSecond', { n: chart.lastSecondSamples }) : '', detail]
    .filter(Boolean)
    .join(' · ');
  // at least 3:1 on the card: the headline is large text (WCAG AA)
  const color = isCpu ? '#ea580c' : '#2563eb';
  return (
    <section className={`card chart-card chart-${kind}`} aria-labelledby={`h-${kind}`}>
      <header className="card-head">
        <h2 id={`h-${kind}`}>{isCpu ? t('cpuUse') : t('ramUse')}</h2>
        <div className="now" style={{ color }} data-testid={`now-${kind}`}>
          {fmt(lang, value, 1)}
          <span className="unit"> %</span>
        </div>
      </header>
      <div className="sub muted">{sub || '\u00a0'}</div>
      <div className="sub muted small">
        {t('points', { n: chart.points.toLocaleString(lang) })}
        {chart.lastSecondSamples > 1 && <> · {t('rawAndMean')}</>}
      </div>
      <LiveChart
        testId={`chart-${kind}`}
        label={isCpu ? t('cpuUse') : t('ramUse')}
        color={color}
        t={chart.t}
        y={isCpu ? chart.cpu : chart.ram}
        yAvg={avg}
        fromT={chart.fromT}
        toT={chart.toT}
      />
    </section>
  );
}

export const VERDICT_CLASS = { ok: 'good', tight: 'warn', fail: 'bad', unstressed: 'idle', insufficient: 'neutral' } as const;

function CapacityPanelView({ cap, lang, t }: { cap: CapacityView | null; lang: Lang; t: T }) {
  if (!cap) return null;
  const cls = VERDICT_CLASS[cap.verdict];
  const n = (v: number) => `${fmt(lang, v, 1)} %`;
  const metric = (label: string, value: string, id: string, warn?: boolean) => (
    <div className={`metric ${warn ? 'metric-warn' : ''}`}>
      <div className="metric-label">{label}</div>
      <div className="metric-value" data-testid={id}>
        {value}
      </div>
    </div>
  );
  return (
    <section className={`card capacity verdict-${cls}`} data-testid="capacity" data-verdict={cap.verdict} aria-labelledby="h-cap">
      <header className="card-head">
        <h2 id="h-cap">
          {t('capacity')} <span className="muted">({windowLabel(cap.windowS)})</span>
        </h2>
        <div className={`verdict badge-${cls}`} data-testid="verdict">
          {t(`verdict_${cap.verdict}`)}
          {cap.reasons.length > 0 && (
            <span className="small"> · {t('decidedBy', { r: cap.reasons.map((r) => t(`reason_${r}`)).join(' + ') })}</span>
          )}
        </div>
      </header>
      <div className="metrics">
        {metric(t('cpuPeak'), n(cap.cpuPeak), 'cap-cpu-peak')}
        {metric(t('cpuP95'), n(cap.cpuP95), 'cap-cpu-p95', cap.cpuP95 >= THRESHOLDS.cpuP95Tight)}
        {metric(t('ramPeak'), n(cap.ramPeak), 'cap-ram-peak', cap.ramPeak >= THRESHOLDS.ramPeakTight)}
        {metric(t('ramP95'), n(cap.ramP95), 'cap-ram-p95')}
        {metric(
          t('recordsReceived'),
          cap.records.toLocaleString(lang),
          'cap-records',
        )}
      </div>
      <Explanation cap={cap} t={t} />
      <p className="muted small">
        {t('covered', { s: formatAgo(cap.coveredS, lang) })}.{' '}
        {t('verdictRule', {
          cpuTight: THRESHOLDS.cpuP95Tight,
          ramTight: THRESHOLDS.ramPeakTight,
          cpuFail: THRESHOLDS.cpuP95Fail,
          ramFail: THRESHOLDS.ramPeakFail,
          cpuIdle: THRESHOLDS.cpuP95Unstressed,
          ramIdle: THRESHOLDS.ramPeakUnstressed,
          minSamples: THRESHOLDS.minSamples,
          minCover: THRESHOLDS.minCoverS,
        })}{' '}
        {t('verdictScope')}
      </p>
    </section>
  );
}

/** Explanation says why: which resource ran out first and when, or that nothing was pushed. */
export function Explanation({ cap, t }: { cap: Pick<CapacityView, 'verdict' | 'crossing'>; t: T }) {
  const c = cap.crossing;
  let text = '';
  if (c) {
    text = t(c.resource === 'cpu' ? 'explainCpu' : 'explainRam', {
      pct: c.resource === 'cpu' ? THRESHOLDS.cpuP95Tight : THRESHOLDS.ramPeakTight,
      trail: THRESHOLDS.trailingS,
      at: formatClock(c.atS),
      in: formatDuration(c.sinceStartS),
    });
  } else if (cap.verdict === 'unstressed') {
    text = t('explainUnstressed', { cpu: THRESHOLDS.cpuP95Unstressed, ram: THRESHOLDS.ramPeakUnstressed });
  }
  if (!text) return null;
  return (
    <p className="explain" data-testid="verdict-explain" data-resource={c?.resource ?? ''}>
      {text}
    </p>
  );
}

function Delta({ d }: { d: number | null }) {
  if (d === null) return <span className="muted">—</span>;
  if (d > 0) return <span className="up">▲ +{d}</span>;
  if (d < 0) return <span className="down">▼ {d}</span>;
  return <span className="muted">= 0</span>;
}

/** stateName is the translated name of a /proc state letter ('' for an unknown one). */
function stateName(t: T, state: string): string {
  return /^[RSDIZTtX]$/.test(state) ? t(`pstate_${state}` as Key) : '';
}

/** SourceBadge says where a VM's samples are read: kernel modules, the /proc fallback, or not said. */
export function SourceBadge({ source, t }: { source: string; t: T }) {
  const kind = source === 'kmod' || source === 'procfs' ? source : 'unknown';
  return (
    <span className={`chip source source-${kind}`} title={t(`sourceHelp_${kind}`)} data-testid="source" data-source={kind}>
      {kind === 'procfs' && (
        <span aria-hidden="true">⚠ </span>
      )}
      {t(`source_${kind}`)}
    </span>
  );
}

/** VmBar heads the detail view: which VM, where its samples come from, and whether they are a replay. */
export function VmBar(props: { vm: string; source: string; lagS: number; latestT: number; t: T }) {
  const { vm, source, lagS, latestT, t } = props;
  const replay = lagS > REPLAY_LAG_S;
  return (
    <>
      <section className="vmbar" aria-labelledby="h-vm" data-testid="vm-detail" data-vm={vm}>
        <h2 id="h-vm">{t('vmDetail', { vm: vmLabel(t, vm) })}</h2>
        <span className="muted small">{t('source')}:</span>
        <SourceBadge source={source} t={t} />
        {replay && <span className="chip tag-replay">{t('replay')}</span>}
      </section>
      {source === 'procfs' && (
        <p className="notice notice-warn" role="status" data-testid="procfs-warning">
          <span aria-hidden="true">⚠ </span>
          {t('procfsWarning', { vm: vmLabel(t, vm) })}
        </p>
      )}
      {replay && (
        <p className="notice notice-info" data-testid="replay-banner" data-lag={Math.round(lagS)}>
          {t('replayBanner', { at: formatClock(latestT), lag: formatDuration(lagS) })}
        </p>
      )}
    </>
  );
}

function ProcessPanelView({ pv, lang, t }: { pv: ProcessView | null; lang: Lang; t: T }) {
  return (
    <section className="card procs" aria-labelledby="h-procs" data-testid="processes">
      <header className="card-head">
        <h2 id="h-procs">{t('processes')}</h2>
        {pv && <span className="muted small">{t('processesAt', { hora: pv.hora })}</span>}
      </header>
      {!pv ? (
        <p className="muted">{t('noData')}</p>
      ) : (
        <>
          <table className="table">
            <thead>
              <tr>
                <th scope="col">{t('state')}</th>
                <th scope="col" className="num">
                  {t('count')}
                </th>
                <th scope="col" className="num">
                  {t('vsMinute')}
                </th>
                <th scope="col">{t('trend')}</th>
              </tr>
            </thead>
            <tbody>
              {pv.rows
                .filter((r) => r.key !== 'other' || r.value > 0)
                .map((r) => (
                  <tr key={r.key} className={r.key === 'total' ? 'total-row' : ''}>
                    <th scope="row">{t(r.key)}</th>
                    <td className="num big-num" data-testid={`proc-${r.key}`}>
                      {r.value.toLocaleString(lang)}
                    </td>
                    <td className="num">
                      <Delta d={r.delta} />
                    </td>
                    <td className={`spark-cell spark-${r.key}`}>
                      <Sparkline values={r.spark} />
                    </td>
                  </tr>
                ))}
            </tbody>
          </table>
          <p className={`small ${pv.consistent ? 'muted' : 'bad-text'}`}>{pv.consistent ? `✓ ${t('sumCheck')}` : `⚠ ${t('sumBroken')}`}</p>
        </>
      )}
      {pv?.top && (
        <div className="top" data-testid="top-procs">
          <h3>
            {t('topProcesses')} <span className="muted small">({pv.top.hora} UTC)</span>
          </h3>
          <table className="table compact">
            <thead>
              <tr>
                <th scope="col" className="num">
                  {t('pid')}
                </th>
                <th scope="col">{t('name')}</th>
                <th scope="col">{t('state')}</th>
                <th scope="col" className="num">
                  {t('rss')}
                </th>
              </tr>
            </thead>
            <tbody>
              {pv.top.procs.map((p) => (
                <tr key={`${p.pid}-${p.name}`}>
                  <td className="num">{p.pid}</td>
                  <td className="name">
                    {p.name === '' ? (
                      <span className="hidden-name" title={t('hiddenNameHelp')} data-testid="hidden-name">
                        {t('hiddenName')}
                      </span>
                    ) : (
                      p.name
                    )}
                  </td>
                  <td title={stateName(t, p.state) || p.state}>
                    {p.state} <span className="muted small">{stateName(t, p.state)}</span>
                  </td>
                  <td className="num">{fmt(lang, p.rss_mib, 0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function RoutePanelView({ rows, lang, t, windowS }: { rows: RouteRow[]; lang: Lang; t: T; windowS: number }) {
  const maxRate = Math.max(1, ...rows.map((r) => r.rateLive));
  const maxP95 = Math.max(1e-9, ...rows.map((r) => (Number.isFinite(r.p95) ? r.p95 : 0)));
  const inWin = rows.reduce((s, r) => s + r.inWindow, 0);
  const ms = (v: number) => (Number.isFinite(v) ? `${fmt(lang, v, v < 10 ? 2 : 1)} ms` : '—');
  const name = (r: string) => (r === '' ? t('routeNone') : r);
  return (
    <section className="card routes" aria-labelledby="h-routes">
      <header className="card-head">
        <h2 id="h-routes">
          {t('routeRace')} <span className="muted">({windowLabel(windowS)})</span>
        </h2>
      </header>
      <p className="muted small">{t('routeRaceHelp')}</p>
      <div className="lanes">
        {rows.map((r, i) => (
          <div
            key={r.route}
            className={`lane lane-${i % 2 ? 'b' : 'a'}`}
            data-testid={`route-${r.route || 'none'}`}
            data-total={r.total}
            data-rate={r.rateLive.toFixed(2)}
          >
            <div className="lane-name">{name(r.route)}</div>
            <div className="lane-big">
              {fmt(lang, r.rateLive, 1)} <span className="muted small">{t('rateLive')}</span>
            </div>
            <div className="bar" aria-hidden="true">
              <div style={{ width: `${(100 * r.rateLive) / maxRate}%` }} />
            </div>
            <dl className="lane-stats">
              <div>
                <dt>{t('totalRecords')}</dt>
                <dd data-testid={`route-total-${r.route || 'none'}`}>{r.total.toLocaleString(lang)}</dd>
              </div>
              <div>
                <dt>{t('rateWindow')}</dt>
                <dd>{fmt(lang, r.rateWindow, 1)}</dd>
              </div>
              <div>
                <dt>{t('commitLatency')} p50</dt>
                <dd>{ms(r.p50)}</dd>
              </div>
              <div>
                <dt>{t('commitLatency')} p95</dt>
                <dd>
                  {ms(r.p95)}
                  <span className="bar thin" aria-hidden="true">
                    <span style={{ width: `${Number.isFinite(r.p95) ? (100 * r.p95) / maxP95 : 0}%` }} />
                  </span>
                </dd>
              </div>
            </dl>
          </div>
        ))}
      </div>
      {inWin > 0 && (
        <div className="split" role="group" aria-label={t('split')}>
          {rows
            .filter((r) => r.inWindow > 0)
            .map((r, i) => (
              <div key={r.route} className={`split-part lane-${i % 2 ? 'b' : 'a'}`} style={{ flexGrow: r.inWindow }}>
                {name(r.route)} {fmt(lang, (100 * r.inWindow) / inWin, 1)} %
              </div>
            ))}
        </div>
      )}
    </section>
  );
}

/** CapacityPanel re-renders only when its view changes (once a second), not on every chart tick. */
export const CapacityPanel = memo(CapacityPanelView);

/** ProcessPanel re-renders only when its view changes (once a second), not on every chart tick. */
export const ProcessPanel = memo(ProcessPanelView);

/** RoutePanel re-renders only when its view changes (once a second), not on every chart tick. */
export const RoutePanel = memo(RoutePanelView);
