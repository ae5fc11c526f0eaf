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
 *   3. dispatch, twice: --tasks `echo hi` tasks created through REST by every
 *      load-generator process at once (--clients concurrent requests in all),
 *      then --tasks tasks inserted by one SQL statement (the dispatch path
 *      without the REST API in front); the simulated agents answer each at
 *      once. Tasks/s and latency p50/p99 from the database's created_at /
 *      completed_at; CPU of each process; what this database's backends wait
 *      on (pg_stat_activity sampled every 50 ms).
 * Goals (2 cores): 10,000 agents within 1 GiB platform RSS; >= 2,000 tasks/s.
 *
 * Options: --agents N (default 2000), --sims P load-generator processes
 * (default max(2, ceil(N / 2500))), --tasks T (default 10000), --clients C
 * (default 64), --cpu-seconds S (default 30), --heartbeat-interval S (the
 * platform's, default 10 as in production), --profile (node --cpu-prof on the
 * platform; the profile is written at its clean SIGTERM exit and its top
 * functions by self time are printed), --no-notify-trigger (an experiment:
 * drops the tasks NOTIFY trigger in this run's throwaway database, to show what
 * PostgreSQL's commit-serialising NOTIFY lock costs task creation; one platform
 * process still dispatches at creation and by its 1 s poll).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ProcessGroup, freePort, tempDir, waitFor } from '../test/support/procs.js';
import { arg, MB, cpuSecondsOf, freshDatabase, machineCpu, procSample, report, round } from './support.js';
import type { SimCommand, SimEvent, SimStats } from './fleet-sim.js';

