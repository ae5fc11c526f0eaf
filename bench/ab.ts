/**
 * `npm run bench:ab -- --base DIR`: this checkout against another build of the
 * project (DIR: e.g. `git worktree add /tmp/ab-base REV`, then `npm ci` and
 * `node scripts/build.mjs` there), measured in pairs.
 *
 * Both run at once: a platform and `--agents N` agent processes each, on fresh
 * databases. Then the same call goes to one and then the other, in alternating
 * order, `--runs R` times: a batch `POST /api/v1/tasks/batch?follow=1` of
 * `--script` (default `echo hi`) on all N agents (the `bench:compare` call), or
 * with `--single` one `POST /api/v1/tasks?follow=1` on the first agent (the
 * `bench:latency` call). On a machine whose speed drifts by 2x within minutes,
 * two benchmark runs one after the other compare the machine's states as much
 * as the builds; neighbouring calls of a pair share the state. Reported: each
 * side's median wall time and machine CPU per task, the median of the per-pair
 * ratios and in how many pairs this checkout was faster.
 *
 * `--base-env NAME=VALUE` (repeatable) sets an environment variable for the
 * base's processes only; with `--base .` that compares one build under two
 * settings (e.g. `AP_AGENT_V8_FLAGS`).
 */
import path from 'node:path';
import {
  arg,
  machineCpu,
  postText,
  report,
  round,
  startCluster,
  stealPct,
  summarize,
  type Cluster,
} from './support.js';

const BASE = arg('base', '');
if (BASE === '') {
  console.error(
    'usage: npm run bench:ab -- --base DIR [--base-env NAME=VALUE]... [--agents N] [--runs R] [--script S] [--single] [--pause MS]',
  );
  process.exit(2);
}
const SINGLE = process.argv.includes('--single');
const AGENTS = SINGLE ? 1 : Number(arg('agents', '50'));
const RUNS = Number(arg('runs', SINGLE ? '300' : '12'));
const SCRIPT = arg('script', SINGLE ? 'true' : 'echo hi');
const PAUSE = Number(arg('pause', SINGLE ? '0' : '700'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BASE_ENV = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--base-env' ? [a] : []));

// The base's own harness, so that it starts the base's own build.
const baseSupport = (await import(path.resolve(BASE, 'bench/support.ts'))) as {
  startCluster: typeof startCluster;
};

/** One call; resolves with its wall ms and the machine's CPU ms per task meanwhile. */
async function once(c: Cluster): Promise<{ ms: number; cpu: number }> {
  const m0 = machineCpu().busy;
  const t0 = performance.now();
  const text = SINGLE
    ? await postText(`${c.http}/api/v1/tasks?follow=1`, {
        agent_id: c.agentIds[0],
        type: 'shell',
        script: SCRIPT,
        timeout: 30,
      })
    : await postText(`${c.http}/api/v1/tasks/batch?follow=1`, {
        agent_ids: c.agentIds,
        type: 'shell',
        script: SCRIPT,
        timeout: 30,
      });
  const ms = performance.now() - t0;
  const cpu = ((machineCpu().busy - m0) * 1000) / AGENTS;
  const ends = text.match(/^event: end$/gm)?.length ?? 0;
  if (ends !== AGENTS || !text.includes('"status":"succeeded"'))
    throw new Error(`expected ${AGENTS} succeeded tasks: ${text.slice(-300)}`);
  return { ms, cpu };
}

// The base's processes inherit this process's environment at their start.
const saved = { ...process.env };
for (const kv of BASE_ENV) {
  const eq = kv.indexOf('=');
  if (eq < 1) throw new Error(`--base-env wants NAME=VALUE, got ${kv}`);
  process.env[kv.slice(0, eq)] = kv.slice(eq + 1);
}
const base = await baseSupport.startCluster('ab_base', AGENTS);
for (const kv of BASE_ENV) {
  const name = kv.slice(0, kv.indexOf('='));
  if (saved[name] === undefined) delete process.env[name];
  else process.env[name] = saved[name];
}
const m0 = machineCpu();
let here: Cluster | undefined;
const wall = { base: [] as number[], here: [] as number[] };
const cpu = { base: [] as number[], here: [] as number[] };
const ratios: number[] = [];
try {
  here = await startCluster('ab_here', AGENTS);
  const sides = [
    ['base', base],
    ['here', here],
  ] as const;
  for (let r = -1; r < RUNS; r++) {
    const pair: Record<string, number> = {};
    for (const [name, c] of r % 2 === 0 ? sides : [...sides].reverse()) {
      if (PAUSE > 0) await sleep(PAUSE);
      const o = await once(c);
      pair[name] = o.ms;
      if (r < 0) continue; // warm-up
      wall[name].push(o.ms);
      cpu[name].push(o.cpu);
    }
    if (r >= 0) ratios.push((pair.here ?? NaN) / (pair.base ?? NaN));
  }
} finally {
  await here?.stop();
  await base.stop();
}

const steal = round(stealPct(m0, machineCpu()), 0);
const faster = ratios.filter((x) => x < 1).length;
const what = SINGLE
  ? `one \`${SCRIPT}\` task (POST ?follow=1)`
  : `\`${SCRIPT}\` on ${AGENTS} agents (batch, follow=1)`;
report(
  `ab: ${what}, ${RUNS} pairs, base ${BASE}${BASE_ENV.length > 0 ? ` with ${BASE_ENV.join(' ')}` : ''}, hypervisor steal ${steal} %`,
  ['build', 'wall p50 ms', 'wall p99 ms', 'machine CPU ms/task p50'],
  [
    [
      'base',
      round(summarize(wall.base).p50, 1),
      round(summarize(wall.base).p99, 1),
      round(summarize(cpu.base).p50, 1),
    ],
    [
      'this checkout',
      round(summarize(wall.here).p50, 1),
      round(summarize(wall.here).p99, 1),
      round(summarize(cpu.here).p50, 1),
    ],
    [
      'this / base, per pair (p50)',
      round(summarize(ratios).p50, 3),
      '',
      `faster in ${faster} of ${ratios.length} pairs`,
    ],
  ],
  {
    bench: 'ab',
    base: BASE,
    base_env: BASE_ENV,
    single: SINGLE,
    agents: AGENTS,
    runs: RUNS,
    script: SCRIPT,
    base_wall_p50_ms: round(summarize(wall.base).p50, 2),
    here_wall_p50_ms: round(summarize(wall.here).p50, 2),
    base_cpu_ms_per_task_p50: round(summarize(cpu.base).p50, 2),
    here_cpu_ms_per_task_p50: round(summarize(cpu.here).p50, 2),
    ratio_p50: round(summarize(ratios).p50, 3),
    here_faster_pairs: faster,
    steal_pct: steal,
  },
);
