/**
 * Shared by the benchmarks: a fresh database on the PostgreSQL at 127.0.0.1
 * (BENCH_DATABASE_URL overrides), the built `apctl` as real platform and agent
 * processes, percentiles, and the table + JSON-line report.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { createStore, type Store } from '../packages/platform/src/store/index.js';
import { ProcessGroup, freePort, tempDir, waitFor, type Proc } from '../test/support/procs.js';
import { AUTH_HEADERS } from '../test/support/security.js';

// Benchmarks start platforms the way the tests do (ProcessGroup: plaintext, the
// harness's admin token). Every fetch made in a benchmark process carries that
// token unless it sets its own Authorization header.
const plainFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const headers = new Headers(init?.headers);
  for (const [k, v] of Object.entries(AUTH_HEADERS)) if (!headers.has(k)) headers.set(k, v);
  return plainFetch(input, { ...init, headers });
};

export const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export async function freshDatabase(prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`;
  const admin = new pg.Client({ connectionString: SERVER_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const u = new URL(SERVER_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: SERVER_URL });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export interface Cluster {
  procs: ProcessGroup;
  platform: Proc;
  http: string;
  grpcPort: number;
  db: { url: string; drop(): Promise<void> };
  agents: Proc[];
  /** Agent ids, in start order. */
  agentIds: string[];
  stop(): Promise<void>;
}

/** A platform process and `agents` agent processes, all online. */
export async function startCluster(
  name: string,
  agents: number,
  capacity = 5,
  extraAgentArgs: string[] = [],
): Promise<Cluster> {
  const procs = new ProcessGroup();
  const db = await freshDatabase(`ap_bench_${name}`);
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const http = `http://127.0.0.1:${httpPort}`;
  const env = { DATABASE_URL: db.url, AP_LOG_LEVEL: 'warn' };
  // BENCH_NODE_ARGS: node flags for the platform and agent processes, e.g. `--cpu-prof
  // --cpu-prof-dir=/tmp/prof` (written when a process exits on SIGTERM; see stopGracefully).
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const platform = procs.start(
    ['server', '--grpc-listen', `127.0.0.1:${grpcPort}`, '--http-listen', `127.0.0.1:${httpPort}`],
    env,
    nodeArgs,
  );
  await waitFor('platform', async () => (await fetch(`${http}/healthz`).catch(() => undefined))?.ok, 30_000);
  const work = tempDir(`bench-${name}`);
  const agentProcs: Proc[] = [];
  for (let i = 0; i < agents; i++) {
    agentProcs.push(
      procs.start(
        [
          'agent',
          '--server',
          `127.0.0.1:${grpcPort}`,
          '--state-dir',
          path.join(work, `a${i}`),
          '--labels',
          `bench=${name},i=${i}`,
          '--capacity',
          String(capacity),
          ...extraAgentArgs,
        ],
        { AP_LOG_LEVEL: 'warn' },
        nodeArgs,
      ),
    );
  }
  const ids = await waitFor(
    `${agents} agents online`,
    async () => {
      const r = await fetch(`${http}/api/v1/agents?status=online&label=bench=${name}&limit=1000`);
      const body = (await r.json()) as { agents: { agent_id: string; labels: Record<string, string> }[] };
      if (body.agents.length !== agents) return undefined;
      return body.agents.sort((a, b) => Number(a.labels.i) - Number(b.labels.i)).map((a) => a.agent_id);
    },
    60_000,
    200,
  );
  return {
    procs,
    platform,
    http,
    grpcPort,
    db,
    agents: agentProcs,
    agentIds: ids,
    async stop() {
      if (nodeArgs.some((a) => a.startsWith('--cpu-prof') || a.startsWith('--heap-prof'))) {
        // Profiles are written at a normal exit: SIGTERM (an orderly stop), then wait.
        for (const p of [...agentProcs, platform]) {
          try {
            process.kill(p.pid, 'SIGTERM');
          } catch {
            // gone
          }
        }
        await Promise.race([
          Promise.all([...agentProcs, platform].map((p) => p.exited)),
          new Promise((r) => setTimeout(r, 10_000)),
        ]);
      }
      await procs.killAll();
      await db.drop();
    },
  };
}

/** The value after `--name` on the command line, or `def`. */
export function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

export function summarize(samples: number[]): { p50: number; p99: number; mean: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(s, 50),
    p99: percentile(s, 99),
    mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length),
    n: s.length,
  };
}

export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Prints a markdown table and then, last, one JSON line. */
export function report(
  title: string,
  header: string[],
  rows: (string | number)[][],
  json: Record<string, unknown>,
): void {
  console.log(`\n## ${title}\n`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`| ${header.map(() => '---').join(' | ')} |`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  console.log('');
  console.log(JSON.stringify(json));
}

/** One bare `sh -c true` spawn, output read, as the baseline the platform is measured against. */
export function bareSpawn(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', 'true'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', () => resolve());
  });
}

/** Bare spawns per second with `parallel` at once, over `total` spawns. */
export async function bareSpawnRate(total: number, parallel: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < total) {
        next++;
        await bareSpawn();
      }
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 64 });

