// Wire types: the record contract (docs/record.md) and the relay protocol
// (functions/relay/hub.go).

/** One entry of Record.top_procesos. */
export interface TopProcess {
  pid: number;
  /** "" when the relay hides process names (its default; -expose-processes shows them) */
  name: string;
  /** one letter as in /proc/[pid]/stat: R S D I Z T t X */
  state: string;
  rss_mib: number;
}

/** The record a VM agent produces (field names follow the assignment). */
export interface VmRecord {
  id?: string;
  vm?: string;
  total_ram: number;
  ram_libre: number;
  uso_ram: number;
  porcentaje_ram: number;
  porcentaje_cpu_uso: number;
  porcentaje_cpu_libre: number;
  procesos_corriendo: number;
  total_procesos: number;
  procesos_durmiendo: number;
  procesos_zombie: number;
  procesos_parados: number;
  /** "YYYY-MM-DD HH:MM:SS", UTC: when the VM took the sample */
  hora: string;
  /** where the agent read the sample: "kmod" (kernel modules) or "procfs" (the /proc
   * fallback); absent in records of other implementations */
  source?: string;
  top_procesos?: TopProcess[];
}

/** One relay item: a committed record and how it got there. */
export interface RelayItem {
  route: string;
  commit_ms: number;
  stored_at: string;
  record: VmRecord;
}

/** A frame the relay sends (server → client). Unknown types are ignored. */
export type RelayFrame =
  | { type: 'history'; items: RelayItem[] }
  | { type: 'batch'; items: RelayItem[] };
