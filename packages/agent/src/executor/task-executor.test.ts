/**
 * The executor against real sh and python3 processes. Tests that need cgroups
 * skip with the missing capability named when the host (or user) lacks them.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { createCgroupManager, createNoCgroupManager, type CgroupManager } from './cgroups.js';
import { ExecutorError } from './errors.js';
import { createSpawner } from './spawner.js';
import { onTmpfs } from './task-command.js';
import { createTaskExecutor } from './task-executor.js';
import type { ExecResult, OutputChunk, TaskExecutor, TaskSpec } from './types.js';

const logger = pino({ level: 'silent' });
const scratch = mkdtempSync(path.join(os.tmpdir(), 'executor-test-'));
// A run-as user must be able to reach its task directory under the work dir.
chmodSync(scratch, 0o711);
let cgroups: CgroupManager;
let executor: TaskExecutor;
let counter = 0;

before(async () => {
  cgroups = await createCgroupManager(logger);
  executor = createTaskExecutor({ logger, workDir: path.join(scratch, 'work') }, { cgroups });
});

after(async () => {
  await executor.close();
  rmSync(scratch, { recursive: true, force: true });
});

// The notBefore tests watch the helper's child wait at its gate.
const helperProbe = await createSpawner(logger);
await helperProbe?.close();
const noHelper = helperProbe
  ? false
  : 'no usable spawn helper (perl, /proc): notBefore holds the spawn itself';

function spec(over: Partial<TaskSpec> & { script: string }): TaskSpec {
  return {
    taskId: `test-${++counter}`,
    type: 'shell',
    args: [],
    env: {},
    cleanEnv: false,
    workingDir: '',
    runAs: '',
    timeoutSeconds: 30,
    killGraceSeconds: 1,
    limits: { memoryBytes: 0, cpuMillicores: 0, maxProcesses: 0, maxOutputBytes: 0 },
    ...over,
  };
}

async function run(
  s: TaskSpec,
  ex: TaskExecutor = executor,
  onOutput?: (c: OutputChunk) => void | Promise<void>,
): Promise<{ result: ExecResult; chunks: OutputChunk[] }> {
  const chunks: OutputChunk[] = [];
  const task = ex.start(s, (c) => {
    chunks.push(c);
    return onOutput?.(c);
  });
  return { result: await task.result, chunks };
}

/** A live (not zombie) process with this pid. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Live processes whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle) && alive(Number(entry)))
        found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

function readPids(file: string): number[] {
  return readFileSync(file, 'utf8')
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a shell script gets its args, env and working directory', async () => {
  const dir = mkdtempSync(path.join(scratch, 'cwd-'));
  const { result } = await run(
    spec({
      script: 'printf "%s|" "$@"; echo "$GREETING"; pwd',
      args: ['two words', "it's", '$HOME', ''],
      env: { GREETING: 'hello "there"' },
      workingDir: dir,
    }),
  );
  assert.equal(result.status, 'succeeded', result.error);
  assert.equal(result.exitCode, 0);
  assert.equal(result.stdout, `two words|it's|$HOME||hello "there"\n${dir}\n`);
  assert.equal(result.stdoutBytes, Buffer.byteLength(result.stdout));
});

test('without a working directory the task runs in a fresh directory that is removed after', async () => {
  const ex = createTaskExecutor({ logger, workDir: path.join(scratch, 'work') }, { cgroups });
  const { result } = await run(spec({ script: 'pwd; touch leftover; mkdir -p a/b' }), ex);
  // close() waits for the cleanup that follows each result.
  await ex.close();
  const cwd = result.stdout.trim();
  assert.ok(cwd.startsWith(path.join(scratch, 'work')), cwd);
  assert.throws(() => readdirSync(cwd), /ENOENT/);
});

test('the task directory is removed after the task on a tmpfs and on a disk work directory', async (t) => {
  const dirs: [string, string][] = [];
  if (onTmpfs('/dev/shm')) dirs.push(['tmpfs', mkdtempSync(path.join('/dev/shm', 'executor-test-'))]);
  else t.diagnostic('/dev/shm is not a tmpfs: the synchronous removal is not checked');
  if (!onTmpfs(scratch)) dirs.push(['disk', scratch]);
  else t.diagnostic(`${scratch} is a tmpfs: the removal through the thread pool is not checked`);
  if (dirs.length === 0) {
    t.skip('neither a tmpfs /dev/shm nor a scratch directory off tmpfs: no removal path to check');
    return;
  }
  try {
    for (const [kind, base] of dirs) {
      const workDir = path.join(base, `work-${kind}`);
      const ex = createTaskExecutor({ logger, workDir }, { cgroups });
      // Only the script is left (the fast path), then a file of the task's own (the general one).
      const plain = await run(spec({ script: 'pwd' }), ex);
      const messy = await run(spec({ script: 'pwd; touch leftover' }), ex);
      await ex.close();
      for (const { result } of [plain, messy]) {
        assert.equal(result.status, 'succeeded', result.error);
        assert.ok(result.stdout.startsWith(workDir), `${kind}: ${result.stdout}`);
        assert.throws(() => readdirSync(result.stdout.trim()), /ENOENT/, kind);
      }
      assert.deepEqual(readdirSync(workDir), [], kind);
    }
  } finally {
    for (const [kind, base] of dirs) if (kind === 'tmpfs') rmSync(base, { recursive: true, force: true });
  }
});

test('removeLeftovers removes the directories of the given lost tasks and nothing else', async () => {
  const workDir = path.join(scratch, 'leftovers');
  const ex = createTaskExecutor({ logger, workDir }, { cgroups });
  try {
    assert.equal(await ex.removeLeftovers(['lost-1']), 0, 'no work directory yet');
    const make = (name: string) => {
      mkdirSync(path.join(workDir, name, 'sub'), { recursive: true });
      writeFileSync(path.join(workDir, name, 'script.sh'), 'true');
    };
    make('lost-1-3-0a0b0c0d');
    make('lost-1-7-01020304'); // the same task, run by another agent process before
    make('lost-10-1-0a0b0c0d'); // another task whose id starts the same
    make('other-2-1-0a0b0c0d');
    make('lost-1-x-1-0a0b0c0d'); // a task whose id is lost-1-x
    assert.equal(await ex.removeLeftovers(['lost-1', 'not-there']), 2);
    assert.deepEqual(readdirSync(workDir).sort(), [
      'lost-1-x-1-0a0b0c0d',
      'lost-10-1-0a0b0c0d',
      'other-2-1-0a0b0c0d',
    ]);
  } finally {
    await ex.close();
  }
});

test('cleanEnv drops the agent environment but keeps the task env', async () => {
  process.env.EXECUTOR_AGENT_SECRET = 'agent-only';
  try {
    const dirty = await run(spec({ script: 'echo "[$EXECUTOR_AGENT_SECRET]"' }));
    const clean = await run(
      spec({
        script: 'echo "[$EXECUTOR_AGENT_SECRET][$MINE]"; echo "$PATH"',
        cleanEnv: true,
        env: { MINE: 'x' },
      }),
    );
    assert.equal(dirty.result.stdout, '[agent-only]\n');
    assert.equal(
      clean.result.stdout,
      '[][x]\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n',
    );
  } finally {
    delete process.env.EXECUTOR_AGENT_SECRET;
  }
});

test('a shebang line picks the interpreter', async () => {
  const { result } = await run(
    spec({ script: '#!/usr/bin/env python3\nimport sys\nprint("py", sys.argv[1])', args: ['a'] }),
  );
  assert.equal(result.status, 'succeeded', result.stderr);
  assert.equal(result.stdout, 'py a\n');
});

test('a missing interpreter fails with a clear error and exit code 127', async () => {
  const task = executor.start(spec({ script: '#!/nonexistent/interp\necho hi' }), () => undefined);
  const result = await task.result;
  assert.equal(result.status, 'failed');
  assert.equal(result.error, 'interpreter not found: /nonexistent/interp');
  assert.equal(result.exitCode, 127);
  assert.ok((await task.started) instanceof Date);
});

test('a missing working directory fails with a clear error', async () => {
  const { result } = await run(spec({ script: 'true', workingDir: '/nonexistent/dir' }));
  assert.equal(result.status, 'failed');
  assert.equal(result.error, 'working directory not found: /nonexistent/dir');
  assert.equal(result.exitCode, -1);
});

test('a non-zero exit is failed with the code in words', async () => {
  const { result } = await run(spec({ script: 'echo out; echo err >&2; exit 3' }));
  assert.equal(result.status, 'failed');
  assert.equal(result.exitCode, 3);
  assert.equal(result.error, 'exited with code 3');
  assert.equal(result.stdout, 'out\n');
  assert.equal(result.stderr, 'err\n');
});

test('a Python traceback ends failed with the traceback in stderr', async () => {
  const { result } = await run(spec({ type: 'python', script: 'print("before")\n1 / 0\n' }));
  assert.equal(result.status, 'failed');
  assert.equal(result.exitCode, 1);
  assert.equal(result.stdout, 'before\n');
  assert.match(
    result.stderr,
    /^Traceback \(most recent call last\):\n[\s\S]*ZeroDivisionError: division by zero\n$/,
  );
});

test('sequence numbers increase from 1 and keep the order of stdout and stderr', async () => {
  const { result, chunks } = await run(
    spec({ script: 'for i in 1 2 3 4 5 6; do echo "out$i"; sleep 0.02; echo "err$i" >&2; sleep 0.02; done' }),
  );
  assert.equal(result.status, 'succeeded');
  assert.deepEqual(
    chunks.map((c) => c.seq),
    chunks.map((_, i) => i + 1),
  );
  const merged = chunks.map((c) => `${c.stream}:${c.data}`).join('');
  const expected = [1, 2, 3, 4, 5, 6].map((i) => `stdout:out${i}\nstderr:err${i}\n`).join('');
  assert.equal(merged, expected);
});

test('output is streamed while the task runs, not only at the end', async () => {
  let firstAt = 0;
  const { result } = await run(spec({ script: 'echo early; sleep 1; echo late' }), executor, () => {
    firstAt ||= Date.now();
  });
  assert.ok(firstAt > 0);
  assert.ok(
    result.completedAt.getTime() - firstAt >= 700,
    `first chunk ${result.completedAt.getTime() - firstAt} ms before the end`,
  );
});

test('invalid UTF-8 is replaced and a character split across writes stays whole', async () => {
  const { result, chunks } = await run(
    spec({ script: "printf 'a\\377b\\342\\202'; sleep 0.3; printf '\\254c'" }),
  );
  assert.equal(result.status, 'succeeded');
  assert.equal(chunks.map((c) => c.data).join(''), 'a\ufffdb€c');
  assert.equal(result.stdout, 'a\ufffdb€c');
  assert.equal(result.stdoutBytes, 7);
  assert.ok(chunks.length >= 2, 'the two writes arrive as separate chunks');
});

test('the result keeps head and tail within the budget with byte totals', async () => {
  const ex = createTaskExecutor(
    { logger, workDir: path.join(scratch, 'work'), resultBudgetBytes: 1000 },
    { cgroups },
  );
  try {
    const { result } = await run(
      spec({
        script: 'i=0; while [ $i -lt 1000 ]; do printf "%05d\\n" $i; i=$((i+1)); done; echo small >&2',
      }),
      ex,
    );
    assert.equal(result.stdoutBytes, 6000);
    assert.equal(result.stdoutTruncated, true);
    assert.ok(result.stdout.startsWith('00000\n00001\n'));
    assert.ok(result.stdout.endsWith('00998\n00999\n'));
    assert.match(result.stdout, /\[\.\.\. 5000 bytes omitted, 6000 bytes in total \.\.\.\]/);
    assert.equal(result.stderr, 'small\n');
    assert.equal(result.stderrTruncated, false);
  } finally {
    await ex.close();
  }
});

test('timeout kills grandchildren, background jobs and a setsid escapee', async () => {
  const pidFile = path.join(scratch, `pids-${counter}`);
  writeFileSync(pidFile, '');
  const start = Date.now();
  const { result } = await run(
    spec({
      script: [
        'sleep 300 & echo $! >> "$PIDS"',
        'sh -c \'sleep 300 & echo $! >> "$PIDS"; wait\' & echo $! >> "$PIDS"',
        'setsid sh -c \'echo $$ >> "$PIDS"; trap "" TERM; sleep 300\' &',
        'echo $$ >> "$PIDS"',
        'wait',
      ].join('\n'),
      env: { PIDS: pidFile },
      timeoutSeconds: 1,
      killGraceSeconds: 1,
    }),
  );
  assert.equal(result.status, 'timed_out');
  assert.equal(result.error, 'timed out after 1s');
  assert.ok(Date.now() - start < 10_000);
  const pids = readPids(pidFile);
  assert.equal(pids.length, 5, `recorded pids: ${pids.join(' ')}`);
  const survivors = pids.filter(alive);
  if (!cgroups.capabilities.v2Base && Object.keys(cgroups.capabilities.v1Bases).length === 0) {
    // Without any cgroup the setsid escapee is out of reach; everything else must be gone.
    assert.ok(survivors.length <= 1, `survivors: ${survivors.join(' ')}`);
    for (const pid of survivors) process.kill(pid, 'SIGKILL');
  } else {
    assert.deepEqual(survivors, [], 'no process of the task survives');
  }
});

test('a process that ignores SIGTERM is killed with SIGKILL after the grace period', async () => {
  const pidFile = path.join(scratch, `pids-${counter}`);
  const start = Date.now();
  const { result } = await run(
    spec({
      script: `trap '' TERM; echo $$ > ${pidFile}; while :; do sleep 0.05; done`,
      timeoutSeconds: 1,
      killGraceSeconds: 1,
    }),
  );
  const elapsed = Date.now() - start;
  assert.equal(result.status, 'timed_out');
  assert.equal(result.signal, 'SIGKILL');
  assert.equal(result.exitCode, 137);
  assert.ok(elapsed >= 1900 && elapsed < 8000, `took ${elapsed} ms`);
  const [pid] = readPids(pidFile);
  assert.ok(pid !== undefined && !alive(pid));
});

test('a background job left by a finished script is killed', async () => {
  const pidFile = path.join(scratch, `pids-${counter}`);
  const { result } = await run(spec({ script: `sleep 300 & echo $! > ${pidFile}; echo done` }));
  assert.equal(result.status, 'succeeded');
  assert.equal(result.stdout, 'done\n');
  const [pid] = readPids(pidFile);
  assert.ok(pid !== undefined && !alive(pid), `background sleep ${pid} still alive`);
});

test('cancel stops a running task with status canceled', async () => {
  const task = executor.start(spec({ script: 'echo started; sleep 300' }), () => undefined);
  await task.started;
  await sleep(200);
  task.cancel('operator asked');
  const result = await task.result;
  assert.equal(result.status, 'canceled');
  assert.equal(result.error, 'canceled: operator asked');
  assert.equal(result.signal, 'SIGTERM');
  assert.equal(result.stdout, 'started\n');
});

test('a task canceled before it spawned never runs', async () => {
  const marker = path.join(scratch, `never-${counter}`);
  const task = executor.start(spec({ script: `touch ${marker}` }), () => undefined);
  task.cancel('changed my mind');
  const result = await task.result;
  assert.equal(result.status, 'canceled');
  assert.equal(result.error, 'canceled: changed my mind');
  assert.equal(result.exitCode, -1);
  assert.throws(() => readFileSync(marker), /ENOENT/);
});

test('the queue is FIFO, bounded, and a queued task can be canceled', async () => {
  const ex = createTaskExecutor(
    { logger, workDir: path.join(scratch, 'work'), maxConcurrent: 1, maxQueued: 2 },
    { cgroups },
  );
  try {
    const order: string[] = [];
    const first = ex.start(spec({ taskId: 'q-a', script: 'sleep 0.3' }), () => undefined);
    const second = ex.start(spec({ taskId: 'q-b', script: 'echo b' }), () => undefined);
    const third = ex.start(spec({ taskId: 'q-c', script: 'echo c' }), () => undefined);
    assert.equal(ex.running, 1);
    assert.equal(ex.queued, 2);
    assert.throws(
      () => ex.start(spec({ taskId: 'q-d', script: 'true' }), () => undefined),
      (err: unknown) => err instanceof ExecutorError && err.code === 'EXECUTOR_QUEUE_FULL',
    );
    assert.throws(
      () => ex.start(spec({ taskId: 'q-a', script: 'true' }), () => undefined),
      (err: unknown) => err instanceof ExecutorError && err.code === 'EXECUTOR_DUPLICATE_TASK',
    );
    third.cancel('not needed');
    assert.equal(ex.queued, 1);
    for (const t of [first, second, third]) void t.result.then((r) => order.push(`${r.taskId}:${r.status}`));
    const [ra, rb, rc] = await Promise.all([first.result, second.result, third.result]);
    assert.equal(rc.status, 'canceled');
    assert.equal(rc.error, 'canceled: not needed');
    assert.equal(rb.status, 'succeeded');
    assert.ok(rb.startedAt.getTime() >= ra.completedAt.getTime(), 'b waited for a');
    assert.deepEqual(order, ['q-c:canceled', 'q-a:succeeded', 'q-b:succeeded']);
  } finally {
    await ex.close();
  }
});

test('close cancels running and queued tasks and waits for them', async () => {
  const ex = createTaskExecutor(
    { logger, workDir: path.join(scratch, 'work'), maxConcurrent: 1 },
    { cgroups },
  );
  const a = ex.start(spec({ script: 'sleep 300' }), () => undefined);
  const b = ex.start(spec({ script: 'sleep 300' }), () => undefined);
  await a.started;
  await ex.close();
  assert.equal((await a.result).status, 'canceled');
  assert.equal((await b.result).status, 'canceled');
  assert.throws(() => ex.start(spec({ script: 'true' }), () => undefined), { code: 'EXECUTOR_CLOSED' });
});

test('output past the output limit stops the task', async () => {
  const { result, chunks } = await run(
    spec({
      script: 'yes 0123456789',
      limits: { memoryBytes: 0, cpuMillicores: 0, maxProcesses: 0, maxOutputBytes: 100_000 },
    }),
  );
  assert.equal(result.status, 'failed');
  assert.equal(result.error, 'output limit exceeded');
  assert.deepEqual(result.limitsEnforced, [{ name: 'output', mechanism: 'agent', value: 100_000 }]);
  assert.ok(result.stdoutBytes > 100_000);
  const sent = chunks.reduce((n, c) => n + Buffer.byteLength(c.data), 0);
  assert.ok(sent <= 100_000 + 64 * 1024, `sent ${sent} bytes`);
});

test('200 MB of output streams through with bounded memory and exact byte counts', async (t) => {
  const total = 200 * 1024 * 1024;
  let received = 0;
  let maxChunk = 0;
  let lastSeq = 0;
  let peak = process.memoryUsage().rss;
  const baseline = peak;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    // Not through run(): it would keep every chunk.
    const task = executor.start(spec({ script: `head -c ${total} /dev/zero` }), async (c) => {
      const bytes = Buffer.byteLength(c.data);
      received += bytes;
      maxChunk = Math.max(maxChunk, bytes);
      assert.equal(c.seq, lastSeq + 1);
      lastSeq = c.seq;
      // A slow-ish consumer: every 64th chunk waits a timer tick.
      if (c.seq % 64 === 0) await sleep(1);
    });
    const result = await task.result;
    assert.equal(result.status, 'succeeded', result.error);
    assert.equal(result.stdoutBytes, total);
    assert.equal(received, total);
    assert.equal(result.stdoutTruncated, true);
    assert.ok(maxChunk <= 64 * 1024);
  } finally {
    clearInterval(sampler);
  }
  const growthMb = (peak - baseline) / 1024 / 1024;
  t.diagnostic(`RSS grew ${growthMb.toFixed(1)} MB while streaming 200 MB`);
  assert.ok(growthMb < 100, `RSS grew ${growthMb.toFixed(1)} MB`);
});

test('a memory hog is stopped by its memory limit', async (t) => {
  if (!cgroups.canEnforce('memory')) {
    t.skip(`no writable memory cgroup: ${cgroups.capabilities.unavailable.join('; ')}`);
    return;
  }
  const { result } = await run(
    spec({
      type: 'python',
      script: 'chunks = []\nwhile True:\n    chunks.append(bytearray(10 * 1024 * 1024))\n',
      limits: { memoryBytes: 64 * 1024 * 1024, cpuMillicores: 0, maxProcesses: 0, maxOutputBytes: 0 },
      timeoutSeconds: 20,
    }),
  );
  assert.equal(result.status, 'failed');
  assert.equal(result.error, 'memory limit exceeded');
  assert.equal(result.signal, 'SIGKILL');
  const limit = result.limitsEnforced.find((l) => l.name === 'memory');
  assert.ok(limit && (limit.mechanism === 'cgroup1' || limit.mechanism === 'cgroup2'));
  assert.equal(limit.value, 64 * 1024 * 1024);
});

test('a fork bomb is stopped by the process limit and nothing survives', async (t) => {
  if (!cgroups.canEnforce('processes')) {
    t.skip(`no writable pids cgroup: ${cgroups.capabilities.unavailable.join('; ')}`);
    return;
  }
  const marker = `forkbomb-${process.pid}-${counter + 1}`;
  const start = Date.now();
  const { result } = await run(
    spec({
      // The marker argument makes every copy of the bomb findable in /proc.
      script: 'bomb() { bomb | bomb & }; bomb; sleep 60',
      args: [marker],
      limits: { memoryBytes: 0, cpuMillicores: 0, maxProcesses: 40, maxOutputBytes: 0 },
      timeoutSeconds: 30,
    }),
  );
  assert.equal(result.status, 'failed');
  assert.equal(result.error, 'process limit reached');
  assert.ok(Date.now() - start < 15_000, 'stopped by the limit, not the timeout');
  assert.ok(result.limitsEnforced.some((l) => l.name === 'processes' && l.value === 40));
  assert.deepEqual(processesMentioning(marker), []);
});

test('a cpu limit slows a busy loop down', async (t) => {
  if (!cgroups.canEnforce('cpu')) {
    t.skip(`no writable cpu cgroup: ${cgroups.capabilities.unavailable.join('; ')}`);
    return;
  }
  const { result } = await run(
    spec({
      type: 'python',
      script:
        'import time\ns = time.process_time()\nt = time.time()\nwhile time.time() - t < 1.0:\n    pass\nprint(time.process_time() - s)\n',
      limits: { memoryBytes: 0, cpuMillicores: 200, maxProcesses: 0, maxOutputBytes: 0 },
    }),
  );
  assert.equal(result.status, 'succeeded', result.stderr);
  const cpuSeconds = Number(result.stdout);
  assert.ok(cpuSeconds < 0.5, `used ${cpuSeconds}s of CPU in 1s at 200 millicores`);
  assert.ok(result.limitsEnforced.some((l) => l.name === 'cpu' && l.value === 200));
});

test('without cgroups the memory limit falls back to prlimit', async () => {
  const ex = createTaskExecutor(
    { logger, workDir: path.join(scratch, 'work') },
    { cgroups: createNoCgroupManager('disabled for this test') },
  );
  try {
    const { result } = await run(
      spec({
        type: 'python',
        script: 'x = bytearray(512 * 1024 * 1024)\nprint(len(x))\n',
        limits: { memoryBytes: 256 * 1024 * 1024, cpuMillicores: 0, maxProcesses: 0, maxOutputBytes: 0 },
      }),
      ex,
    );
    assert.deepEqual(result.limitsEnforced, [
      { name: 'memory', mechanism: 'prlimit', value: 256 * 1024 * 1024 },
    ]);
    assert.equal(result.status, 'failed');
    assert.match(result.stderr, /MemoryError/);
  } finally {
    await ex.close();
  }
});

test('run_as runs the script as that user, or is refused when the agent is not root', async () => {
  if (process.getuid?.() === 0) {
    const { result } = await run(spec({ script: 'id -un; id -u', runAs: 'nobody' }));
    assert.equal(result.status, 'succeeded', result.error || result.stderr);
    assert.equal(result.stdout, 'nobody\n65534\n');
    const py = await run(spec({ type: 'python', script: 'import os\nprint(os.getuid())', runAs: 'nobody' }));
    assert.equal(py.result.stdout, '65534\n', py.result.error || py.result.stderr);
    const unknown = await run(spec({ script: 'true', runAs: 'no-such-user-xyz' }));
    assert.equal(unknown.result.status, 'failed');
    assert.equal(unknown.result.error, 'unknown user: no-such-user-xyz');
  } else {
    const { result } = await run(spec({ script: 'true', runAs: 'root' }));
    assert.equal(result.status, 'failed');
    assert.match(result.error, /^run_as root needs the agent to run as root/);
  }
});

/** The directory of a task under `workDir`, or null. */
function taskDirOf(workDir: string, taskId: string): string | null {
  try {
    const name = readdirSync(workDir).find((n) => n.startsWith(`${taskId}-`));
    return name ? path.join(workDir, name) : null;
  } catch {
    return null;
  }
}

