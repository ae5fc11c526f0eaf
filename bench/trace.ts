/**
 * `npm run bench:trace`: where the time of one task goes, step by step. Runs
 * `true` tasks one after another on one agent the way `apctl run` does
 * (POST ?follow=1 to the `end` event), with AP_TRACE_FILE set for the platform
 * and agent processes (packages/protocol/src/trace.ts), and prints the median
 * time between consecutive steps of a task, with the bare spawn of the same run.
 *
 * Steps: c-* the client (this process), p-* the platform, a-* the agent.
 *
 * `--hosts N`: the N-host call of `bench:compare` instead: `echo hi` on N
 * agents in one batch call with follow=1, BENCH_N rounds (default 20) 700 ms
 * apart; for each step, when its first, median and last task reached it
 * (medians over the rounds), so the head (POST to the requests sent), the
 * agents' part and the tail (last result to the end of the answer) show.
 */
import { openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { arg, bareSpawn, postText, report, round, startCluster, summarize } from './support.js';

const HOSTS = Number(arg('hosts', '0'));
const N = Number(process.env.BENCH_N ?? (HOSTS > 0 ? 20 : 300));
const WARMUP = 50;
const file = path.join(os.tmpdir(), `ap-trace-${process.pid}.txt`);
rmSync(file, { force: true });
process.env.AP_TRACE_FILE = file; // inherited by the platform and agent processes
const fd = openSync(file, 'a');
const mark = (step: string, id: string) =>
  writeSync(fd, `${step} ${id} ${(performance.timeOrigin + performance.now()).toFixed(3)} ${process.pid}\n`);

if (HOSTS > 0) {
  await traceBatch();
  process.exit(0);
}

const cluster = await startCluster('trace', 1);
const bare: number[] = [];
try {
  const agentId = cluster.agentIds[0] ?? '';
  for (let i = 0; i < WARMUP + N; i++) {
    mark('c-post', '?');
    const text = await postText(`${cluster.http}/api/v1/tasks?follow=1`, {
      agent_id: agentId,
      type: 'shell',
      script: 'true',
      timeout: 30,
    });
    mark('c-end', (/"task_id":"([^"]+)"/.exec(text) ?? [])[1] ?? '?');
    if (!text.includes('"status":"succeeded"')) throw new Error(`task did not succeed: ${text.slice(-300)}`);
    const t0 = performance.now();
    await bareSpawn();
    if (i >= WARMUP) bare.push(performance.now() - t0);
  }
} finally {
  await cluster.stop();
}

// Per task: its steps in time order; `c-post` (no id yet) belongs to the next task.
const tasks: { id: string; steps: [string, number][] }[] = [];
let post = 0;
const byId = new Map<string, [string, number][]>();
for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
  const [step = '', id = '', at = '0'] = line.split(' ');
  if (step === 'c-post') {
    post = Number(at);
    continue;
  }
  let steps = byId.get(id);
  if (!steps) {
    steps = [['c-post', post]];
    byId.set(id, steps);
    tasks.push({ id, steps });
  }
  steps.push([step, Number(at)]);
}
rmSync(file, { force: true });
const measured = tasks.slice(WARMUP);
const gaps = new Map<string, number[]>();
const totals: number[] = [];
/** Step -> its times since the task's c-post: shows steps whose order varies (p-started-rx). */
const since = new Map<string, number[]>();
for (const { steps } of measured) {
  steps.sort((a, b) => a[1] - b[1]);
  for (const [step, at] of steps) {
    const list = since.get(step) ?? [];
    list.push(at - (steps[0]?.[1] ?? 0));
    since.set(step, list);
  }
  for (let i = 1; i < steps.length; i++) {
    const key = `${steps[i - 1]?.[0]} -> ${steps[i]?.[0]}`;
    const list = gaps.get(key) ?? [];
    list.push((steps[i]?.[1] ?? 0) - (steps[i - 1]?.[1] ?? 0));
    gaps.set(key, list);
  }
  totals.push((steps.at(-1)?.[1] ?? 0) - (steps[0]?.[1] ?? 0));
}
// Steps in the order most tasks have them; a transition seen in under a third of the tasks is noise.
const rows = [...gaps]
  .filter(([, v]) => v.length >= measured.length / 3)
  .map(
    ([k, v]) =>
      [k, v.length, round(summarize(v).p50), round(summarize(v).mean)] as [string, number, number, number],
  );
