// Spanish and English labels. Spanish when the browser prefers it, English otherwise;
// index.html declares DEFAULT_LANG and main.tsx sets the detected one before the first
// render, so <html lang> always matches the labels.

export type Lang = 'es' | 'en';

/** the languages of the ES/EN switch, in its order */
export const LANGS: readonly Lang[] = ['es', 'en'];

/** the language without any preference (also index.html's <html lang>) */
export const DEFAULT_LANG: Lang = 'en';

/** where the user's explicit choice (the ES/EN toggle) is remembered */
export const LANG_KEY = 'vmpulse.lang';

/** detectLang picks the stored choice, else the first of navigator.languages that is Spanish or English. */
export function detectLang(languages: readonly string[] | undefined, stored?: string | null): Lang {
  if (stored === 'es' || stored === 'en') return stored;
  for (const l of languages ?? []) {
    const p = l.toLowerCase().split(/[-_]/)[0];
    if (p === 'es') return 'es';
    if (p === 'en') return 'en';
  }
  return DEFAULT_LANG;
}

/** startLang detects the language at start and sets it on the root element (<html lang>). */
export function startLang(
  languages: readonly string[] | undefined,
  stored: string | null | undefined,
  root: { lang: string },
): Lang {
  const lang = detectLang(languages, stored);
  root.lang = lang;
  return lang;
}

const en = {
  title: 'vmpulse',
  subtitle: 'Can this VM carry production? Live samples from the agent, through both ingest routes.',
  vm: 'VM',
  vmUnnamed: '(unnamed)',
  window: 'Window',
  min: 'min',
  language: 'Language',
  split: 'Split between the routes',
  state_connecting: 'connecting',
  state_live: 'live',
  state_reconnecting: 'reconnecting',
  state_offline: 'offline',
  retryIn: 'retry in {s} s',
  cpu: 'CPU',
  ram: 'RAM',
  cpuUse: 'CPU use',
  ramUse: 'RAM use',
  ramMiB: '{used} of {total} MiB in use',
  points: '{n} samples in window',
  avgLastSecond: 'mean of the last second ({n} samples)',
  rawAndMean: 'thin: every sample · bold: 1 s mean',
  noData: 'Waiting for samples…',
  processes: 'Processes',
  processesAt: 'latest sample, {hora} UTC',
  state: 'State',
  count: 'Count',
  vsMinute: 'vs 1 min ago',
  trend: 'Trend',
  running: 'Running',
  sleeping: 'Sleeping',
  zombie: 'Zombie',
  stopped: 'Stopped',
  other: 'Other (e.g. disk wait, idle kernel threads)',
  total: 'Total',
  sumCheck: 'running + sleeping + zombie + stopped + other = total',
  sumBroken: 'the states add up to more than the total in this record',
  topProcesses: 'Top processes by memory',
  pid: 'PID',
  name: 'Name',
  rss: 'RSS (MiB)',
  routeRace: 'Route race',
  routeRaceHelp: 'route1 commits each record in its own transaction; route2 group-commits concurrent requests. All VMs.',
  route: 'Route',
  routeNone: '(no route)',
  rateLive: 'records/s (last 10 s)',
  rateWindow: 'records/s (window)',
  records: 'records',
  totalRecords: 'total received',
  commitLatency: 'commit latency',
  capacity: 'Capacity in this window',
  cpuPeak: 'CPU peak (1 s avg)',
  cpuP95: 'CPU p95 (1 s avg)',
  ramPeak: 'RAM peak',
  ramP95: 'RAM p95',
  recordsReceived: 'records received',
  covered: 'covering {s}',
  verdict_ok: 'Has headroom',
  verdict_tight: 'Tight',
  verdict_fail: 'Does not carry this load',
  verdict_unstressed: 'Not stressed: proves nothing',
  verdict_insufficient: 'Not enough data yet',
  verdictRule:
    'Rule: does not carry the load when CPU p95 ≥ {cpuFail} % or RAM peak ≥ {ramFail} %; tight when CPU p95 ≥ {cpuTight} % or RAM peak ≥ {ramTight} %; not stressed when CPU p95 < {cpuIdle} % and RAM peak < {ramIdle} % (the load never pushed the VM, so the run proves nothing); headroom otherwise. p95 = 95 % of the samples were at or below it. Needs at least {minSamples} samples over {minCover} s. CPU is judged on one-second averages: samples taken faster than that see a core either busy or idle and flip between 0 and 100 %.',
  explainCpu: 'CPU ran out first: the p95 of the trailing {trail} s crossed {pct} % at {at} ({in} into the window).',
  explainRam: 'RAM ran out first: it crossed {pct} % at {at} ({in} into the window).',
  explainUnstressed: 'The load never pushed this VM (CPU p95 under {cpu} %, RAM peak under {ram} %): this run proves nothing about production. Run a heavier load.',
  verdictScope: 'This judges only the load that ran during the window; run the load generator to test the production load.',
  reason_cpu: 'CPU',
  reason_ram: 'RAM',
  decidedBy: 'decided by: {r}',
  lastSample: 'last sample {ago} ago',
  footerRelay: 'relay: {url}',
  stats: '{accepted} records, {dup} duplicates skipped, {invalid} invalid',
  limited: '{n} dropped (older than the 16 minutes kept, or over the memory caps)',
  evicted: '{n} VM names dropped to keep the {max} most active',
  seconds: 's',
  // process states as in /proc/[pid]/stat
  pstate_R: 'running',
  pstate_S: 'sleeping',
  pstate_D: 'disk wait',
  pstate_I: 'idle',
  pstate_Z: 'zombie',
  pstate_T: 'stopped',
  pstate_t: 'traced',
  pstate_X: 'dead',
  hiddenName: 'hidden',
  hiddenNameHelp: 'The relay hides process names unless it runs with -expose-processes.',
  source: 'Source',
  source_kmod: 'kernel modules',
  source_procfs: '/proc fallback',
  source_unknown: 'not reported',
  sourceHelp_kmod: 'Samples read from the vmpulse kernel modules.',
  sourceHelp_procfs: 'Samples read from /proc because the kernel modules were not available.',
  sourceHelp_unknown: 'The records do not say where they were read (another implementation).',
  procfsWarning:
    '{vm}: samples come from the /proc fallback, not the kernel modules. The modules were not loaded on this VM (the agent\'s /healthz says why). The figures are real, but this is not the path under test.',
  replay: 'replay',
  replayBanner:
    'Replay: the newest sample shown was taken at {at}, {lag} before it was stored. Phase 2 sends samples collected earlier; the charts plot each one when it was taken.',
  vmDetail: 'VM {vm}',
  compare: 'VMs side by side',
  compareHelp: 'CPU and RAM as one-second means over the same window; each VM is judged over its own newest {w}. Select a VM for its detail below.',
  compareCharted: 'The charts show the {n} most active VMs.',
  machineType: 'Machine type',
  processesCol: 'Processes (running)',
  verdictCol: 'Verdict',
  sortBy: 'Sort by {col}',
  showDetail: 'Show the detail of {vm}',
  selected: 'selected',
  crossShort: '{r} ran out first, {in} in',
  replayTagHelp: 'These samples were stored {lag} after they were taken.',
  panelError: 'This panel could not be drawn from the latest data; it is retried every second.',
  pageError: 'The dashboard hit an error; reload the page.',
};