/** Parent pid, command and session of a live process; null when gone. */
function procStat(pid: number): { ppid: number; comm: string; session: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (/^[ZX]/.test(rest[0] ?? '')) return null;
    return {
      ppid: Number(rest[1]),
      comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
      session: Number(rest[3]),
    };
  } catch {
    return null;
  }
}

/**
 * Task processes waiting at their gate: children of a spawn helper (a perl child
 * of this process) that are prepared (own session, stdin /dev/null) but still perl.
 */
/** Nothing of a task stopped at its gate ran or was left: no exec, no marker, no process, no directory. */
async function assertNeverRan(
  task: { spawned: boolean },
  result: { exitCode: number },
  marker: string,
  taskId: string,
): Promise<void> {
  assert.equal(result.exitCode, -1);
  assert.equal(task.spawned, false);
  await sleep(100);
  assert.equal(existsSync(marker), false);
  assert.deepEqual(waitingAtGate(), []);
  assert.equal(taskDirOf(workDir, taskId), null);
}

function waitingAtGate(): number[] {
  const all = readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
  const helpers = new Set(
    all.filter((pid) => {
      const st = procStat(pid);
      return st?.ppid === process.pid && st.comm === 'perl';
    }),
  );
  return all.filter((pid) => {
    const st = procStat(pid);
    if (!st || !helpers.has(st.ppid) || st.comm !== 'perl' || st.session !== pid) return false;
    try {
      return readlinkSync(`/proc/${pid}/fd/0`) === '/dev/null';
    } catch {
      return false;
    }
  });
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !check(); await sleep(10))
    if (Date.now() > end) assert.fail(`timed out: ${what}`);
}

