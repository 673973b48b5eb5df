// Builders for the unit tests (not imported by the app).
import type { ParsedFrame } from './protocol';
import type { RelayItem, VmRecord } from './types';

let seq = 0;

export function rec(p: Partial<VmRecord> = {}): VmRecord {
  seq++;
  return {
    id: `id-${seq}`,
    vm: 'vm-1',
    total_ram: 2048,
    ram_libre: 1100,
    uso_ram: 948,
    porcentaje_ram: 46.3,
    porcentaje_cpu_uso: 22.5,
    porcentaje_cpu_libre: 77.5,
    procesos_corriendo: 3,
    total_procesos: 233,
    procesos_durmiendo: 225,
    procesos_zombie: 1,
    procesos_parados: 2,
    hora: '2026-11-23 12:00:00',
    ...p,
  };
}

/** item at epoch ms t (stored_at), with the hora that second. */
export function item(tMs: number, p: Partial<VmRecord> = {}, route = 'route1', commitMs = 2): RelayItem {
  const iso = new Date(tMs).toISOString();
  return {
    route,
    commit_ms: commitMs,
    stored_at: iso,
    record: rec({ hora: iso.slice(0, 19).replace('T', ' '), ...p }),
  };
}

export const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);

export const batch = (items: RelayItem[]): ParsedFrame => ({ kind: 'batch', items, dropped: 0 });
export const history = (items: RelayItem[]): ParsedFrame => ({ kind: 'history', items, dropped: 0 });

/** n items, one every `stepMs`, starting at T0, alternating routes. */
export function stream(n: number, stepMs: number, p: (i: number) => object = () => ({})): RelayItem[] {
  return Array.from({ length: n }, (_, i) =>
    item(T0 + i * stepMs, p(i), i % 2 ? 'route2' : 'route1', i % 2 ? 10 + (i % 7) : 1 + (i % 3)),
  );
}

