// The real processes the browser test runs against, on free ports: bin/vmpulse-up (agents,
// the split, both routes, embedded MySQL and Pub/Sub), bin/vmpulse-relay (which the test
// kills and restarts) and bin/vmpulse-web (the page and its /config.json, as on Cloud Run).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { BIN, CHROMIUM, DIST, REPO, RESULTS } from './paths';

export const UP = path.join(BIN, 'vmpulse-up');
export const RELAY = path.join(BIN, 'vmpulse-relay');
export const WEB = path.join(BIN, 'vmpulse-web');

/** missing lists what the test needs and cannot find, each with how to get it. */
export function missing(bins: string[]): string[] {
  const m: string[] = [];
  for (const b of bins) {
    if (!isExecutable(b)) m.push(`${b} (build it with \`make build\` at the repository root, or set VMPULSE_BIN)`);
  }
  if (!isExecutable(CHROMIUM)) m.push(`${CHROMIUM} (install it with \`apt-get install -y chromium\`, or set CHROMIUM_PATH)`);
  if (!fs.existsSync(path.join(DIST, 'index.html'))) m.push(`${DIST}/index.html (npm run build)`);
  return m;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** freePorts reserves n ports at once (so they differ) and frees them. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    await new Promise<void>((res, rej) => {
      s.once('error', rej);
      s.listen(0, '127.0.0.1', res);
    });
    servers.push(s);
  }
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** freeRun finds n consecutive free ports (several agents listen at base, base+1, …). */
export async function freeRun(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const servers: net.Server[] = [];
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      const s = net.createServer();
      ok = await new Promise<boolean>((res) => {
        s.once('error', () => res(false));
        s.listen(base + i, '127.0.0.1', () => res(true));
      });
      if (ok) servers.push(s);
    }
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    if (ok) return base;
  }
  throw new Error(`no run of ${n} free ports`);
}

export interface Proc {
  name: string;
  child: ChildProcess;
  logPath: string;
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
}

const live = new Set<Proc>();