function held(): { notBefore: Promise<unknown>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const notBefore = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { notBefore, resolve, reject };
}

const workDir = path.join(scratch, 'work');

test(
  'notBefore: the process is made and waits at its gate; it runs, and starts, only once notBefore resolves',
  { skip: noHelper },
  async () => {
    const marker = path.join(scratch, `gated-${counter}`);
    const s = spec({ script: `echo ran >> ${marker}; echo hello` });
    const gate = held();
    let startedAt: Date | null = null;
    const task = executor.start(s, () => undefined, { notBefore: gate.notBefore });
    void task.started.then((d) => (startedAt = d));
    // With the spawn helper, the task's process is made and waits at its gate, with
    // nothing of the task on disk yet.
    await until('the waiting process', () => waitingAtGate().length === 1);
    await sleep(200);
    assert.equal(waitingAtGate().length, 1);
    assert.equal(taskDirOf(workDir, s.taskId), null, 'the task directory is made after the gate');
    assert.equal(existsSync(marker), false, 'nothing ran before notBefore');
    assert.equal(startedAt, null, 'not started before notBefore');
    assert.equal(task.spawned, false);
    gate.resolve();
    const result = await task.result;
    assert.equal(result.status, 'succeeded', result.error);
    assert.equal(result.stdout, 'hello\n');
    assert.equal(readFileSync(marker, 'utf8'), 'ran\n');
    assert.ok(startedAt !== null);
    assert.equal(task.spawned, true);
  },
);

