/**
 * `npm run bench:fleet -- --agents N`: one platform process (`apctl server`,
 * the built bundle) on a fresh database on the PostgreSQL at 127.0.0.1, and N
 * simulated agents (bench/fleet-sim.ts: the real protocol over real gRPC, one
 * connection each, no spawning) spread over several load-generator processes.
 *
 * Measures, in one run:
 *   1. platform RSS idle, then with N agents connected -> RSS per agent;
 *   2. platform CPU while the N agents only heartbeat (utime+stime from /proc
 *      over --cpu-seconds), and the CPU of this database's PostgreSQL backends;
 *   3. dispatch: --tasks `echo hi` tasks created through REST by every
 *      load-generator process at once (--clients concurrent requests in all),
 *      answered by the simulated agents; tasks/s and latency p50/p99 from the
 *      database's created_at / completed_at.
 * Goals (2 cores): 10,000 agents within 1 GiB platform RSS; >= 2,000 tasks/s.
 *
 * Options: --agents N (default 2000), --sims P load-generator processes
 * (default max(2, ceil(N / 2500))), --tasks T (default 20000), --clients C
 * (default 64), --cpu-seconds S (default 30), --heartbeat-interval S (the
 * platform's, default 10 as in production), --profile (node --cpu-prof on the
 * platform; the profile is written at its clean SIGTERM exit and its top
 * functions by self time are printed).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ProcessGroup, freePort, tempDir, waitFor } from '../test/support/procs.js';
import { MB, cpuSecondsOf, freshDatabase, machineCpu, procSample, report, round } from './support.js';
import type { SimCommand, SimEvent, SimStats } from './fleet-sim.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const N = Number(arg('agents', '2000'));
const SIMS = Number(arg('sims', String(Math.max(2, Math.ceil(N / 2500)))));
const TASKS = Number(arg('tasks', '20000'));
const CLIENTS = Number(arg('clients', '64'));
const CPU_SECONDS = Number(arg('cpu-seconds', '30'));
const HB_INTERVAL = Number(arg('heartbeat-interval', '10'));
const PROFILE = process.argv.includes('--profile');
const LABEL = 'fleet';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Soft limit on open files; the platform inherits it and needs one per agent plus its own. */
function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? 1024);
}

/** A load-generator process and a way to ask it something. */
class SimProc {
  readonly child: ChildProcess;
  private waiting: ((e: SimEvent) => void)[] = [];
  constructor() {
    this.child = fork(path.join(import.meta.dirname, 'fleet-sim.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (e: SimEvent) => this.waiting.shift()?.(e));
  }
  ask<E extends SimEvent>(c: SimCommand): Promise<E> {
    return new Promise((resolve) => {
      this.waiting.push((e) => resolve(e as E));
      this.child.send(c);
    });
  }
}

/** Top functions by self time in a .cpuprofile (V8's format). */
function profileTop(file: string, top: number): { rows: (string | number)[][]; totalMs: number } {
  interface Node {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }
  const p = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: Node[];
    samples: number[];
    timeDeltas: number[];
    startTime: number;
    endTime: number;
  };
  const totalMs = (p.endTime - p.startTime) / 1000;
  const perSample = totalMs / Math.max(1, p.samples.length);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  for (const id of p.samples) {
    const n = byId.get(id);
    if (!n) continue;
    const f = n.callFrame;
    const where = f.url
      ? `${f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${f.lineNumber + 1}`
      : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + perSample);
  }
  const idle = self.get('(idle)') ?? 0;
  const busy = totalMs - idle;
  const rows = [...self.entries()]
    .filter(([k]) => k !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, ms]) => [k.replaceAll('|', '\\|'), round(ms, 0), `${round((100 * ms) / busy, 1)} %`]);
  return { rows, totalMs: busy };
}

if (openFilesLimit() < N + 1000) {
  console.error(
    `open files limit ${openFilesLimit()} is too low for ${N} agents on one platform process: run \`ulimit -n ${N + 2000}\` first (hard limit permitting)`,
  );
  process.exit(2);
}

// Whatever else runs on this machine skews every number below: measure it first.
const m0 = machineCpu();
await sleep(2000);
const m1 = machineCpu();
const otherLoad = (100 * (m1.busy - m0.busy)) / (m1.total - m0.total);