/**
 * POST JSON over a kept-alive node:http connection. Not `fetch`: the load
 * generator shares the machine's two cores with what it measures, and undici's
 * fetch spends several times the CPU per call of a plain http.request.
 */
export async function postJson<T>(url: string, body: unknown): Promise<T> {
  return JSON.parse(await httpText('POST', url, JSON.stringify(body))) as T;
}

/** POST whose answer is an event stream (create with follow=1): the whole body, at its end. */
export function postText(url: string, body: unknown): Promise<string> {
  return httpText('POST', url, JSON.stringify(body));
}

/** GET over the same kept-alive connections; resolves with the whole body (an SSE stream: at its end). */
export function getText(url: string): Promise<string> {
  return httpText('GET', url);
}

function httpText(method: string, url: string, payload?: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const headers: Record<string, string | number> = { ...AUTH_HEADERS };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    const req = http.request(url, { method, agent: keepAlive, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) reject(new Error(`${status} ${text}`));
        else resolve(text);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on Linux/x86). */
export const CLK_TCK = 100;

/** The counters of /proc/<pid>/stat the benches use; times in clock ticks (CLK_TCK). Throws when gone. */
export interface ProcStat {
  ppid: number;
  minflt: number;
  /** Minor faults of the children it has reaped. */
  cminflt: number;
  utime: number;
  stime: number;
  /** CPU time of the children it has reaped. */
  cutime: number;
  cstime: number;
}

export function procStat(pid: number): ProcStat {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name, which may hold spaces and parentheses.
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  return {
    ppid: f[1]!,
    minflt: f[7]!,
    cminflt: f[8]!,
    utime: f[11]!,
    stime: f[12]!,
    cutime: f[13]!,
    cstime: f[14]!,
  };
}

/** RSS (bytes) and CPU time used so far (user + system, seconds) of a process, from /proc. */
export function procSample(pid: number): { rssBytes: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  const st = procStat(pid);
  return { rssBytes: rssKb * 1024, cpuSeconds: (st.utime + st.stime) / CLK_TCK };
}

/** `f` of the /proc stat of several processes, summed (ones that have exited count as 0). */
function sumOverProcs(pids: number[], f: (st: ProcStat) => number): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      sum += f(procStat(pid));
    } catch {
      // gone
    }
  }
  return sum;
}

/** Minor page faults of several processes together. */
export const minorFaultsOf = (pids: number[]): number => sumOverProcs(pids, (st) => st.minflt);

/** CPU seconds of several processes together. */
export const cpuSecondsOf = (pids: number[]): number =>
  sumOverProcs(pids, (st) => (st.utime + st.stime) / CLK_TCK);

/**
 * CPU seconds of a process and everything under it: its own time, the time of
 * its children it has reaped (cutime/cstime), and, recursively, its live
 * children's. For an agent: itself, its spawn helper and the task processes the
 * helper reaped.
 */
export function treeCpuSeconds(pid: number): number {
  let st: ProcStat;
  try {
    st = procStat(pid);
  } catch {
    return 0; // gone
  }
  let ticks = st.utime + st.stime + st.cutime + st.cstime;
  let sum = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const k of kids ? kids.split(' ') : []) sum += treeCpuSeconds(Number(k));
    }
  } catch {
    ticks += 0; // exited meanwhile
  }
  return ticks / CLK_TCK + sum;
}

/**
 * Whole-machine CPU counters from /proc/stat, seconds summed over all cores.
 * `busy`: this machine's own work (user, system, interrupts), without `steal`:
 * time a virtual CPU wanted to run while the hypervisor ran something else.
 * On this VM steal was 10-35 % of all CPU time while benchmarks ran, so it is
 * reported apart: counted as busy it would make every CPU-per-task figure grow
 * with the neighbours' load.
 */
export function machineCpu(): { busy: number; steal: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const steal = v[7] ?? 0;
  return { busy: (total - idle - steal) / CLK_TCK, steal: steal / CLK_TCK, total: total / CLK_TCK };
}

/** Steal as a percentage of all CPU time between two {@link machineCpu} readings. */
export const stealPct = (a: { steal: number; total: number }, b: { steal: number; total: number }): number =>
  b.total > a.total ? (100 * (b.steal - a.steal)) / (b.total - a.total) : 0;

export const MB = 1024 * 1024;

export { succeededResult } from '../test/support/tasks.js';

/**
 * The platform's store on a fresh, migrated database, with `settings` (e.g.
 * `synchronous_commit`) set for the database before the store connects.
 */
export async function scratchStore(
  prefix: string,
  settings: Record<string, string> = {},
): Promise<{ store: Store; url: string; drop(): Promise<void> }> {
  const db = await freshDatabase(prefix);
  const admin = new pg.Client(db.url);
  await admin.connect();
  try {
    for (const [name, value] of Object.entries(settings))
      await admin.query(`alter database ${new URL(db.url).pathname.slice(1)} set ${name} = ${value}`);
  } finally {
    await admin.end();
  }
  const store = createStore({ databaseUrl: db.url, logger: pino({ level: 'warn' }) });
  await store.migrate();
  return {
    store,
    url: db.url,
    async drop() {
      await store.close();
      await db.drop();
    },
  };
}