test(
  'notBefore rejected: the waiting process exits without running, the task ends not started',
  { skip: noHelper },
  async () => {
    const marker = path.join(scratch, `refused-${counter}`);
    const s = spec({ script: `touch ${marker}` });
    const gate = held();
    const task = executor.start(s, () => undefined, { notBefore: gate.notBefore });
    await until('the waiting process', () => waitingAtGate().length === 1);
    gate.reject(new Error('disk full'));
    const result = await task.result;
    assert.equal(result.status, 'failed');
    assert.equal(result.error, 'not started: disk full');
    await assertNeverRan(task, result, marker, s.taskId);
  },
);

test(
  'a task canceled while its process waits for notBefore never runs, even when notBefore resolves',
  { skip: noHelper },
  async () => {
    const marker = path.join(scratch, `gated-cancel-${counter}`);
    const s = spec({ script: `touch ${marker}` });
    const gate = held();
    const task = executor.start(s, () => undefined, { notBefore: gate.notBefore });
    await until('the waiting process', () => waitingAtGate().length === 1);
    task.cancel('operator asked');
    gate.resolve();
    const result = await task.result;
    assert.equal(result.status, 'canceled');
    assert.equal(result.error, 'canceled: operator asked');
    await assertNeverRan(task, result, marker, s.taskId);
  },
);
