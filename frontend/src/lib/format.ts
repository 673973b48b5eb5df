// Formatting of times and durations for the panels (numbers: fmt in i18n.ts).
import { fmt, type Lang } from './i18n';

/** formatAgo is a short age: "3,2 s", "45 s", "12 min", "3 h". */
export function formatAgo(s: number, lang: Lang): string {
  if (!Number.isFinite(s)) return '—';
  const v = Math.max(0, s);
  if (v < 10) return `${fmt(lang, v, 1)} s`;
  if (v < 120) return `${Math.round(v)} s`;
  if (v < 7200) return `${Math.round(v / 60)} min`;
  return `${Math.round(v / 3600)} h`;
}

/** formatDuration is a duration in whole seconds, rounded down: "45 s", "2 min 05 s", "1 h 02 min". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '—';
  const v = Math.max(0, Math.floor(s));
  if (v < 60) return `${v} s`;
  if (v < 3600) return `${Math.floor(v / 60)} min ${String(v % 60).padStart(2, '0')} s`;
  return `${Math.floor(v / 3600)} h ${String(Math.floor((v % 3600) / 60)).padStart(2, '0')} min`;
}

export function windowLabel(s: number): string {
  return `${Math.round(s / 60)} min`;
}

// The charts' time axis and the times in the text use the same clock (this browser's
// time zone), so a time in a sentence can be found on the chart.
const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

/** formatClock formats epoch seconds as HH:MM:SS in this browser's time zone. */
export function formatClock(epochS: number): string {
  return Number.isFinite(epochS) ? clock.format(epochS * 1000) : '—';
}
