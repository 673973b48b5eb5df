#!/usr/bin/env node
// Browser test of the live dashboard against the real local stack.
//
//   npm run test:e2e          (from frontend/; needs `make build` and Debian's chromium)
//
// 1. Starts bin/vmpulse-up (agent sampling this machine every 10 ms = 100 records/s,
//    both routes, the 50/50 split, embedded DB and an in-process Pub/Sub fake) and
//    bin/vmpulse-relay (serving frontend/dist, /config.json and /ws) as processes.
// 2. Opens the dashboard in headless Chromium (playwright-core, no browser download)
//    and checks the charts, the process table and the route race.
// 3. Kills the relay with SIGKILL, checks the page says so, restarts it on the same
//    port and checks the page reconnects and keeps updating.
// 4. Prints time to first chart point, browser CPU at 100 records/s and JS heap, and
//    saves screenshots to frontend/test-results/.
//
// Environment: VMPULSE_BIN (default <repo>/bin), CHROMIUM_PATH (default
// /usr/bin/chromium), CI=true turns a missing binary into a failure instead of a skip,
// E2E_NO_BUILD=1 skips `npm run build`, E2E_MEASURE_S (default 10) sets how long CPU
// is measured.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const frontend = path.resolve(here, '..');
const repo = path.resolve(frontend, '..');
const binDir = path.resolve(process.env.VMPULSE_BIN || path.join(repo, 'bin'));
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const resultsDir = path.join(frontend, 'test-results');
const distDir = path.join(frontend, 'dist');
const measureS = Number(process.env.E2E_MEASURE_S || 10);
const CI = process.env.CI === 'true';
const OVERALL_TIMEOUT_MS = 6 * 60_000;

const upBin = path.join(binDir, 'vmpulse-up');
const relayBin = path.join(binDir, 'vmpulse-relay');

// ---- preconditions -----------------------------------------------------------------

function missing() {
  const m = [];
  if (!isExecutable(upBin)) m.push(`${upBin} (build it with \`make build\` at the repository root, or set VMPULSE_BIN)`);
  if (!isExecutable(relayBin)) m.push(`${relayBin} (build it with \`make build\` at the repository root, or set VMPULSE_BIN)`);
  if (!isExecutable(chromiumPath)) m.push(`${chromiumPath} (install it with \`apt-get install -y chromium\`, or set CHROMIUM_PATH)`);
  return m;
}

function isExecutable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

const lacking = missing();
if (lacking.length) {
  const msg = `dashboard e2e: missing ${lacking.join('; ')}`;
  if (CI) {
    console.error(`FAIL ${msg}`);
    console.error('e2e: 0 passed, 1 failed');
    process.exit(1);
  }
  console.log(`SKIP ${msg}`);
  console.log('e2e: 0 passed, 0 failed, 1 skipped');
  process.exit(0);
}

// ---- helpers -----------------------------------------------------------------------

const procs = new Set();
let currentPage = null; // for a screenshot when something fails
const cleanups = [];
let passed = 0;
const t0 = Date.now();
const log = (...a) => console.log(`[e2e +${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

function ok(name) {
  passed++;
  log(`ok   ${name}`);
}

class CheckError extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckError(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePorts(n) {
  const servers = [];
  const ports = [];
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    await new Promise((res, rej) => {
      s.once('error', rej);
      s.listen(0, '127.0.0.1', res);
    });
    servers.push(s);
    ports.push(s.address().port);
  }
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function start(name, bin, args, env = {}) {
  const logPath = path.join(resultsDir, `${name}.log`);
  const out = fs.openSync(logPath, 'a');
  fs.writeSync(out, `\n=== ${new Date().toISOString()} ${bin} ${args.join(' ')}\n`);
  const child = spawn(bin, args, { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const p = { name, child, logPath, exited: null };
  child.on('exit', (code, signal) => {
    p.exited = { code, signal };
  });
  procs.add(p);
  log(`started ${name} (pid ${child.pid}): ${path.basename(bin)} ${args.join(' ')}`);
  return p;
}

async function stop(p, signal = 'SIGTERM') {
  if (!p || p.exited) {
    procs.delete(p);
    return;
  }
  const gone = new Promise((r) => p.child.once('exit', r));
  p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), 8000);
  await gone;
  clearTimeout(t);
  procs.delete(p);
}

function tail(file, n = 25) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitHealthy(name, url, p, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (p?.exited) throw new CheckError(`${name} exited (${JSON.stringify(p.exited)}) before ${url} was healthy:\n${tail(p.logPath)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = String(e.cause?.code || e.message);
    }
    await sleep(200);
  }
  throw new CheckError(`${name}: GET ${url} not 200 within ${timeoutMs / 1000} s (last: ${last})\n${p ? tail(p.logPath) : ''}`);
}

