// The comparison: several VMs under the same load, side by side. CPU and RAM of each VM
// as one-second means over one window, and a table of each VM's verdict that sorts.
// Selecting a VM shows its detail below (the page's detail view).
import { memo, useLayoutEffect, useMemo, useRef, useState } from 'react';
import uPlot from 'uplot';
import { formatDuration, windowLabel } from '../lib/format';
import { fmt, vmLabel, type Key, type Lang, type T } from '../lib/i18n';
import { VERDICT_ORDER } from '../lib/verdict';
import type { CompareRow, CompareView } from '../lib/views';
import { chartAxes, useUPlot } from './LiveChart';
import { SourceBadge, VERDICT_CLASS } from './Panels';

type SortKey = 'vm' | 'machineType' | 'source' | 'cpuP95' | 'ramPeak' | 'procs' | 'verdict';

const COLUMNS: { key: SortKey; label: Key; num?: boolean }[] = [
  { key: 'vm', label: 'vm' },
  { key: 'machineType', label: 'machineType' },
  { key: 'source', label: 'source' },
  { key: 'cpuP95', label: 'cpuP95', num: true },
  { key: 'ramPeak', label: 'ramPeak', num: true },
  { key: 'procs', label: 'processesCol', num: true },
  { key: 'verdict', label: 'verdictCol' },
];

function sortValue(r: CompareRow, k: SortKey): number | string {
  switch (k) {
    case 'verdict':
      return VERDICT_ORDER.indexOf(r.capacity.verdict);
    case 'cpuP95':
    case 'ramPeak':
      return Number.isFinite(r.capacity[k]) ? r.capacity[k] : -Infinity;
    case 'procs':
      return Number.isFinite(r[k]) ? r[k] : -Infinity;
    default:
      return r[k];
  }
}

/** sortRows orders rows by key (ties by VM name); NaN figures sort as lowest. */
export function sortRows(rows: CompareRow[], key: SortKey, dir: 1 | -1): CompareRow[] {
  return [...rows].sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return c * dir || a.vm.localeCompare(b.vm);
  });
}

