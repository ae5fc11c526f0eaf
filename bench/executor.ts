/**
 * Executor benchmark (`npm run bench:executor`, or `npx tsx bench/executor.ts`).
 *
 * 1. Overhead: `true` through the executor (script file, own process group,
 *    per-task cgroup for containment, output capture) against a bare
 *    `child_process.spawn('true')`, interleaved and warmed up, medians.
 *    Goal: ratio <= 1.3. Also with `containWithoutLimits: false` (no cgroup
 *    for a task without limits) and with a memory limit (a per-task memory cgroup the child joins before exec).
 * 2. Memory: peak RSS of this process while one task streams 200 MB of
 *    stdout to a consumer that yields to a timer every 64 chunks.
 *    Goal: under 150 MB.
 *
 * Prints a markdown table, then one JSON line.
 */
import { spawn } from 'node:child_process';
import { createTaskExecutor, type TaskSpec } from '../packages/agent/src/executor/index.js';

const N = Number(process.env.BENCH_N ?? 300);
const WARMUP = 30;
const STREAM_BYTES = 200 * 1024 * 1024;

function spec(taskId: string, script: string, limits: Partial<TaskSpec['limits']> = {}): TaskSpec {
  return {
    taskId,
    type: 'shell',
    script,
    args: [],
    env: {},
    cleanEnv: false,
    workingDir: '',
    runAs: '',
    timeoutSeconds: 60,
    killGraceSeconds: 0,
    limits: { memoryBytes: 0, cpuMillicores: 0, maxProcesses: 0, maxOutputBytes: 0, ...limits },
  };
}

function bareSpawn(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('true', [], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.once('error', reject);
    child.once('close', () => resolve());
  });
}

function quantile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

const mb = (bytes: number): number => bytes / 1024 / 1024;
const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

async function main(): Promise<void> {
  const executor = createTaskExecutor({ maxConcurrent: 1 });
  const uncontained = createTaskExecutor({ maxConcurrent: 1, containWithoutLimits: false });
  let id = 0;
  const viaExecutor = async (limits: Partial<TaskSpec['limits']> = {}, ex = executor): Promise<void> => {
    const result = await ex.start(spec(`bench-${++id}`, 'true', limits), () => undefined).result;
    if (result.status !== 'succeeded') throw new Error(`task failed: ${result.error}`);
  };
  const time = async (fn: () => Promise<void>): Promise<number> => {
    const start = performance.now();
    await fn();
    return performance.now() - start;
  };

  // Memory first, in a process that has done little else, so the peak is the stream's.
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  let received = 0;
  const streamStart = performance.now();
  const streamed = await executor.start(
    spec('bench-stream', `head -c ${STREAM_BYTES} /dev/zero`),
    async (chunk) => {
      received += chunk.data.length;
      if (chunk.seq % 64 === 0) await new Promise((r) => setTimeout(r, 1));
    },
  ).result;
  const streamMs = performance.now() - streamStart;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  if (streamed.stdoutBytes !== STREAM_BYTES || received !== STREAM_BYTES) {
    throw new Error(`stream lost bytes: counted ${streamed.stdoutBytes}, received ${received}`);
  }

  for (let i = 0; i < WARMUP; i++) {
    await bareSpawn();
    await viaExecutor();
    await viaExecutor({}, uncontained);
  }
  const bare: number[] = [];
  const exec: number[] = [];
  const execUncontained: number[] = [];
  const steps: Array<() => Promise<void>> = [
    async () => void bare.push(await time(bareSpawn)),
    async () => void exec.push(await time(() => viaExecutor())),
    async () => void execUncontained.push(await time(() => viaExecutor({}, uncontained))),
  ];
  for (let i = 0; i < N; i++) {
    // Rotate which goes first so drift (GC, page cache, other load) hits all alike.
    for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]!();
  }
  const limited: number[] = [];
  for (let i = 0; i < Math.min(N, 100); i++)
    limited.push(await time(() => viaExecutor({ memoryBytes: 256 * 1024 * 1024 })));
  await executor.close();
  await uncontained.close();

  const bareP50 = quantile(bare, 0.5);
  const execP50 = quantile(exec, 0.5);
  const limitedP50 = quantile(limited, 0.5);
  const ratio = execP50 / bareP50;
  const uncontainedP50 = quantile(execUncontained, 0.5);
  const ratioUncontained = uncontainedP50 / bareP50;
  const peakMb = mb(peak);
  const maxRssMb = process.resourceUsage().maxRSS / 1024;

  console.log('| measurement | p50 | p90 | goal |');
  console.log('|---|---|---|---|');
  console.log(
    `| bare \`spawn('true')\` (N=${N}) | ${round(bareP50)} ms | ${round(quantile(bare, 0.9))} ms | |`,
  );
  console.log(
    `| executor \`true\`, no limits (N=${N}) | ${round(execP50)} ms | ${round(quantile(exec, 0.9))} ms | |`,
  );
  console.log(`| ratio executor / bare | ${round(ratio)} | | <= 1.3 |`);
  console.log(
    `| executor \`true\`, \`containWithoutLimits: false\` (N=${N}) | ${round(uncontainedP50)} ms | ${round(quantile(execUncontained, 0.9))} ms | |`,
  );
  console.log(`| ratio, no containment cgroup / bare | ${round(ratioUncontained)} | | <= 1.3 |`);
  console.log(
    `| executor \`true\`, memory limit (per-task memory cgroup, N=${limited.length}) | ${round(limitedP50)} ms | ${round(quantile(limited, 0.9))} ms | |`,
  );
  console.log(`| stream 200 MB: peak RSS (sampled every 10 ms) | ${round(peakMb, 1)} MB | | < 150 MB |`);
  console.log(
    `| stream 200 MB: RSS before / process maxRSS | ${round(mb(rssBefore), 1)} / ${round(maxRssMb, 1)} MB | | |`,
  );
  console.log(`| stream 200 MB: throughput | ${round(mb(STREAM_BYTES) / (streamMs / 1000), 0)} MB/s | | |`);
  console.log(
    JSON.stringify({
      bench: 'executor',
      n: N,
      spawn_p50_ms: round(bareP50, 3),
      executor_p50_ms: round(execP50, 3),
      ratio: round(ratio, 3),
      executor_uncontained_p50_ms: round(uncontainedP50, 3),
      ratio_uncontained: round(ratioUncontained, 3),
      executor_limited_p50_ms: round(limitedP50, 3),
      stream_200mb_peak_rss_mb: round(peakMb, 1),
      stream_200mb_max_rss_mb: round(maxRssMb, 1),
      stream_200mb_mb_per_s: round(mb(STREAM_BYTES) / (streamMs / 1000), 0),
    }),
  );
}

await main();
