// LiveChart: one uPlot line chart, created once and fed with setData. The data are
// zero-copy subarrays of the store's buffers; the x range is the selected window
// ending at the newest sample, the y range is fixed at 0..100 % so the height of the
// line means the same thing in every window.
import { useLayoutEffect, useRef, type DependencyList, type RefObject } from 'react';
import uPlot from 'uplot';
import { formatClock } from '../lib/format';
import { gapThreshold, timeGaps } from '../lib/stats';
import { markFirstPoint } from '../testHooks';

// No samples for a while (relay or agent down): leave the hole visible instead of
// drawing a straight line across it.
const timeGapsRefiner: uPlot.Series.GapsRefiner = (u, _sidx, idx0, idx1, nullGaps) => {
  const xs = u.data[0];
  const found = timeGaps(xs, idx0, idx1, gapThreshold(xs, idx0, idx1));
  if (found.length === 0) return nullGaps;
  const out = nullGaps.slice();
  for (const [a, b] of found) {
    uPlot.addGap(out, Math.round(u.valToPos(xs[a], 'x', true)), Math.round(u.valToPos(xs[b], 'x', true)));
  }
  return out.sort((p, q) => p[0] - q[0]);
};

/** chartAxes: the time axis and the 0..100 % axis, in the theme's colors. */
export function chartAxes(): uPlot.Axis[] {
  // canvas strokes cannot use CSS variables: resolve the theme colors once
  const css = getComputedStyle(document.documentElement);
  const muted = css.getPropertyValue('--muted').trim() || '#888';
  const grid = css.getPropertyValue('--grid').trim() || '#8883';
  return [
    {
      stroke: muted,
      grid: { stroke: grid, width: 1 },
      ticks: { show: false },
      values: (_u, splits) => splits.map((v) => formatClock(v)),
    },
    {
      stroke: muted,
      grid: { stroke: grid, width: 1 },
      ticks: { show: false },
      size: 44,
      values: (_u, vals) => vals.map((v) => `${v} %`),
    },
  ];
}

/** observeWidth keeps the plot as wide as its host; returns the cleanup. */
function observeWidth(u: uPlot, el: HTMLElement, height: number): () => void {
  const ro = new ResizeObserver(() => {
    const w = Math.max(200, el.clientWidth);
    if (w !== u.width) u.setSize({ width: w, height });
  });
  ro.observe(el);
  return () => ro.disconnect();
}

/**
 * useUPlot builds a chart in host's element with build (given the element and its
 * width), fills it with fill, keeps it as wide as the element, and destroys it when
 * deps or height change or the component goes. Since every rebuild fills the new
 * chart, callers refill it only when their data change. It returns the ref holding
 * the current chart.
 */
export function useUPlot(
  host: RefObject<HTMLDivElement | null>,
  height: number,
  build: (el: HTMLDivElement, width: number) => uPlot,
  fill: (u: uPlot) => void,
  deps: DependencyList,
): RefObject<uPlot | null> {
  const plot = useRef<uPlot | null>(null);
  useLayoutEffect(() => {
    const el = host.current;
    if (!el) return;
    const u = build(el, Math.max(200, el.clientWidth));
    plot.current = u;
    fill(u);
    const unobserve = observeWidth(u, el, height);
    return () => {
      unobserve();
      u.destroy();
      plot.current = null;
    };
    // build and fill are fresh closures each render: deps say when the chart changes
  }, [...deps, height]);
  return plot;
}

export interface LiveChartProps {
  testId: string;
  label: string;
  color: string;
  t: Float64Array;
  y: Float32Array;
  /** the smoothed series drawn bold over the raw one */
  yAvg: Float32Array;
  fromT: number;
  toT: number;
  height?: number;
}

export function LiveChart({ testId, label, color, t, y, yAvg, fromT, toT, height = 200 }: LiveChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const range = useRef<[number, number]>([fromT, toT]);
  range.current = [fromT, toT];

  const fill = (u: uPlot) => {
    u.setData([t, y, yAvg], true);
    if (t.length > 0) markFirstPoint();
  };
  const plot = useUPlot(host, height, (el, width) => {
    const opts: uPlot.Options = {
      width,
      height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      scales: {
        x: { time: true, range: () => range.current },
        y: { range: [0, 100] },
      },
      axes: chartAxes(),
      series: [
        {},
        {
          label,
          stroke: color + '38',
          width: 1,
          points: { show: false },
          gaps: timeGapsRefiner,
        },
        {
          label: label + ' (1 s)',
          stroke: color,
          width: 2,
          fill: color + '18',
          points: { show: false },
          gaps: timeGapsRefiner,
        },
      ],
    };
    return new uPlot(opts, [new Float64Array(0), new Float32Array(0), new Float32Array(0)], el);
  }, fill, [label, color]);

  // layout effect: the new data is drawn in the same frame as the numbers around it
  useLayoutEffect(() => {
    if (plot.current) fill(plot.current);
  }, [t, y, yAvg, fromT, toT]);

  return (
    <div
      className="chart"
      ref={host}
      data-testid={testId}
      data-points={t.length}
      data-from={fromT}
      data-to={toT}
      role="img"
      aria-label={label}
    />
  );
}

/** Sparkline: a tiny SVG line over evenly spaced values (NaN = gap). */
export function Sparkline({ values, width = 90, height = 22 }: { values: number[]; width?: number; height?: number }) {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (Number.isNaN(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min === Infinity) return <svg className="spark" width={width} height={height} aria-hidden="true" />;
  const span = max - min || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (Number.isNaN(v)) {
      pen = false;
      return;
    }
    const x = (i * step).toFixed(1);
    const yy = (height - 2 - ((v - min) / span) * (height - 4)).toFixed(1);
    d += `${pen ? 'L' : 'M'}${x},${yy}`;
    pen = true;
  });
  return (
    <svg className="spark" width={width} height={height} viewBox={`0 0 ${width} ${height}`} aria-hidden="true">
      <path d={d} fill="none" stroke="currentColor" strokeWidth="1.3" />
    </svg>
  );
}
