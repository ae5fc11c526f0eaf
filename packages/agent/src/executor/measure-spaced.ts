/**
 * Start latency of tasks that arrive spaced apart (as on a quiet agent), where
 * a cgroup migration by writing `cgroup.procs` waits for an RCU grace period.
 * Runs `true` tasks one at a time, `gapMs` apart, through createTaskExecutor
 * (with its containment cgroup) and prints p50/p90 of start() -> spawned and
 * start() -> result, then one JSON line.
 *
 *   node --import tsx packages/agent/src/executor/measure-spaced.ts [tasks=200] [gapMs=100] [limits|nocontain]
 *
 * `limits` gives each task a process limit (a v1 pids cgroup on a hybrid host,
 * besides the v2 containment cgroup); `nocontain` runs without any cgroup
 * (`containWithoutLimits: false`), the floor to compare with. AP_SPAWN_CLONE3=0 makes the spawn
 * helper fork and write cgroup.procs instead of creating the child in its v2
 * cgroup with clone3 (the fallback path), for comparison.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTaskExecutor } from './task-executor.js';
import type { TaskSpec } from './types.js';

const TASKS = Number(process.argv[2] ?? 200);
const GAP_MS = Number(process.argv[3] ?? 100);
const LIMITS = process.argv[4] === 'limits';
const NO_CONTAIN = process.argv[4] === 'nocontain';

const root = await mkdtemp(path.join(os.tmpdir(), 'measure-spaced-'));
const executor = createTaskExecutor({ workDir: path.join(root, 'work'), containWithoutLimits: !NO_CONTAIN });

const spec = (i: number): TaskSpec => ({
  taskId: `spaced-${process.pid}-${i}`,
  type: 'shell',
  script: 'true',
  args: [],
  env: {},
  cleanEnv: false,
  workingDir: '',
  runAs: '',
  timeoutSeconds: 60,
  killGraceSeconds: 1,
  limits: { memoryBytes: 0, cpuMillicores: 0, maxProcesses: LIMITS ? 100 : 0, maxOutputBytes: 0 },
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const started: number[] = [];
const results: number[] = [];
let mechanisms = '';
// Warm-up: the helper and cgroup probes, the first cgroup of the pool.
for (let i = 0; i < 5; i++) await executor.start(spec(-i - 1), () => undefined).result;
for (let i = 0; i < TASKS; i++) {
  await sleep(GAP_MS);
  const t0 = performance.now();
  const task = executor.start(spec(i), () => undefined);
  void task.started.then(() => started.push(performance.now() - t0));
  const r = await task.result;
  results.push(performance.now() - t0);
  if (r.status !== 'succeeded') throw new Error(`task ${i}: ${r.status} ${r.error}`);
  mechanisms = r.limitsEnforced.map((l) => `${l.name}:${l.mechanism}`).join(',');
}
await executor.close();
await rm(root, { recursive: true, force: true });

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const clone3 = process.env.AP_SPAWN_CLONE3 === '0' ? 'off' : 'default';
const row = {
  tasks: TASKS,
  gapMs: GAP_MS,
  limits: LIMITS ? mechanisms : NO_CONTAIN ? 'none, no cgroup' : 'none',
  clone3,
  startedP50: +pct(started, 50).toFixed(2),
  startedP90: +pct(started, 90).toFixed(2),
  resultP50: +pct(results, 50).toFixed(2),
  resultP90: +pct(results, 90).toFixed(2),
};
console.log(
  `${TASKS} tasks ${GAP_MS} ms apart, limits ${row.limits}, clone3 ${clone3}: ` +
    `start->spawned p50 ${row.startedP50} ms p90 ${row.startedP90} ms; ` +
    `start->result p50 ${row.resultP50} ms p90 ${row.resultP90} ms`,
);
console.log(JSON.stringify(row));
