// Crafted relay items for the pages whose websocket the test answers itself.
import { CROCKFORD } from '../src/lib/protocol';
import type { RelayItem, VmRecord } from '../src/lib/types';

let seq = 0;

/** ulid makes an id as the agent does (record.IDSource): the millisecond, then 16 more characters. */
export function ulid(ms: number): string {
  let s = '';
  let m = ms;
  for (let i = 0; i < 10; i++) {
    s = CROCKFORD[m % 32] + s;
    m = Math.floor(m / 32);
  }
  let n = seq++;
  let r = '';
  for (let i = 0; i < 16; i++) {
    r = CROCKFORD[n % 32] + r;
    n = Math.floor(n / 32);
  }
  return s + r;
}

export const hora = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

/** item is one sample of vm taken at takenMs and committed at storedMs. */
export function item(vm: string, takenMs: number, storedMs: number, p: Partial<VmRecord> = {}, route = 'route1'): RelayItem {
  const cpu = p.porcentaje_cpu_uso ?? 20;
  const ram = p.porcentaje_ram ?? 40;
  const total = 2048;
  const used = Math.round((ram / 100) * total);
  return {
    route,
    commit_ms: 2 + (takenMs % 7),
    stored_at: new Date(storedMs).toISOString(),
    record: {
      id: ulid(takenMs),
      vm,
      total_ram: total,
      ram_libre: total - used,
      uso_ram: used,
      porcentaje_ram: ram,
      porcentaje_cpu_uso: cpu,
      porcentaje_cpu_libre: 100 - cpu,
      procesos_corriendo: 3,
      total_procesos: 200,
      procesos_durmiendo: 195,
      procesos_zombie: 1,
      procesos_parados: 1,
      hora: hora(takenMs),
      source: 'kmod',
      ...p,
    },
  };
}

/** TOP is a top_procesos as the relay sends it by default: names hidden. */
export const TOP_HIDDEN = [
  { pid: 1, name: '', state: 'S', rss_mib: 12 },
  { pid: 812, name: '', state: 'R', rss_mib: 310 },
  { pid: 90, name: '', state: 'I', rss_mib: 0 },
];