const procs = new ProcessGroup();
const db = await freshDatabase('ap_bench_fleet');
const sims: SimProc[] = [];
const profDir = tempDir('fleet-prof');
const samples: number[] = [];
try {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const http = `http://127.0.0.1:${httpPort}`;
  const platform = procs.start(
    ['server', '--grpc-listen', `127.0.0.1:${grpcPort}`, '--http-listen', `127.0.0.1:${httpPort}`],
    { DATABASE_URL: db.url, AP_LOG_LEVEL: 'warn', AP_HEARTBEAT_INTERVAL: String(HB_INTERVAL) },
    PROFILE ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [],
  );
  await waitFor('platform', async () => (await fetch(`${http}/healthz`).catch(() => undefined))?.ok, 30_000);
  const rssSampler = setInterval(() => {
    try {
      samples.push(procSample(platform.pid).rssBytes);
    } catch {
      // exited
    }
  }, 500);
  rssSampler.unref();
  await sleep(3000);
  const idle = procSample(platform.pid);

  const pgc = new pg.Client({ connectionString: db.url });
  await pgc.connect();
  const dbName = new URL(db.url).pathname.slice(1);
  /** This database's PostgreSQL backends (the platform's pool and LISTEN connection). */
  const backends = async () =>
    (
      await pgc.query<{ pid: number }>(
        `select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`,
        [dbName],
      )
    ).rows.map((r) => r.pid);

  // 1. Connect the fleet.
  for (let i = 0; i < SIMS; i++) sims.push(new SimProc());
  const tConnect = performance.now();
  const connected = await Promise.all(
    sims.map((s, i) =>
      s.ask<Extract<SimEvent, { ev: 'connected' }>>({
        cmd: 'connect',
        address: `127.0.0.1:${grpcPort}`,
        count: Math.floor(N / SIMS) + (i < N % SIMS ? 1 : 0),
        capacity: 5,
        label: LABEL,
        concurrency: 50,
      }),
    ),
  );
  const connectS = (performance.now() - tConnect) / 1000;
  const failed = connected.reduce((a, c) => a + c.failed, 0);
  const online = await waitFor(
    `${N - failed} agents online`,
    async () => {
      const { rows } = await pgc.query<{ n: string }>(
        `select count(*) as n from agents where status = 'online'`,
      );
      const n = Number(rows[0]?.n);
      return n >= N - failed ? n : undefined;
    },
    60_000,
    500,
  );
  await sleep(5000);
  const withAgents = procSample(platform.pid);

  // 2. Heartbeats only.
  const stats = () => Promise.all(sims.map((s) => s.ask<SimStats>({ cmd: 'stats' })));
  const sum = (xs: SimStats[], k: keyof SimStats) => xs.reduce((a, x) => a + (x[k] as number), 0);
  const simPids = sims.map((s) => s.child.pid ?? 0);
  const hbStats0 = await stats();
  const pgPids = await backends();
  const hb0 = {
    plat: procSample(platform.pid).cpuSeconds,
    pg: cpuSecondsOf(pgPids),
    sims: cpuSecondsOf(simPids),
    m: machineCpu(),
    t: performance.now(),
  };
  await sleep(CPU_SECONDS * 1000);
  const hb1 = {
    plat: procSample(platform.pid).cpuSeconds,
    pg: cpuSecondsOf(pgPids),
    sims: cpuSecondsOf(simPids),
    m: machineCpu(),
    t: performance.now(),
  };
  const hbStats1 = await stats();
  const hbWall = (hb1.t - hb0.t) / 1000;
  const hbPlatCpu = (100 * (hb1.plat - hb0.plat)) / hbWall;
  const hbPgCpu = (100 * (hb1.pg - hb0.pg)) / hbWall;
  const heartbeats = sum(hbStats1, 'heartbeats') - sum(hbStats0, 'heartbeats');
  const heartbeatAcks = sum(hbStats1, 'heartbeatAcks') - sum(hbStats0, 'heartbeatAcks');
  const afterHeartbeats = procSample(platform.pid);

  // 3. Dispatch: a warm-up round, then the measured one; both created from every sim process.
  const dispatch = async (tasks: number) => {
    const per = Math.ceil(tasks / SIMS);
    const conc = Math.max(1, Math.ceil(CLIENTS / SIMS));
    const pids = await backends();
    const c0 = {
      plat: procSample(platform.pid).cpuSeconds,
      pg: cpuSecondsOf(pids),
      sims: cpuSecondsOf(simPids),
      m: machineCpu(),
      t: performance.now(),
    };
    const created = await Promise.all(
      sims.map((s) =>
        s.ask<Extract<SimEvent, { ev: 'created' }>>({ cmd: 'create', http, tasks: per, concurrency: conc }),
      ),
    );
    const createS = (performance.now() - c0.t) / 1000;
    await waitFor(
      'every task finished',
      async () => {
        const { rows } = await pgc.query<{ n: string }>(
          `select count(*) as n from tasks where status in ('pending', 'dispatched', 'running')`,
        );
        return rows[0]?.n === '0';
      },
      60_000 + tasks * 10,
      100,
    );
    const c1 = {
      plat: procSample(platform.pid).cpuSeconds,
      pg: cpuSecondsOf(pids),
      sims: cpuSecondsOf(simPids),
      m: machineCpu(),
      t: performance.now(),
    };
    const wall = (c1.t - c0.t) / 1000;
    return {
      ok: created.reduce((a, c) => a + c.ok, 0),
      errors: created.reduce((a, c) => a + c.errors, 0),
      firstError: created.find((c) => c.firstError)?.firstError,
      createS,
      platCpu: (100 * (c1.plat - c0.plat)) / wall,
      pgCpu: (100 * (c1.pg - c0.pg)) / wall,
      simsCpu: (100 * (c1.sims - c0.sims)) / wall,
      machineBusy: (100 * (c1.m.busy - c0.m.busy)) / (c1.m.total - c0.m.total),
      requests: per * SIMS,
      conc,
    };
  };
  await dispatch(Math.min(2000, Math.ceil(TASKS / 10)));
  const { rows: markRows } = await pgc.query<{ t: Date }>(`select now() as t`);
  const mark = markRows[0]?.t;
  const d = await dispatch(TASKS);
  const { rows: qr } = await pgc.query<{
    n: string;
    ok: string;
    create_secs: number;
    secs: number;
    p50: number;
    p99: number;
  }>(
    `select count(*) as n,
            count(*) filter (where status = 'succeeded') as ok,
            extract(epoch from max(created_at) - min(created_at))::float8 as create_secs,
            extract(epoch from max(completed_at) - min(created_at))::float8 as secs,
            percentile_cont(0.5) within group (order by extract(epoch from completed_at - created_at) * 1000)::float8 as p50,
            percentile_cont(0.99) within group (order by extract(epoch from completed_at - created_at) * 1000)::float8 as p99
       from tasks where created_at > $1`,
    [mark],
  );
  const q = qr[0];
  if (!q) throw new Error('no task rows');
  const n = Number(q.n);
  const rate = n / q.secs;
  const createRate = n / q.create_secs;
  const final = await stats();
  await pgc.end();
  clearInterval(rssSampler);
  const peak = Math.max(...samples);

  const perAgentKb = (withAgents.rssBytes - idle.rssBytes) / Math.max(1, online) / 1024;
  const rows: (string | number)[][] = [
    ['machine CPU busy before the run (other load)', `${round(otherLoad, 0)} % of all cores`, ''],
    ['agents online (in the database)', `${online} of ${N}`, ''],
    ['load-generator processes', SIMS, ''],
    ['connect + register, all agents', `${round(connectS, 1)} s (${round(N / connectS, 0)} agents/s)`, ''],
    ['platform RSS, idle', `${round(idle.rssBytes / MB, 1)} MB`, ''],
    [
      `platform RSS, ${online} agents connected`,
      `${round(withAgents.rssBytes / MB, 1)} MB`,
      N >= 10_000 ? '<= 1024 MB' : '',
    ],
    ['platform RSS per connected agent', `${round(perAgentKb, 1)} KB`, '<= ~100 KB (1 GiB / 10,000)'],
    [
      `platform RSS after ${CPU_SECONDS} s of heartbeats`,
      `${round(afterHeartbeats.rssBytes / MB, 1)} MB`,
      '',
    ],
    [
      `platform CPU, heartbeats only (${HB_INTERVAL} s interval, ${round(hbWall, 0)} s)`,
      `${round(hbPlatCpu, 2)} % of a core`,
      '',
    ],
    ['PostgreSQL CPU (this database), heartbeats only', `${round(hbPgCpu, 2)} % of a core`, ''],
    [
      'heartbeats sent / acked in the window',
      `${heartbeats} / ${heartbeatAcks}`,
      `~${round((N * hbWall) / HB_INTERVAL, 0)} expected`,
    ],
    [
      `tasks created through REST (${SIMS} processes x ${d.conc} concurrent)`,
      `${n} (${d.errors} errors)`,
      '',
    ],
    ['creation rate (REST, created_at spread)', `${round(createRate, 0)} tasks/s`, ''],
    ['dispatch throughput, created -> result stored', `${round(rate, 0)} tasks/s`, '>= 2,000 tasks/s'],
    ['latency created -> stored, p50 / p99', `${round(q.p50, 1)} / ${round(q.p99, 1)} ms`, ''],
    ['succeeded', `${q.ok} of ${n}`, ''],
    ['platform CPU during dispatch', `${round(d.platCpu, 0)} % of a core`, ''],
    ['PostgreSQL CPU (this database) during dispatch', `${round(d.pgCpu, 0)} % of a core`, ''],
    ['load generators CPU during dispatch', `${round(d.simsCpu, 0)} % of a core`, ''],
    ['machine CPU busy during dispatch', `${round(d.machineBusy, 0)} % of all cores`, ''],
    ['platform RSS peak (whole run)', `${round(peak / MB, 1)} MB`, ''],
    [
      'stream errors / reconnects of simulated agents',
      `${sum(final, 'streamErrors')} / ${sum(final, 'reconnects')}`,
      '0 / 0',
    ],
  ];
  // Stop the platform cleanly (SIGTERM) so that --cpu-prof writes its profile.
  for (const s of sims) await s.ask({ cmd: 'close' });
  process.kill(platform.pid, 'SIGTERM');
  await Promise.race([platform.exited, sleep(20_000)]);
  if (d.firstError) console.error(`first task creation error: ${d.firstError}`);
  if (PROFILE) {
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) console.error(`no profile in ${profDir}: the platform did not exit cleanly`);
    else {
      const top = profileTop(path.join(profDir, file), 25);
      console.log(
        `\n## platform CPU profile: top functions by self time (${round(top.totalMs / 1000, 1)} s busy)\n`,
      );
      console.log('| function | self ms | of busy |');
      console.log('| --- | --- | --- |');
      for (const r of top.rows) console.log(`| ${r.join(' | ')} |`);
      console.log(`\nprofile: ${path.join(profDir, file)}`);
    }
  }
  report(
    `fleet: ${online} simulated agents on one platform process, ${n} tasks`,
    ['what', 'measured', 'goal'],
    rows,
    {
      bench: 'fleet',
      agents: N,
      agents_online: online,
      machine_busy_before_pct: round(otherLoad, 0),
      sim_processes: SIMS,
      connect_s: round(connectS, 2),
      platform_rss_idle_mb: round(idle.rssBytes / MB, 1),
      platform_rss_agents_mb: round(withAgents.rssBytes / MB, 1),
      platform_rss_after_heartbeats_mb: round(afterHeartbeats.rssBytes / MB, 1),
      platform_rss_peak_mb: round(peak / MB, 1),
      rss_per_agent_kb: round(perAgentKb, 1),
      heartbeat_interval_s: HB_INTERVAL,
      heartbeat_cpu_pct: round(hbPlatCpu, 2),
      heartbeat_pg_cpu_pct: round(hbPgCpu, 2),
      heartbeats_in_window: heartbeats,
      tasks: n,
      task_errors: d.errors,
      tasks_succeeded: Number(q.ok),
      create_per_s: round(createRate, 0),
      dispatch_per_s: round(rate, 0),
      latency_p50_ms: round(q.p50, 1),
      latency_p99_ms: round(q.p99, 1),
      dispatch_platform_cpu_pct: round(d.platCpu, 0),
      dispatch_pg_cpu_pct: round(d.pgCpu, 0),
      dispatch_machine_busy_pct: round(d.machineBusy, 0),
      goal_rss_mb_at_10000: 1024,
      goal_dispatch_per_s: 2000,
    },
  );
} finally {
  for (const s of sims) if (s.child.exitCode === null) s.child.kill('SIGKILL');
  await procs.killAll();
  await db.drop();
}