export function start(name: string, bin: string, args: string[], env: Record<string, string> = {}): Proc {
  fs.mkdirSync(RESULTS, { recursive: true });
  const logPath = path.join(RESULTS, `${name}.log`);
  const out = fs.openSync(logPath, 'a');
  fs.writeSync(out, `\n=== ${new Date().toISOString()} ${bin} ${args.join(' ')}\n`);
  const child = spawn(bin, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const p: Proc = { name, child, logPath, exited: null };
  child.on('exit', (code, signal) => {
    p.exited = { code, signal };
    live.delete(p);
  });
  live.add(p);
  return p;
}

export async function stop(p: Proc | null, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || p.exited) return;
  const gone = new Promise((r) => p.child.once('exit', r));
  p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

export async function stopAll(): Promise<void> {
  for (const p of [...live]) await stop(p);
}

export function tail(p: Proc, n = 30): string {
  try {
    return fs.readFileSync(p.logPath, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

/** waitHealthy polls the URLs until one answers 200; the process must not exit meanwhile. */
export async function waitHealthy(p: Proc, urls: string[], timeoutMs = 120_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (p.exited) throw new Error(`${p.name} exited (${JSON.stringify(p.exited)}) before it was healthy:\n${tail(p)}`);
    for (const u of urls) {
      try {
        const res = await fetch(u, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return u;
        last = `${u}: HTTP ${res.status}`;
      } catch (e) {
        last = `${u}: ${String((e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message)}`;
      }
    }
    await sleep(200);
  }
  throw new Error(`${p.name}: not healthy within ${timeoutMs / 1000} s (last: ${last})\n${tail(p)}`);
}

export interface Stack {
  webUrl: string;
  relayPort: number;
  mysqlPort: number;
  agentPorts: number[];
  /** how many agents (VMs) vmpulse-up was asked for */
  agents: number;
  relay: Proc;
  killRelay(): Promise<void>;
  startRelay(): Promise<void>;
  /** ids MySQL stored with stored_at in [fromMs, toMs) */
  storedIds(fromMs: number, toMs: number): Promise<{ id: string; storedAtMs: number }[]>;
  storedVms(): Promise<string[]>;
  close(): Promise<void>;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
/** sqlTime formats epoch ms as a DATETIME(6) literal in UTC. */
export function sqlTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}000`;
}

/**
 * startStack starts the whole pipeline: `agents` named agents at about 100 samples/s
 * in all; the relay with a history that covers the test; the page served by
 * vmpulse-web, pointed at the relay.
 */
export async function startStack(agents: number): Promise<Stack> {
  const [pSplit, pR1, pR2, pPubsub, pRelay, pMysql, pWeb] = await freePorts(7);
  const pAgent = await freeRun(agents);
  const interval = agents > 1 ? `${Math.round(10 * agents)}ms` : '10ms';
  const upArgs = [
    '-relay=false',
    '-agent-interval', interval,
    '-split-addr', `127.0.0.1:${pSplit}`,
    '-route1-addr', `127.0.0.1:${pR1}`,
    '-route2-addr', `127.0.0.1:${pR2}`,
    '-agent-addr', `127.0.0.1:${pAgent}`,
    '-pubsub-addr', `127.0.0.1:${pPubsub}`,
    // not the default 3307: another stack on this machine may hold it
    '-mysql-addr', `127.0.0.1:${pMysql}`,
  ];
  if (agents > 1) upArgs.push('-agents', String(agents));
  // the built-in feeder posts each agent's latest sample this often (default 1 s)
  upArgs.push('-feed-interval', interval);
  // a token of this run's own, not the repository's .vmpulse/ingest-token
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmpulse-e2e-'));
  upArgs.push('-token-file', path.join(tmp, 'ingest-token'));
  const up = start('vmpulse-up', UP, upArgs);
  await waitHealthy(up, [`http://127.0.0.1:${pSplit}/healthz`]);
  const agentPorts = Array.from({ length: agents }, (_, i) => pAgent + i);
  for (const p of agentPorts) await waitHealthy(up, [`http://127.0.0.1:${p}/healthz`]);

  const webOrigin = `http://127.0.0.1:${pWeb}`;
  const relayArgs = ['-addr', `127.0.0.1:${pRelay}`, '-allowed-origins', webOrigin];
  // history for every client that covers the test at 100 records/s; /metrics (on its own
  // loopback address, default 127.0.0.1:9090) off, as another relay may hold that port
  relayArgs.push('-history', '30000', '-metrics-addr=');
  const relayEnv = {
    PUBSUB_EMULATOR_HOST: `127.0.0.1:${pPubsub}`,
    PUBSUB_PROJECT: 'vmpulse-local',
    PUBSUB_TOPIC: 'vmpulse-records',
  };
  const relayHealth = [`http://127.0.0.1:${pRelay}/health`];
  const stack: Stack = {
    webUrl: `${webOrigin}/`,
    relayPort: pRelay,
    mysqlPort: pMysql,
    agentPorts,
    agents,
    relay: start('vmpulse-relay', RELAY, relayArgs, relayEnv),
    async killRelay() {
      await stop(this.relay, 'SIGKILL');
    },
    async startRelay() {
      this.relay = start('vmpulse-relay', RELAY, relayArgs, relayEnv);
      await waitHealthy(this.relay, relayHealth);
    },
    async storedIds(fromMs, toMs) {
      const [rows] = await db.query(
        'SELECT id, DATE_FORMAT(stored_at, "%Y-%m-%dT%H:%i:%s.%fZ") AS s FROM records WHERE stored_at >= ? AND stored_at < ?',
        [sqlTime(fromMs), sqlTime(toMs)],
      );
      return (rows as { id: string; s: string }[]).map((r) => ({ id: r.id, storedAtMs: Date.parse(r.s.replace(/(\.\d{3})\d+/, '$1')) }));
    },
    async storedVms() {
      const [rows] = await db.query('SELECT DISTINCT vm FROM records');
      return (rows as { vm: string }[]).map((r) => r.vm).sort();
    },
    async close() {
      await db.end().catch(() => {});
      await stopAll();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
  await waitHealthy(stack.relay, relayHealth);
  const web = start('vmpulse-web', WEB, ['-addr', `127.0.0.1:${pWeb}`, '-dir', DIST, '-relay-url', `ws://127.0.0.1:${pRelay}/ws`]);
  await waitHealthy(web, [`${webOrigin}/healthz`]);
  const db = mysql.createPool({ host: '127.0.0.1', port: pMysql, user: 'root', database: 'vmpulse', connectionLimit: 2 });
  return stack;
}

/** startWeb serves the page alone (the test answers its websocket itself). */
export async function startWeb(): Promise<{ url: string; close(): Promise<void> }> {
  const [pWeb] = await freePorts(1);
  const web = start('vmpulse-web-alone', WEB, ['-addr', `127.0.0.1:${pWeb}`, '-dir', DIST]);
  await waitHealthy(web, [`http://127.0.0.1:${pWeb}/healthz`]);
  return { url: `http://127.0.0.1:${pWeb}/`, close: () => stop(web) };
}