function ComparePanelView(props: {
  view: CompareView;
  selected: string;
  onSelect: (vm: string) => void;
  lang: Lang;
  t: T;
}) {
  const { view, selected, onSelect, lang, t } = props;
  const [sort, setSort] = useState<{ key: SortKey; dir: 1 | -1 }>({ key: 'vm', dir: 1 });
  const rows = useMemo(() => sortRows(view.rows, sort.key, sort.dir), [view.rows, sort]);
  const pct = (v: number) => (Number.isFinite(v) ? `${fmt(lang, v, 1)} %` : '—');
  // a newly picked column sorts its figures highest first, the other columns ascending
  const clickSort = (key: SortKey) =>
    setSort((s) => ({ key, dir: s.key === key ? ((-s.dir) as 1 | -1) : COLUMNS.find((c) => c.key === key)?.num ? -1 : 1 }));

  return (
    <section className="card compare" aria-labelledby="h-compare" data-testid="compare">
      <header className="card-head">
        <h2 id="h-compare">
          {t('compare')} <span className="muted">({windowLabel(view.windowS)})</span>
        </h2>
      </header>
      <p className="muted small">
        {t('compareHelp', { w: windowLabel(view.windowS) })}
        {view.rows.length > view.lines.length && <> {t('compareCharted', { n: view.lines.length })}</>}
      </p>
      <div className="compare-charts">
        <CompareChart testId="compare-cpu" title={t('cpuUse')} view={view} pick="cpu" />
        <CompareChart testId="compare-ram" title={t('ramUse')} view={view} pick="ram" />
      </div>
      <div className="table-scroll">
        <table className="table compare-table">
          <thead>
            <tr>
              {COLUMNS.map((c) => (
                <th
                  key={c.key}
                  scope="col"
                  className={c.num ? 'num' : ''}
                  aria-sort={sort.key === c.key ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'}
                >
                  <button type="button" className="sort" data-testid={`compare-sort-${c.key}`} onClick={() => clickSort(c.key)}>
                    {t(c.label)}
                    <span aria-hidden="true" className="sort-mark">
                      {sort.key === c.key ? (sort.dir === 1 ? ' ▲' : ' ▼') : ''}
                    </span>
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const cap = r.capacity;
              const cls = VERDICT_CLASS[cap.verdict];
              const isSel = r.vm === selected;
              return (
                <tr key={r.vm} className={isSel ? 'selected' : ''} data-testid="compare-row" data-vm={r.vm} data-verdict={cap.verdict}>
                  <th scope="row">
                    <span className="swatch" style={{ background: r.color ?? 'transparent' }} aria-hidden="true" />
                    <button type="button" className="vm-link" aria-pressed={isSel} onClick={() => onSelect(r.vm)}>
                      {vmLabel(t, r.vm)}
                    </button>
                    {r.replay && (
                      <span className="tag tag-replay" title={t('replayTagHelp', { lag: formatDuration(r.lagS) })}>
                        {t('replay')}
                      </span>
                    )}
                  </th>
                  <td>{r.machineType || <span className="muted">—</span>}</td>
                  <td>
                    <SourceBadge source={r.source} t={t} />
                  </td>
                  <td className="num">{pct(cap.cpuP95)}</td>
                  <td className="num">{pct(cap.ramPeak)}</td>
                  <td className="num">
                    {Number.isFinite(r.procs) ? `${r.procs.toLocaleString(lang)} (${r.running.toLocaleString(lang)})` : '—'}
                  </td>
                  <td>
                    <span className={`chip badge-${cls}`} data-testid="compare-verdict">
                      {t(`verdict_${cap.verdict}`)}
                    </span>
                    {cap.crossing && (
                      <span className="small cross">
                        {' '}
                        {t('crossShort', { r: t(`reason_${cap.crossing.resource}`), in: formatDuration(cap.crossing.sinceStartS) })}
                      </span>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/** CompareChart: one line per charted VM (one-second means), 0..100 %, one x range. */
function CompareChart({ testId, title, view, pick }: { testId: string; title: string; view: CompareView; pick: 'cpu' | 'ram' }) {
  const host = useRef<HTMLDivElement>(null);
  const range = useRef<[number, number]>([view.fromT, view.toT]);
  range.current = [view.fromT, view.toT];
  // the plot is rebuilt only when the set of lines changes
  const shape = view.lines.map((l) => `${l.vm}\u0000${l.color}`).join('\u0001');
  const height = 180;

  const fill = (u: uPlot) => u.setData([view.t, ...view.lines.map((l) => l[pick])] as uPlot.AlignedData, true);
  // view.lines is read for the shape only; the data goes in through fill
  const plot = useUPlot(host, height, (el, width) => {
    const series: uPlot.Series[] = [{}];
    for (const l of view.lines) series.push({ label: l.vm, stroke: l.color, width: 2, points: { show: false } });
    return new uPlot(
      {
        width,
        height,
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { size: 5 } },
        scales: { x: { time: true, range: () => range.current }, y: { range: [0, 100] } },
        axes: chartAxes(),
        series,
      },
      [[], ...view.lines.map(() => [])],
      el,
    );
  }, fill, [shape]);

  useLayoutEffect(() => {
    if (plot.current) fill(plot.current);
  }, [view, pick]);

  return (
    <figure className="compare-chart">
      <figcaption className="small">{title}</figcaption>
      <div
        className="chart"
        ref={host}
        data-testid={testId}
        data-lines={view.lines.length}
        data-to={view.toT}
        role="img"
        aria-label={`${title}: ${view.lines.map((l) => l.vm).join(', ')}`}
      />
      <ul className="legend small" aria-hidden="true">
        {view.lines.map((l) => (
          <li key={l.vm}>
            <span className="swatch" style={{ background: l.color }} />
            {l.vm}
          </li>
        ))}
      </ul>
    </figure>
  );
}

/** ComparePanel re-renders only when the comparison changes (once a second). */
export const ComparePanel = memo(ComparePanelView);