const b = summarize(bare);
const t = summarize(totals);
report(
  `trace: the steps of ${measured.length} sequential \`true\` tasks (POST ?follow=1 -> end), medians`,
  ['step', 'tasks', 'p50 ms', 'mean ms'],
  [
    ...rows,
    ['whole task (c-post -> c-end)', totals.length, round(t.p50), round(t.mean)],
    ['bare spawn `sh -c true` (same run)', bare.length, round(b.p50), round(b.mean)],
    ...[...since]
      .map(([k, v]) => [k, v.length, round(summarize(v).p50), round(summarize(v).mean)] as const)
      .sort((x, y) => x[2] - y[2])
      .map(([k, n, p50, mean]) => [`  ${k}, time since c-post`, n, p50, mean]),
  ],
  {
    bench: 'trace',
    n: measured.length,
    total_p50_ms: round(t.p50),
    bare_spawn_p50_ms: round(b.p50),
    steps_p50_ms: Object.fromEntries(rows.map(([k, , p50]) => [k, p50])),
  },
);

/** `--hosts N`: one batch call per round; a step's times across the round's N tasks. */
async function traceBatch(): Promise<void> {
  const cluster = await startCluster('tracebatch', HOSTS, 5);
  const WARM = 3;
  try {
    for (let r = 0; r < WARM + N; r++) {
      mark('c-post', `round-${r}`);
      const text = await postText(`${cluster.http}/api/v1/tasks/batch?follow=1`, {
        agent_ids: cluster.agentIds,
        type: 'shell',
        script: 'echo hi',
        timeout: 30,
      });
      mark('c-end', `round-${r}`);
      const ok = text.match(/"status":"succeeded"/g)?.length ?? 0;
      if (ok !== HOSTS) throw new Error(`round ${r}: ${ok} of ${HOSTS} succeeded: ${text.slice(-300)}`);
      await new Promise((res) => setTimeout(res, 700));
    }
  } finally {
    await cluster.stop();
  }
  // Rounds do not overlap: every line between a round's c-post and the next one is that round's.
  const rounds: Map<string, number[]>[] = [];
  let t0 = 0;
  for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
    const [step = '', , at = '0'] = line.split(' ');
    if (step === 'c-post') {
      t0 = Number(at);
      rounds.push(new Map());
    }
    const round = rounds.at(-1);
    if (!round) continue;
    const list = round.get(step) ?? [];
    list.push(Number(at) - t0);
    round.set(step, list);
  }
  rmSync(file, { force: true });
  const measured = rounds.slice(WARM);
  /** step -> [first, median, last] per round */
  const per = new Map<string, [number[], number[], number[]]>();
  for (const round of measured) {
    for (const [step, times] of round) {
      times.sort((x, y) => x - y);
      const e = per.get(step) ?? [[], [], []];
      e[0].push(times[0] ?? 0);
      e[1].push(times[Math.floor(times.length / 2)] ?? 0);
      e[2].push(times.at(-1) ?? 0);
      per.set(step, e);
    }
  }
  const med = (v: number[]) => round(summarize(v).p50);
  const rows = [...per]
    .filter(([step, e]) => step !== 'c-post' && e[0].length >= measured.length / 2)
    .map(([step, e]) => [step, med(e[0]), med(e[1]), med(e[2])] as [string, number, number, number])
    .sort((x, y) => x[2] - y[2]);
  const whole = per.get('c-end')?.[0] ?? [];
  report(
    `trace: \`echo hi\` on ${HOSTS} agents in one batch call (POST /api/v1/tasks/batch?follow=1 -> done), ${measured.length} rounds; ms since the POST, medians over the rounds`,
    ['step', `first of ${HOSTS}`, 'median', 'last'],
    rows,
    {
      bench: 'trace',
      hosts: HOSTS,
      rounds: measured.length,
      total_p50_ms: med(whole),
      steps_ms_since_post: Object.fromEntries(
        rows.map(([k, f, m, l]) => [k, { first: f, median: m, last: l }]),
      ),
    },
  );
}
