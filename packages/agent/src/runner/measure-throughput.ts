/**
 * The agent's own cost per task, without the network or the platform: the real
 * journal and executor behind the runner, a fake link that acknowledges every
 * result at once. Prints a table and, last, one JSON line.
 *
 *   node --import tsx packages/agent/src/runner/measure-throughput.ts [tasks] [ballastMB]
 *
 * 1. Sequential: one `true` task at a time; ms from request to TaskStarted and
 *    to TaskResult (p50/p90).
 * 2. Throughput: `tasks` tasks with 16 requests in flight on 8 slots (as the
 *    platform dispatches to an agent of capacity 8); tasks/s and CPU ms of this
 *    process per task.
 * `ballastMB` adds live heap, to look like a real agent process (whose size
 * makes every fork dearer).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TaskRequest, TaskType, type AgentMessage } from '@agent-platform/protocol';
import type { ServerLink } from '../connection/index.js';
import { createTaskExecutor } from '../executor/index.js';
import { createTaskJournal } from '../journal/index.js';
import { createTaskRunner } from './task-runner.js';

const TASKS = Number(process.argv[2] ?? 2000);
const BALLAST_MB = Number(process.argv[3] ?? 0);
const ballast: object[] = [];
for (let i = 0; i < BALLAST_MB * 1024; i++) ballast.push({ i, s: 'x'.repeat(900) + String(i) });

const root = await mkdtemp(path.join(os.tmpdir(), 'runner-measure-'));
const journal = await createTaskJournal({ dir: path.join(root, 'journal') });
const executor = createTaskExecutor({ maxConcurrent: 8, workDir: path.join(root, 'work') });
const runner = createTaskRunner({ executor, journal });

const waiting = new Map<string, { started?: () => void; result: () => void }>();
const link: ServerLink = {
  send(msg: AgentMessage) {
    const m = msg.message;
    if (m?.$case === 'taskStarted') waiting.get(m.value.taskId)?.started?.();
    if (m?.$case === 'taskResult') {
      const id = m.value.taskId;
      // The platform acknowledges on receipt (after storing it).
      queueMicrotask(() =>
        runner.onMessage({ message: { $case: 'resultAck', value: { taskId: id } } }, link),
      );
      waiting.get(id)?.result();
    }
    return true;
  },
  drain: () => Promise.resolve(),
};
runner.onReady(link);

let n = 0;
function runOne(): Promise<{ started: number; result: number }> {
  const taskId = `m-${process.pid}-${++n}`;
  const t0 = performance.now();
  let started = NaN;
  return new Promise((resolve) => {
    waiting.set(taskId, {
      started: () => (started = performance.now() - t0),
      result: () => {
        waiting.delete(taskId);
        resolve({ started, result: performance.now() - t0 });
      },
    });
    runner.onMessage(
      {
        message: {
          $case: 'taskRequest',
          value: TaskRequest.fromPartial({
            taskId,
            type: TaskType.TASK_TYPE_SHELL,
            script: 'true',
            timeout: 60,
          }),
        },
      },
      link,
    );
  });
}

const q = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
};
const r2 = (x: number): number => Math.round(x * 100) / 100;

for (let i = 0; i < 50; i++) await runOne();
const seqStarted: number[] = [];
const seqResult: number[] = [];
for (let i = 0; i < 200; i++) {
  const r = await runOne();
  seqStarted.push(r.started);
  seqResult.push(r.result);
}

const cpu0 = process.cpuUsage();
const t0 = performance.now();
let issued = 0;
await Promise.all(
  Array.from({ length: 16 }, async () => {
    while (issued < TASKS) {
      issued++;
      await runOne();
    }
  }),
);
const secs = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuMs = (cpu.user + cpu.system) / 1000 / TASKS;

await runner.close();
await executor.close();
await journal.close();
await rm(root, { recursive: true, force: true });

const rss = Math.round(process.memoryUsage().rss / 1e6);
console.log(`| what | value |\n| --- | --- |`);
console.log(
  `| sequential: TaskStarted p50 / p90 ms | ${r2(q(seqStarted, 0.5))} / ${r2(q(seqStarted, 0.9))} |`,
);
console.log(`| sequential: TaskResult p50 / p90 ms | ${r2(q(seqResult, 0.5))} / ${r2(q(seqResult, 0.9))} |`);
console.log(`| ${TASKS} tasks, 16 in flight, 8 slots: tasks/s | ${Math.round(TASKS / secs)} |`);
console.log(`| CPU of this process per task, ms | ${r2(cpuMs)} |`);
console.log(`| RSS MB | ${rss} |`);
console.log(
  JSON.stringify({
    measure: 'runner',
    ballast_mb: BALLAST_MB,
    rss_mb: rss,
    started_p50_ms: r2(q(seqStarted, 0.5)),
    result_p50_ms: r2(q(seqResult, 0.5)),
    tasks_per_s: Math.round(TASKS / secs),
    cpu_ms_per_task: r2(cpuMs),
  }),
);
void ballast.length;