const N = Number(arg('agents', '2000'));
const SIMS = Number(arg('sims', String(Math.max(2, Math.ceil(N / 2500)))));
const TASKS = Number(arg('tasks', '10000'));
const CLIENTS = Number(arg('clients', '64'));
const CPU_SECONDS = Number(arg('cpu-seconds', '30'));
const HB_INTERVAL = Number(arg('heartbeat-interval', '10'));
const PROFILE = process.argv.includes('--profile');
/** Experiment: drop the NOTIFY trigger in this run's database (a single platform process dispatches at creation anyway). */
const NO_NOTIFY = process.argv.includes('--no-notify-trigger');
const LABEL = 'fleet';
/** Phase 4: one batch of a script this large (bytes) on up to 1,000 agents; 0 skips it. */
const BIG_BYTES = Number(arg('big-script-bytes', String(1024 * 1024)));

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
  if (NO_NOTIFY) await pgc.query('drop trigger tasks_notify on tasks');
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

  // CPU of the platform, this database's backends, the load generators and the machine, between two snapshots.
  const simPids = sims.map((s) => s.child.pid ?? 0);
  const snap = async () => {
    const pg = new Map<number, number>();
    for (const pid of await backends()) pg.set(pid, cpuSecondsOf([pid]));
    return {
      plat: procSample(platform.pid).cpuSeconds,
      pg,
      sims: cpuSecondsOf(simPids),
      m: machineCpu(),
      t: performance.now(),
    };
  };
  type Snap = Awaited<ReturnType<typeof snap>>;
  const usage = (a: Snap, b: Snap) => {
    const wall = (b.t - a.t) / 1000;
    // Backends that closed between the snapshots are missed; new ones count from 0.
    let pgSecs = 0;
    for (const [pid, secs] of b.pg) pgSecs += secs - (a.pg.get(pid) ?? 0);
    return {
      wall,
      platPct: (100 * (b.plat - a.plat)) / wall,
      pgPct: (100 * pgSecs) / wall,
      simsPct: (100 * (b.sims - a.sims)) / wall,
      machinePct: (100 * (b.m.busy - a.m.busy)) / (b.m.total - a.m.total),
    };
  };

  // 2. Heartbeats only.
  const stats = () => Promise.all(sims.map((s) => s.ask<SimStats>({ cmd: 'stats' })));
  const sum = (xs: SimStats[], k: keyof SimStats) => xs.reduce((a, x) => a + (x[k] as number), 0);
  const hbStats0 = await stats();
  const hb0 = await snap();
  await sleep(CPU_SECONDS * 1000);
  const hb = usage(hb0, await snap());
  const hbStats1 = await stats();
  const heartbeats = sum(hbStats1, 'heartbeats') - sum(hbStats0, 'heartbeats');
  const heartbeatAcks = sum(hbStats1, 'heartbeatAcks') - sum(hbStats0, 'heartbeatAcks');
  const afterHeartbeats = procSample(platform.pid);

  /** Transactions committed or rolled back in this database so far (each autocommit statement is one). */
  const xacts = async () => {
    const { rows } = await pgc.query<{ n: string }>(
      `select xact_commit + xact_rollback as n from pg_stat_database where datname = $1`,
      [dbName],
    );
    return Number(rows[0]?.n);
  };
  /**
   * What this database's busy backends are doing, sampled every 50 ms from
   * pg_stat_activity on a connection of its own: `CPU` when active without a
   * wait event, else the wait event (WALSync/WALWrite = commit flushes, Lock =
   * row locks, ClientRead = waiting for the platform mid-transaction).
   */
  const sampleWaits = () => {
    const counts = new Map<string, number>();
    let samples = 0;
    let running = true;
    const c = new pg.Client({ connectionString: db.url });
    const loop = (async () => {
      await c.connect();
      while (running) {
        const { rows } = await c.query<{ w: string; n: string }>(
          `select case when state = 'active' then coalesce(wait_event_type || ':' || wait_event, 'CPU')
                       else state end as w, count(*) as n
             from pg_stat_activity
            where datname = $1 and pid <> pg_backend_pid() and backend_type = 'client backend'
            group by 1`,
          [dbName],
        );
        samples++;
        for (const r of rows) counts.set(r.w, (counts.get(r.w) ?? 0) + Number(r.n));
        await sleep(50);
      }
      await c.end();
    })();
    return {
      async stop() {
        running = false;
        await loop;
        // Mean backends in each state, busiest first.
        return [...counts.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 5)
          .map(([w, n]) => `${w} ${round(n / Math.max(1, samples), 1)}`)
          .join(', ');
      },
    };
  };

  // 3. Dispatch.
  const conc = Math.max(1, Math.ceil(CLIENTS / SIMS));
  const allDone = (tasks: number) =>
    waitFor(
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
  /** Tasks created through REST by every load-generator process at once. */
  const viaRest = async (tasks: number) => {
    const created = await Promise.all(
      sims.map((s) =>
        s.ask<Extract<SimEvent, { ev: 'created' }>>({
          cmd: 'create',
          http,
          tasks: Math.ceil(tasks / SIMS),
          concurrency: conc,
        }),
      ),
    );
    await allDone(tasks);
    return {
      errors: created.reduce((a, c) => a + c.errors, 0),
      firstError: created.find((c) => c.firstError)?.firstError,
    };
  };
  /**
   * Tasks inserted by one SQL statement (copies of a REST-created task, spread
   * over every online agent), so that dispatch -> result is measured without
   * the REST API in front: the platform learns of them by NOTIFY, as it does
   * of tasks created through another platform process.
   */
  const viaSql = async (tasks: number) => {
    await pgc.query(
      `insert into tasks (task_id, agent_id, type, script, args, env, clean_env, working_dir, run_as,
                          timeout_seconds, kill_grace_seconds, limits, delivery_timeout_seconds,
                          status, delivery_deadline)
       select gen_random_uuid(), a.agent_id, t.type, t.script, t.args, t.env, t.clean_env, t.working_dir, t.run_as,
              t.timeout_seconds, t.kill_grace_seconds, t.limits, t.delivery_timeout_seconds,
              'pending', now() + make_interval(secs => t.delivery_timeout_seconds)
         from generate_series(0, $1::int - 1) g
         join (select agent_id, (row_number() over (order by agent_id)) - 1 as i
                 from agents where status = 'online') a
           on a.i = g % (select count(*) from agents where status = 'online')
        cross join (select * from tasks order by created_at limit 1) t`,
      [tasks],
    );
    await allDone(tasks);
    return { errors: 0, firstError: undefined };
  };
  interface Phase {
    n: number;
    ok: number;
    errors: number;
    firstError: string | undefined;
    createRate: number;
    rate: number;
    p50: number;
    p99: number;
    use: ReturnType<typeof usage>;
    waitTop: string;
    xactsPerTask: number;
  }
  const measure = async (how: (tasks: number) => Promise<{ errors: number; firstError?: string }>) => {
    const { rows: markRows } = await pgc.query<{ t: Date }>(`select clock_timestamp() as t`);
    const x0 = await xacts();
    const s0 = await snap();
    const waits = sampleWaits();
    const out = await how(TASKS);
    const use = usage(s0, await snap());
    const waitTop = await waits.stop();
    // Statistics reach pg_stat_database within a second of each transaction.
    await sleep(1500);
    const xactsPerTask = (await xacts()) - x0;
    const { rows } = await pgc.query<{
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
      [markRows[0]?.t],
    );
    const q = rows[0];
    if (!q) throw new Error('no task rows');
    const n = Number(q.n);
    const phase: Phase = {
      n,
      ok: Number(q.ok),
      errors: out.errors,
      firstError: out.firstError,
      createRate: q.create_secs > 0 ? n / q.create_secs : Infinity,
      rate: n / q.secs,
      p50: q.p50,
      p99: q.p99,
      use,
      waitTop,
      xactsPerTask: xactsPerTask / Math.max(1, n),
    };
    return phase;
  };
  /**
   * Tasks created through REST in batches (POST /api/v1/tasks/batch: one script on up
   * to 1,000 agents per call, as an operator fans out a command), 4 calls in flight.
   */
  const viaBatch = async (tasks: number) => {
    const { rows: agentRows } = await pgc.query<{ agent_id: string }>(
      `select agent_id from agents where status = 'online' order by agent_id`,
    );
    const ids = agentRows.map((r) => r.agent_id);
    const batches: string[][] = [];
    for (let made = 0; made < tasks;) {
      const size = Math.min(1000, ids.length, tasks - made);
      const start = made % Math.max(1, ids.length);
      const slice = ids.slice(start, start + size);
      if (slice.length < size) slice.push(...ids.slice(0, size - slice.length));
      batches.push(slice);
      made += size;
    }
    let errors = 0;
    let firstError: string | undefined;
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < batches.length) {
          const agentIds = batches[next++] ?? [];
          const res = await fetch(`${http}/api/v1/tasks/batch`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ agent_ids: agentIds, type: 'shell', script: 'true' }),
          });
          if (res.status !== 201) {
            errors += agentIds.length;
            firstError ??= `${res.status} ${(await res.text()).slice(0, 200)}`;
          } else await res.arrayBuffer();
        }
      }),
    );
    await allDone(tasks);
    return { errors, firstError };
  };
  await viaRest(Math.min(2000, Math.ceil(TASKS / 10))); // warm-up (and the template row for SQL)
  const rest = await measure(viaRest);
  const batch = await measure(viaBatch);
  const bulk = await measure(viaSql);

  // 4. One batch of a large script: what a fan-out of a big install script costs.
  const bigAgents = Math.min(1000, online);
  const big = { ms: 0, peakMb: 0, dbGrowthMb: 0, status: 0, ok: 0 };
  if (BIG_BYTES > 0) {
    const { rows: agentRows } = await pgc.query<{ agent_id: string }>(
      `select agent_id from agents where status = 'online' order by agent_id limit $1`,
      [bigAgents],
    );
    const dbSize = async () =>
      Number((await pgc.query<{ n: string }>(`select pg_database_size(current_database()) as n`)).rows[0]?.n);
    const size0 = await dbSize();
    const rss0 = procSample(platform.pid).rssBytes;
    let peakBig = rss0;
    const bigSampler = setInterval(() => {
      try {
        peakBig = Math.max(peakBig, procSample(platform.pid).rssBytes);
      } catch {
        // exited
      }
    }, 50);
    const { rows: markRows } = await pgc.query<{ t: Date }>(`select clock_timestamp() as t`);
    const t0 = performance.now();
    const res = await fetch(`${http}/api/v1/tasks/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // A comment line as long as asked for, then `true`: every agent receives the whole
      // script. Random base64, as an embedded payload is: PostgreSQL cannot compress it.
      body: JSON.stringify({
        agent_ids: agentRows.map((r) => r.agent_id),
        type: 'shell',
        script: `#${randomBytes(BIG_BYTES)
          .toString('base64')
          .slice(0, BIG_BYTES - 7)}\ntrue\n`,
      }),
    });
    big.status = res.status;
    await res.arrayBuffer();
    await allDone(bigAgents);
    big.ms = performance.now() - t0;
    clearInterval(bigSampler);
    big.peakMb = (peakBig - rss0) / MB;
    big.dbGrowthMb = ((await dbSize()) - size0) / MB;
    const { rows: okRows } = await pgc.query<{ n: string }>(
      `select count(*) as n from tasks where created_at > $1 and status = 'succeeded'`,
      [markRows[0]?.t],
    );
    big.ok = Number(okRows[0]?.n);
  }
  const final = await stats();
  await pgc.end();
  clearInterval(rssSampler);
  const peak = Math.max(...samples);

  const perAgentKb = (withAgents.rssBytes - idle.rssBytes) / Math.max(1, online) / 1024;
  const pct = (x: number) => `${round(x, 0)} %`;
  /** CPU milliseconds per task from a share of a core over the phase: robust to other load on the machine. */
  const cpuMs = (p: Phase, sharePct: number) =>
    round(((sharePct / 100) * p.use.wall * 1000) / Math.max(1, p.n), 2);
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
      `platform CPU, heartbeats only (${HB_INTERVAL} s interval, ${round(hb.wall, 0)} s)`,
      `${round(hb.platPct, 2)} % of a core`,
      '',
    ],
    ['PostgreSQL CPU (this database), heartbeats only', `${round(hb.pgPct, 2)} % of a core`, ''],
    [
      'heartbeats sent / acked in the window',
      `${heartbeats} / ${heartbeatAcks}`,
      `~${round((N * hb.wall) / HB_INTERVAL, 0)} expected`,
    ],
  ];
  for (const [name, p] of [
    [`REST (${SIMS} processes x ${conc} concurrent POSTs)`, rest],
    ['REST batches (POST /api/v1/tasks/batch, up to 1,000 agents a call, 4 in flight)', batch],
    ['one SQL INSERT (dispatch path alone)', bulk],
  ] as const) {
    rows.push(
      [`**${name}**: tasks, errors`, `${p.n}, ${p.errors} errors, ${p.ok} succeeded`, ''],
      ['  creation rate (created_at spread)', `${round(p.createRate, 0)} tasks/s`, ''],
      ['  throughput, created -> result stored', `${round(p.rate, 0)} tasks/s`, '>= 2,000 tasks/s'],
      ['  latency created -> stored, p50 / p99', `${round(p.p50, 1)} / ${round(p.p99, 1)} ms`, ''],
      [
        '  CPU: platform / PostgreSQL (this DB) / load generators',
        `${pct(p.use.platPct)} / ${pct(p.use.pgPct)} / ${pct(p.use.simsPct)} of a core`,
        '',
      ],
      [
        '  CPU per task: platform / PostgreSQL (this DB) / load generators',
        `${cpuMs(p, p.use.platPct)} / ${cpuMs(p, p.use.pgPct)} / ${cpuMs(p, p.use.simsPct)} ms`,
        '',
      ],
      ['  machine CPU busy', `${pct(p.use.machinePct)} of all cores`, ''],
      ['  PostgreSQL backends of this DB (mean count by state)', p.waitTop, ''],
      ['  database transactions per task (all statements, incl. the bench)', round(p.xactsPerTask, 2), ''],
    );
  }
  if (BIG_BYTES > 0)
    rows.push(
      [
        `**one batch of a ${round(BIG_BYTES / 1024, 0)} KiB script on ${bigAgents} agents**: status, succeeded`,
        `${big.status}, ${big.ok} succeeded`,
        '',
      ],
      ['  POST -> every result stored', `${round(big.ms, 0)} ms`, ''],
      ['  platform RSS above its level before the call, peak', `${round(big.peakMb, 1)} MB`, ''],
      ['  database size growth', `${round(big.dbGrowthMb, 1)} MB`, ''],
    );
  rows.push(
    ['platform RSS peak (whole run)', `${round(peak / MB, 1)} MB`, ''],
    [
      'stream errors / reconnects of simulated agents',
      `${sum(final, 'streamErrors')} / ${sum(final, 'reconnects')}`,
      '0 / 0',
    ],
  );
  const phaseJson = (prefix: string, p: Phase) => ({
    [`${prefix}_tasks`]: p.n,
    [`${prefix}_errors`]: p.errors,
    [`${prefix}_succeeded`]: p.ok,
    [`${prefix}_create_per_s`]: round(p.createRate, 0),
    [`${prefix}_per_s`]: round(p.rate, 0),
    [`${prefix}_latency_p50_ms`]: round(p.p50, 1),
    [`${prefix}_latency_p99_ms`]: round(p.p99, 1),
    [`${prefix}_platform_cpu_pct`]: round(p.use.platPct, 0),
    [`${prefix}_pg_cpu_pct`]: round(p.use.pgPct, 0),
    [`${prefix}_machine_busy_pct`]: round(p.use.machinePct, 0),
    [`${prefix}_platform_cpu_ms_per_task`]: cpuMs(p, p.use.platPct),
    [`${prefix}_pg_cpu_ms_per_task`]: cpuMs(p, p.use.pgPct),
    [`${prefix}_xacts_per_task`]: round(p.xactsPerTask, 2),
  });
  const json = {
    bench: 'fleet',
    agents: N,
    agents_online: online,
    no_notify_trigger: NO_NOTIFY,
    machine_busy_before_pct: round(otherLoad, 0),
    sim_processes: SIMS,
    connect_s: round(connectS, 2),
    platform_rss_idle_mb: round(idle.rssBytes / MB, 1),
    platform_rss_agents_mb: round(withAgents.rssBytes / MB, 1),
    platform_rss_after_heartbeats_mb: round(afterHeartbeats.rssBytes / MB, 1),
    platform_rss_peak_mb: round(peak / MB, 1),
    rss_per_agent_kb: round(perAgentKb, 1),
    heartbeat_interval_s: HB_INTERVAL,
    heartbeat_cpu_pct: round(hb.platPct, 2),
    heartbeat_pg_cpu_pct: round(hb.pgPct, 2),
    heartbeats_in_window: heartbeats,
    ...phaseJson('rest', rest),
    ...phaseJson('batch', batch),
    ...phaseJson('sql', bulk),
    big_script_bytes: BIG_BYTES,
    big_batch_agents: BIG_BYTES > 0 ? bigAgents : 0,
    big_batch_status: big.status,
    big_batch_succeeded: big.ok,
    big_batch_ms: round(big.ms, 0),
    big_batch_platform_rss_peak_above_mb: round(big.peakMb, 1),
    big_batch_db_growth_mb: round(big.dbGrowthMb, 1),
    stream_errors: sum(final, 'streamErrors'),
    goal_rss_mb_at_10000: 1024,
    goal_dispatch_per_s: 2000,
  };
  // Stop the platform cleanly (SIGTERM) so that --cpu-prof writes its profile.
  for (const s of sims) await s.ask({ cmd: 'close' });
  process.kill(platform.pid, 'SIGTERM');
  await Promise.race([platform.exited, sleep(20_000)]);
  if (rest.firstError) console.error(`first task creation error: ${rest.firstError}`);
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
    `fleet: ${online} simulated agents on one platform process, ${TASKS} tasks per phase`,
    ['what', 'measured', 'goal'],
    rows,
    json,
  );
} finally {
  for (const s of sims) if (s.child.exitCode === null) s.child.kill('SIGKILL');
  await procs.killAll();
  await db.drop();
}
