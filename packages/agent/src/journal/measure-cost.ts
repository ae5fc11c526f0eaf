/**
 * What the journal costs per task: accept (before spawn), complete (before the
 * result is sent) and ack. Latency one task at a time, then throughput and CPU
 * with 16 in flight, the event loop's delay meanwhile and how long the
 * in-place appends (synchronous writes) took. Prints a table and, last, one JSON line.
 *   node --import tsx packages/agent/src/journal/measure-cost.ts [tasks] [dir]
 * The directory defaults to a temp dir; pass one on the disk the state dir uses.
 */
import { writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { TaskStatus, type TaskResult } from '@agent-platform/protocol';
import { createTaskJournal } from './task-journal.js';

const tasks = Number(process.argv[2] ?? 2000);
const base = await mkdtemp(path.join(process.argv[3] ?? os.tmpdir(), 'journal-cost-'));

const result = (taskId: string): TaskResult => ({
  taskId,
  exitCode: 0,
  stdout: 'x'.repeat(1000),
  stderr: '',
  completedAt: new Date(),
  status: TaskStatus.TASK_STATUS_SUCCEEDED,
  error: '',
  startedAt: new Date(),
  stdoutBytes: 1000,
  stderrBytes: 0,
  stdoutTruncated: false,
  stderrTruncated: false,
  limitsEnforced: [],
  signal: '',
});

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

// Every in-place append, timed: it holds the event loop.
const writeMs: number[] = [];
const io = {
  writeSync(fd: number, buf: Buffer, off: number, len: number): number {
    const t = process.hrtime.bigint();
    const n = writeSync(fd, buf, off, len);
    writeMs.push(ms(t));
    return n;
  },
};
const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;

// One task at a time: the latency each step adds to a task.
const j = await createTaskJournal({ dir: path.join(base, 'seq'), io });
const seqCpu0 = process.cpuUsage();
const accept: number[] = [];
const complete: number[] = [];
const ack: number[] = [];
for (let i = 0; i < tasks; i++) {
  const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
  let t = process.hrtime.bigint();
  await j.accept(id);
  accept.push(ms(t));
  t = process.hrtime.bigint();
  await j.complete(id, result(id));
  complete.push(ms(t));
  t = process.hrtime.bigint();
  await j.ack(id);
  ack.push(ms(t));
}
const seqCpuPerTask = cpuMs(process.cpuUsage(seqCpu0)) / tasks;
await j.close();

// 16 tasks in flight: throughput, with fdatasyncs shared.
const jc = await createTaskJournal({ dir: path.join(base, 'conc'), io });
writeMs.length = 0;
let next = 0;
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
const concCpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: 16 }, async () => {
    while (next < tasks) {
      const id = `c-${next++}`;
      await jc.accept(id);
      await jc.complete(id, result(id));
      await jc.ack(id);
    }
  }),
);
const concurrentPerSec = tasks / (ms(t0) / 1000);
const concCpuPerTask = cpuMs(process.cpuUsage(concCpu0)) / tasks;
loop.disable();
await jc.close();
await rm(base, { recursive: true, force: true });

const row = (name: string, xs: number[]) =>
  console.log(
    `${name.padEnd(10)} ${pct(xs, 50).toFixed(3).padStart(8)} ${pct(xs, 99).toFixed(3).padStart(8)} ${pct(xs, 99.9).toFixed(3).padStart(8)}`,
  );
console.log(`journal cost, ${tasks} tasks, ms      p50      p99    p99.9`);
row('accept', accept);
row('complete', complete);
row('ack', ack);
const total = accept.map((a, i) => a + (complete[i] ?? 0) + (ack[i] ?? 0));
row('all three', total);
console.log(`CPU per task, one at a time: ${seqCpuPerTask.toFixed(3)} ms`);
console.log(
  `16 in flight: ${concurrentPerSec.toFixed(0)} tasks/s, CPU ${concCpuPerTask.toFixed(3)} ms/task, ` +
    `event loop delay p99 ${(loop.percentile(99) / 1e6).toFixed(2)} ms, max ${(loop.max / 1e6).toFixed(2)} ms`,
);
if (writeMs.length > 0)
  console.log(
    `in-place appends (16 in flight): ${writeMs.length}, p50 ${pct(writeMs, 50).toFixed(3)} ms, ` +
      `p99 ${pct(writeMs, 99).toFixed(3)} ms, max ${writeMs.reduce((a, b) => Math.max(a, b), 0).toFixed(3)} ms`,
  );
console.log(
  JSON.stringify({
    bench: 'journal-cost',
    tasks,
    accept_p50_ms: pct(accept, 50),
    complete_p50_ms: pct(complete, 50),
    ack_p50_ms: pct(ack, 50),
    total_p50_ms: pct(total, 50),
    total_p99_ms: pct(total, 99),
    total_p999_ms: pct(total, 99.9),
    accept_p999_ms: pct(accept, 99.9),
    concurrent16_tasks_per_s: Math.round(concurrentPerSec),
    cpu_ms_per_task_sequential: seqCpuPerTask,
    cpu_ms_per_task_concurrent16: concCpuPerTask,
    loop_delay_p99_ms: loop.percentile(99) / 1e6,
    loop_delay_max_ms: loop.max / 1e6,
    append_p99_ms: writeMs.length > 0 ? pct(writeMs, 99) : null,
    append_max_ms: writeMs.length > 0 ? writeMs.reduce((a, b) => Math.max(a, b), 0) : null,
  }),
);