export type Key = keyof typeof en;

const es: Record<Key, string> = {
  title: 'vmpulse',
  subtitle: '¿Puede esta VM con producción? Muestras en vivo del agente, a través de las dos rutas de ingesta.',
  vm: 'VM',
  vmUnnamed: '(sin nombre)',
  window: 'Ventana',
  min: 'min',
  language: 'Idioma',
  split: 'Reparto entre las rutas',
  state_connecting: 'conectando',
  state_live: 'en vivo',
  state_reconnecting: 'reconectando',
  state_offline: 'sin conexión',
  retryIn: 'reintento en {s} s',
  cpu: 'CPU',
  ram: 'RAM',
  cpuUse: 'Uso de CPU',
  ramUse: 'Uso de RAM',
  ramMiB: '{used} de {total} MiB en uso',
  points: '{n} muestras en la ventana',
  avgLastSecond: 'media del último segundo ({n} muestras)',
  rawAndMean: 'fina: cada muestra · gruesa: media de 1 s',
  noData: 'Esperando muestras…',
  processes: 'Procesos',
  processesAt: 'última muestra, {hora} UTC',
  state: 'Estado',
  count: 'Cantidad',
  vsMinute: 'vs hace 1 min',
  trend: 'Tendencia',
  running: 'Corriendo',
  sleeping: 'Durmiendo',
  zombie: 'Zombie',
  stopped: 'Parados',
  other: 'Otros (p. ej. espera de disco, hilos del kernel inactivos)',
  total: 'Total',
  sumCheck: 'corriendo + durmiendo + zombie + parados + otros = total',
  sumBroken: 'los estados suman más que el total en este registro',
  topProcesses: 'Procesos con más memoria',
  pid: 'PID',
  name: 'Nombre',
  rss: 'RSS (MiB)',
  routeRace: 'Carrera de rutas',
  routeRaceHelp: 'route1 confirma cada registro en su propia transacción; route2 agrupa peticiones concurrentes en un solo commit. Todas las VMs.',
  route: 'Ruta',
  routeNone: '(sin ruta)',
  rateLive: 'registros/s (últimos 10 s)',
  rateWindow: 'registros/s (ventana)',
  records: 'registros',
  totalRecords: 'total recibido',
  commitLatency: 'latencia de commit',
  capacity: 'Capacidad en esta ventana',
  cpuPeak: 'CPU pico (media 1 s)',
  cpuP95: 'CPU p95 (media 1 s)',
  ramPeak: 'RAM pico',
  ramP95: 'RAM p95',
  recordsReceived: 'registros recibidos',
  covered: 'cubriendo {s}',
  verdict_ok: 'Tiene margen',
  verdict_tight: 'Justa',
  verdict_fail: 'No soporta esta carga',
  verdict_unstressed: 'Sin exigir: no prueba nada',
  verdict_insufficient: 'Aún no hay datos suficientes',
  verdictRule:
    'Regla: no soporta la carga si CPU p95 ≥ {cpuFail} % o RAM pico ≥ {ramFail} %; justa si CPU p95 ≥ {cpuTight} % o RAM pico ≥ {ramTight} %; sin exigir si CPU p95 < {cpuIdle} % y RAM pico < {ramIdle} % (la carga nunca presionó la VM, así que la prueba no demuestra nada); con margen en otro caso. p95 = el 95 % de las muestras estuvo en ese valor o por debajo. Requiere al menos {minSamples} muestras durante {minCover} s. La CPU se juzga en promedios de 1 s: las muestras más rápidas ven un núcleo ocupado o libre y saltan entre 0 y 100 %.',
  explainCpu: 'La CPU se agotó primero: el p95 de los últimos {trail} s superó el {pct} % a las {at} ({in} después del inicio de la ventana).',
  explainRam: 'La RAM se agotó primero: superó el {pct} % a las {at} ({in} después del inicio de la ventana).',
  explainUnstressed: 'La carga nunca presionó esta VM (CPU p95 bajo {cpu} %, RAM pico bajo {ram} %): esta prueba no demuestra nada sobre producción. Ejecute una carga mayor.',
  verdictScope: 'Esto solo juzga la carga que corrió durante la ventana; ejecute el generador de carga para probar la carga de producción.',
  reason_cpu: 'CPU',
  reason_ram: 'RAM',
  decidedBy: 'lo decide: {r}',
  lastSample: 'última muestra hace {ago}',
  footerRelay: 'relay: {url}',
  stats: '{accepted} registros, {dup} duplicados omitidos, {invalid} inválidos',
  limited: '{n} descartados (más antiguos que los 16 minutos guardados, o por encima de los límites de memoria)',
  evicted: '{n} nombres de VM descartados para conservar las {max} más activas',
  seconds: 's',
  pstate_R: 'corriendo',
  pstate_S: 'durmiendo',
  pstate_D: 'espera de disco',
  pstate_I: 'inactivo',
  pstate_Z: 'zombie',
  pstate_T: 'parado',
  pstate_t: 'trazado',
  pstate_X: 'muerto',
  hiddenName: 'oculto',
  hiddenNameHelp: 'El relay oculta los nombres de los procesos salvo que se ejecute con -expose-processes.',
  source: 'Fuente',
  source_kmod: 'módulos del kernel',
  source_procfs: 'respaldo /proc',
  source_unknown: 'no informada',
  sourceHelp_kmod: 'Muestras leídas de los módulos del kernel de vmpulse.',
  sourceHelp_procfs: 'Muestras leídas de /proc porque los módulos del kernel no estaban disponibles.',
  sourceHelp_unknown: 'Los registros no dicen de dónde se leyeron (otra implementación).',
  procfsWarning:
    '{vm}: las muestras vienen del respaldo /proc, no de los módulos del kernel. Los módulos no se cargaron en esta VM (el /healthz del agente dice por qué). Las cifras son reales, pero no es el camino que se prueba.',
  replay: 'repetición',
  replayBanner:
    'Repetición: la muestra más reciente se tomó a las {at}, {lag} antes de guardarse. La fase 2 envía muestras recogidas antes; los gráficos dibujan cada una cuando se tomó.',
  vmDetail: 'VM {vm}',
  compare: 'VMs lado a lado',
  compareHelp: 'CPU y RAM como medias de un segundo en la misma ventana; cada VM se juzga en sus {w} más recientes. Elija una VM para ver su detalle abajo.',
  compareCharted: 'Los gráficos muestran las {n} VMs más activas.',
  machineType: 'Tipo de máquina',
  processesCol: 'Procesos (corriendo)',
  verdictCol: 'Veredicto',
  sortBy: 'Ordenar por {col}',
  showDetail: 'Ver el detalle de {vm}',
  selected: 'elegida',
  crossShort: '{r} se agotó primero, a los {in}',
  replayTagHelp: 'Estas muestras se guardaron {lag} después de tomarse.',
  panelError: 'Este panel no se pudo dibujar con los últimos datos; se reintenta cada segundo.',
  pageError: 'El panel de control tuvo un error; recargue la página.',
};

export const DICTS: Record<Lang, Record<Key, string>> = { en, es };

export type T = (key: Key, vars?: Record<string, string | number>) => string;

/** translator returns t(key, vars) for lang; {name} placeholders are replaced. */
export function translator(lang: Lang): T {
  const d = DICTS[lang];
  return (key, vars) => {
    let s = d[key] ?? en[key] ?? key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
    return s;
  };
}

/** vmLabel is how a VM name is shown: the name, or "(unnamed)" for a record without one. */
export function vmLabel(t: T, vm: string): string {
  return vm === '' ? t('vmUnnamed') : vm;
}

/** fmt formats a number for lang with fixed decimals; "—" for NaN. */
export function fmt(lang: Lang, v: number, decimals = 1): string {
  if (!Number.isFinite(v)) return '—';
  return v.toLocaleString(lang === 'es' ? 'es' : 'en', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}
