/**
 * `npm run bench:trace`: where the time of one task goes, step by step. Runs
 * `true` tasks one after another on one agent the way `apctl run` does
 * (POST ?follow=1 to the `end` event), with AP_TRACE_FILE set for the platform
 * and agent processes (packages/protocol/src/trace.ts), and prints the median
 * time between consecutive steps of a task, with the bare spawn of the same run.
 *
 * Steps: c-* the client (this process), p-* the platform, a-* the agent.
 */
import { openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bareSpawn, postText, report, round, startCluster, summarize } from './support.js';

const N = Number(process.env.BENCH_N ?? 300);
const WARMUP = 50;
const file = path.join(os.tmpdir(), `ap-trace-${process.pid}.txt`);
rmSync(file, { force: true });
process.env.AP_TRACE_FILE = file; // inherited by the platform and agent processes
const fd = openSync(file, 'a');
const mark = (step: string, id: string) =>
  writeSync(fd, `${step} ${id} ${(performance.timeOrigin + performance.now()).toFixed(3)} ${process.pid}\n`);

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