async function waitFor(desc, fn, timeoutMs = 30_000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last && last.ok) return last;
    await sleep(everyMs);
  }
  throw new CheckError(`timed out after ${timeoutMs / 1000} s waiting for ${desc}; last seen: ${JSON.stringify(last)}`);
}

/** Sum of utime+stime (ticks) of every process whose command line names the profile dir. */
function chromiumTicks(profileDir) {
  let ticks = 0;
  let n = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes(profileDir)) continue;
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
      n++;
    } catch {
      /* gone */
    }
  }
  return { ticks, n };
}

const clkTck = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  return Number(r.stdout?.trim()) || 100;
})();

// ---- the test ----------------------------------------------------------------------

async function main() {
  fs.mkdirSync(resultsDir, { recursive: true });
  for (const f of fs.readdirSync(resultsDir)) if (f.endsWith('.log')) fs.rmSync(path.join(resultsDir, f));

  if (process.env.E2E_NO_BUILD !== '1' || !fs.existsSync(path.join(distDir, 'index.html'))) {
    log('building the dashboard (npm run build)');
    const b = spawnSync('npm', ['run', 'build'], { cwd: frontend, encoding: 'utf8' });
    check(b.status === 0, `npm run build failed:\n${b.stdout}\n${b.stderr}`);
  }

  const [pSplit, pR1, pR2, pAgent, pPubsub, pRelay, pMysql] = await freePorts(7);
  const up = start('vmpulse-up', upBin, [
    '-relay=false',
    '-agent-interval', '10ms',
    '-split-addr', `127.0.0.1:${pSplit}`,
    '-route1-addr', `127.0.0.1:${pR1}`,
    '-route2-addr', `127.0.0.1:${pR2}`,
    '-agent-addr', `127.0.0.1:${pAgent}`,
    '-pubsub-addr', `127.0.0.1:${pPubsub}`,
    // not in the default 3307: another stack on this machine may hold it
    '-mysql-addr', `127.0.0.1:${pMysql}`,
  ]);
  const relayArgs = ['-addr', `127.0.0.1:${pRelay}`, '-web-dir', distDir, '-allowed-origins', `http://127.0.0.1:${pRelay}`];
  const relayEnv = {
    PUBSUB_EMULATOR_HOST: `127.0.0.1:${pPubsub}`,
    PUBSUB_PROJECT: 'vmpulse-local',
    PUBSUB_TOPIC: 'vmpulse-records',
  };
  await waitHealthy('split', `http://127.0.0.1:${pSplit}/healthz`, up);
  await waitHealthy('agent', `http://127.0.0.1:${pAgent}/healthz`, up);
  let relay = start('vmpulse-relay', relayBin, relayArgs, relayEnv);
  await waitHealthy('relay', `http://127.0.0.1:${pRelay}/healthz`, relay);
  ok('stack up: vmpulse-up (split, routes, agent at 10 ms) and vmpulse-relay are healthy');

  const cfgRes = await fetch(`http://127.0.0.1:${pRelay}/config.json`);
  const cfg = await cfgRes.json();
  check(cfgRes.status === 200 && cfg.relayUrl === '', `relay /config.json: ${cfgRes.status} ${JSON.stringify(cfg)}, want {"relayUrl":""}`);
  ok('relay serves /config.json with an empty relayUrl (page uses same-origin /ws)');

  // playwright-core only: no browser download, Debian's chromium.
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vmpulse-e2e-chromium-'));
  cleanups.push(() => fs.rmSync(profile, { recursive: true, force: true }));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 1000 },
    locale: 'es-ES',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  cleanups.push(() => ctx.close().catch(() => {}));
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  currentPage = page;
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    // the browser logs every refused websocket attempt while the relay is down
    if (/WebSocket connection to .* failed/.test(text)) return;
    pageErrors.push(`console.error: ${text}`);
  });

  const url = `http://127.0.0.1:${pRelay}/`;
  currentPageUrl = url;
  const navStart = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  const hooks = () => page.evaluate(() => window.__vmpulse ?? null);
  const points = () =>
    page.evaluate(() => ({
      cpu: Number(document.querySelector('[data-testid="chart-cpu"]')?.getAttribute('data-points') ?? -1),
      ram: Number(document.querySelector('[data-testid="chart-ram"]')?.getAttribute('data-points') ?? -1),
    }));

  // --- charts have points
  await waitFor('both charts to have points', async () => {
    const p = await points();
    return { ok: p.cpu > 0 && p.ram > 0, ...p };
  });
  const firstHooks = await hooks();
  const firstPointMs = firstHooks?.firstPointMs;
  const navTiming = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return n ? { domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd } : {};
  });
  const milestones = { ...navTiming, ...firstHooks?.marks, firstPoint: firstPointMs };
  const firstPointWall = Date.now() - navStart;
  ok(`both charts draw points (first point ${Math.round(firstPointMs)} ms after navigation start)`);

  // --- process table adds up
  const readProcs = () =>
    page.evaluate(() => {
      const n = (k) => {
        const el = document.querySelector(`[data-testid="proc-${k}"]`);
        return el ? Number(el.textContent.replace(/[^\d-]/g, '')) : null;
      };
      return {
        running: n('running'),
        sleeping: n('sleeping'),
        zombie: n('zombie'),
        stopped: n('stopped'),
        other: n('other') ?? 0, // the row is shown only when > 0
        total: n('total'),
      };
    });
  const procsNow = await waitFor('the process table', async () => {
    const p = await readProcs();
    return { ok: p.total !== null && p.total > 0, ...p };
  });
  const sum = procsNow.running + procsNow.sleeping + procsNow.zombie + procsNow.stopped + procsNow.other;
  check(
    sum === procsNow.total,
    `process table does not add up: running ${procsNow.running} + sleeping ${procsNow.sleeping} + zombie ${procsNow.zombie} + stopped ${procsNow.stopped} + other ${procsNow.other} = ${sum}, total ${procsNow.total}`,
  );
  ok(`process table adds up: ${procsNow.running}+${procsNow.sleeping}+${procsNow.zombie}+${procsNow.stopped}+${procsNow.other} = ${procsNow.total}`);

  // --- route race: both routes carry records
  const readRoutes = () =>
    page.evaluate(() => {
      const r = (k) => {
        const el = document.querySelector(`[data-testid="route-${k}"]`);
        return el ? { total: Number(el.getAttribute('data-total')), rate: Number(el.getAttribute('data-rate')) } : null;
      };
      return { route1: r('route1'), route2: r('route2') };
    });
  const routes = await waitFor('both routes to have records', async () => {
    const r = await readRoutes();
    return { ok: (r.route1?.total ?? 0) > 0 && (r.route2?.total ?? 0) > 0, ...r };
  });
  ok(`route race shows both routes: route1 ${routes.route1.total} records, route2 ${routes.route2.total} records`);

  const state = await page.getAttribute('[data-testid="conn-state"]', 'data-state');
  check(state === 'live', `connection state ${state}, want live`);
  ok('connection state is live');

  // --- top processes: shown when the records carry them (ask the agent what it sends)
  const sample = await (await fetch(`http://127.0.0.1:${pAgent}/sample`)).json();
  const topRows = await page.locator('[data-testid="top-procs"] tbody tr').count();
  if (Array.isArray(sample.top_procesos) && sample.top_procesos.length > 0) {
    check(topRows > 0, 'the agent sends top_procesos but the page shows no top processes table');
    ok(`top processes table shows ${topRows} rows`);
  } else {
    check(topRows === 0, `the agent sends no top_procesos but the page shows ${topRows} rows`);
    ok('no top processes table (the agent sends none)');
  }

  // --- language toggle: Spanish by default for an es-ES browser, English after a click
  const pillText = () => page.textContent('[data-testid="conn-state"]');
  check((await pillText()).includes('en vivo'), `Spanish browser, pill says ${JSON.stringify(await pillText())}`);
  check((await page.getAttribute('html', 'lang')) === 'es', `Spanish browser, html lang ${await page.getAttribute('html', 'lang')}`);
  await page.click('[data-testid="lang-toggle"]');
  await waitFor('English labels', async () => ({ ok: (await pillText()).includes('live'), text: await pillText() }), 5000);
  check((await page.getAttribute('html', 'lang')) === 'en', 'html lang not en after the toggle');
  await page.click('[data-testid="lang-toggle"]');
  await waitFor('Spanish labels again', async () => ({ ok: (await pillText()).includes('en vivo') }), 5000);
  ok('labels are Spanish by default for es-ES and switch to English and back');

  // --- window selector
  await page.click('[data-testid="window-300"]');
  check((await page.getAttribute('[data-testid="window-300"]', 'aria-pressed')) === 'true', '5 min window button not pressed');
  await page.click('[data-testid="window-60"]');
  ok('window selector switches');

  // --- measure: browser CPU and heap while the stream runs
  await sleep(2000); // let the rate settle
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Performance.enable', { timeDomain: 'timeTicks' });
  const metric = async () => {
    const { metrics } = await cdp.send('Performance.getMetrics');
    return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
  };
  const m1 = await metric();
  const h1 = await hooks();
  const c1 = chromiumTicks(profile);
  const w1 = Date.now();
  await sleep(measureS * 1000);
  const m2 = await metric();
  const h2 = await hooks();
  const c2 = chromiumTicks(profile);
  const wall = (Date.now() - w1) / 1000;
  const perf = {
    recordsPerS: (h2.accepted - h1.accepted) / wall,
    flushesPerS: (h2.flushes - h1.flushes) / wall,
    rendererMainThreadPct: (100 * (m2.TaskDuration - m1.TaskDuration)) / wall,
    scriptPct: (100 * (m2.ScriptDuration - m1.ScriptDuration)) / wall,
    layoutPct: (100 * ((m2.LayoutDuration ?? 0) - (m1.LayoutDuration ?? 0) + (m2.RecalcStyleDuration ?? 0) - (m1.RecalcStyleDuration ?? 0))) / wall,
    allChromiumPct: (100 * (c2.ticks - c1.ticks)) / clkTck / wall,
    chromiumProcesses: c2.n,
    jsHeapUsedMiB: m2.JSHeapUsedSize / 2 ** 20,
    jsHeapTotalMiB: m2.JSHeapTotalSize / 2 ** 20,
    domNodes: m2.Nodes,
    pointsInWindow: (await points()).cpu,
  };
  check(perf.recordsPerS > 20, `only ${perf.recordsPerS.toFixed(1)} records/s reached the page during the measurement (want ~100)`);
  ok(`stream measured: ${perf.recordsPerS.toFixed(1)} records/s reached the page`);

  fs.mkdirSync(resultsDir, { recursive: true });
  const shotLive = path.join(resultsDir, 'dashboard-live.png');
  await page.screenshot({ path: shotLive, fullPage: true });

  // --- kill the relay: the page must say so
  const before = await hooks();
  await stop(relay, 'SIGKILL');
  log('relay killed with SIGKILL');
  const down = await waitFor(
    'the page to show reconnecting/offline',
    async () => {
      const s = await page.getAttribute('[data-testid="conn-state"]', 'data-state');
      return { ok: s === 'reconnecting' || s === 'offline', state: s };
    },
    15_000,
    100,
  );
  ok(`page shows "${down.state}" after the relay died`);
  const shotDown = path.join(resultsDir, 'dashboard-relay-down.png');
  await page.screenshot({ path: shotDown, fullPage: true });

  // --- restart on the same port: the page must reconnect and keep updating
  relay = start('vmpulse-relay', relayBin, relayArgs, relayEnv);
  await waitHealthy('relay (restarted)', `http://127.0.0.1:${pRelay}/healthz`, relay);
  const restartedAt = Date.now();
  await waitFor(
    'the page to reconnect (state live)',
    async () => {
      const h = await hooks();
      return { ok: h.state === 'live' && h.opens > before.opens, state: h.state, opens: h.opens };
    },
    30_000,
    100,
  );
  const reconnectMs = Date.now() - restartedAt;
  ok(`page reconnected ${reconnectMs} ms after the relay was healthy again`);
  const after = await waitFor(
    'new records after the reconnect',
    async () => {
      const h = await hooks();
      return { ok: h.accepted > before.accepted + 50 && h.latestId !== before.latestId, accepted: h.accepted, latestId: h.latestId };
    },
    30_000,
  );
  const pAfter = await points();
  check(pAfter.cpu > 0 && pAfter.ram > 0, `charts empty after the reconnect: ${JSON.stringify(pAfter)}`);
  ok(`page keeps updating: ${after.accepted - before.accepted} new records, latest id ${before.latestId} → ${after.latestId}, ${pAfter.cpu} points in window`);
  const procsAfter = await readProcs();
  const sumAfter = procsAfter.running + procsAfter.sleeping + procsAfter.zombie + procsAfter.stopped + procsAfter.other;
  check(sumAfter === procsAfter.total, `process table does not add up after the reconnect: ${JSON.stringify(procsAfter)}`);
  await sleep(1500);
  const shotAfter = path.join(resultsDir, 'dashboard-after-reconnect.png');
  await page.screenshot({ path: shotAfter, fullPage: true });

  check(pageErrors.length === 0, `the page reported errors:\n${pageErrors.join('\n')}`);
  ok('no page errors');

  await malformedRecords(ctx);

  const hFinal = await hooks();
  console.log('');
  console.log('measurements');
  console.log(`  time to first chart point : ${Math.round(firstPointMs)} ms after navigation start (${firstPointWall} ms wall, incl. waiting for the first batch)`);
  console.log(
    `    milestones (ms)          : ${Object.entries(milestones)
      .map(([k, v]) => `${k} ${Math.round(v)}`)
      .join(', ')}`,
  );
  console.log(`  records/s reaching the page: ${perf.recordsPerS.toFixed(1)} (UI flushes/s: ${perf.flushesPerS.toFixed(1)})`);
  console.log(`  renderer main thread busy  : ${perf.rendererMainThreadPct.toFixed(1)} % of one core (CDP TaskDuration over ${wall.toFixed(1)} s)`);
  console.log(`    of which script          : ${perf.scriptPct.toFixed(1)} %, style+layout ${perf.layoutPct.toFixed(1)} %`);
  console.log(`  all chromium processes     : ${perf.allChromiumPct.toFixed(1)} % of one core (${perf.chromiumProcesses} processes, /proc utime+stime)`);
  console.log(`  JS heap                    : ${perf.jsHeapUsedMiB.toFixed(1)} MiB used / ${perf.jsHeapTotalMiB.toFixed(1)} MiB total; DOM nodes ${perf.domNodes}`);
  console.log(`  chart points in 1 min window: ${perf.pointsInWindow}; records received ${hFinal.accepted}, duplicates skipped ${hFinal.duplicates}`);
  console.log(`  reconnect after relay restart: ${reconnectMs} ms`);
  console.log('screenshots');
  for (const s of [shotLive, shotDown, shotAfter]) console.log(`  ${s}`);
  fs.writeFileSync(
    path.join(resultsDir, 'measurements.json'),
    JSON.stringify({ firstPointMs, firstPointWall, milestones, reconnectMs, ...perf, screenshots: [shotLive, shotDown, shotAfter] }, null, 2),
  );
}

/**
 * A page whose websocket is answered by the test itself (no relay) with records of
 * shapes the contract does not allow: top_procesos with null and a non-string name,
 * a numeric hora. The page must keep rendering (it used to throw during render and
 * React unmounted everything) and ignore the relay's {"type":"ping"} keepalive.
 */
async function malformedRecords(ctx) {
  const page = await ctx.newPage();
  currentPage = page;
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
  });
  const now = Date.now();
  const rec = (i, extra = {}) => ({
    id: `mock-${i}`,
    vm: 'mock-vm',
    total_ram: 2048,
    ram_libre: 1024,
    uso_ram: 1024,
    porcentaje_ram: 50,
    porcentaje_cpu_uso: 20,
    porcentaje_cpu_libre: 80,
    procesos_corriendo: 2,
    total_procesos: 100,
    procesos_durmiendo: 98,
    procesos_zombie: 0,
    procesos_parados: 0,
    hora: new Date(now - (40 - i) * 1000).toISOString().slice(0, 19).replace('T', ' '),
    ...extra,
  });
  const items = Array.from({ length: 40 }, (_, i) => ({
    route: i % 2 ? 'route2' : 'route1',
    commit_ms: 2,
    stored_at: new Date(now - (40 - i) * 1000).toISOString(),
    record: rec(i, i === 10 ? { hora: 12345 } : {}),
  }));
  items[39].record.top_procesos = [
    null,
    { pid: 1, name: { evil: true }, state: 'S', rss_mib: 1 },
    { pid: 2, name: 42, state: 'R', rss_mib: 2 },
    { pid: 3, name: 'good-proc', state: 'S', rss_mib: 3 },
  ];
  await page.routeWebSocket(/\/ws$/, (ws) => {
    ws.send(JSON.stringify({ type: 'history', items }));
    ws.send(JSON.stringify({ type: 'ping' }));
  });
  await page.goto(currentPageUrl, { waitUntil: 'load' });
  const seen = await waitFor(
    'the page with malformed records to render its charts and process table',
    async () =>
      page.evaluate(() => {
        const pts = Number(document.querySelector('[data-testid="chart-cpu"]')?.getAttribute('data-points') ?? -1);
        const top = [...document.querySelectorAll('[data-testid="top-procs"] tbody tr')].map((tr) => tr.textContent);
        const panelErrors = document.querySelectorAll('[data-testid="panel-error"]').length;
        const blank = !document.querySelector('[data-testid="conn-state"]');
        return { ok: pts === 40 && top.length === 1, pts, top, panelErrors, blank };
      }),
    15_000,
  );
  check(seen.panelErrors === 0, `panels failed to render: ${JSON.stringify(seen)}`);
  check(seen.top[0].includes('good-proc'), `top processes: ${JSON.stringify(seen.top)}`);
  check(errors.length === 0, `the page with malformed records reported errors:\n${errors.join('\n')}`);
  ok('malformed records (top_procesos [null], non-string name, numeric hora) are dropped or fixed; the page keeps rendering');
  await page.close();
}

let currentPageUrl = '';

async function cleanup() {
  for (const p of [...procs]) await stop(p);
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch {
      /* ignore */
    }
  }
}

const watchdog = setTimeout(() => {
  console.error(`FAIL dashboard e2e: no result within ${OVERALL_TIMEOUT_MS / 60000} min`);
  for (const p of procs) p.child.kill('SIGKILL');
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

let failed = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    await cleanup();
    process.exit(130);
  });
}
try {
  await main();
} catch (e) {
  failed = true;
  console.error(`\nFAIL dashboard e2e: ${e instanceof CheckError ? e.message : e.stack}`);
  for (const p of procs) console.error(`--- ${p.name} log (${p.logPath}):\n${tail(p.logPath)}`);
  if (currentPage) {
    const shot = path.join(resultsDir, 'dashboard-failure.png');
    try {
      await currentPage.screenshot({ path: shot, fullPage: true, timeout: 5000 });
      console.error(`screenshot of the failure: ${shot}`);
    } catch {
      /* the browser is gone */
    }
  }
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
console.log(`\ne2e: ${passed} passed, ${failed ? 1 : 0} failed`);
process.exit(failed ? 1 : 0);
