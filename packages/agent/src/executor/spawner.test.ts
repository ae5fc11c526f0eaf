/**
 * The spawn helper (spawner.ts) and the executor on both ways of starting a
 * task: through the helper and through child_process.spawn.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { createSpawner } from './spawner.js';
import { createTaskExecutor } from './task-executor.js';
import type { ExecResult, TaskExecutor, TaskSpec } from './types.js';

const logger = pino({ level: 'silent' });
const scratch = mkdtempSync(path.join(os.tmpdir(), 'spawner-test-'));
const executors: TaskExecutor[] = [];
after(async () => {
  for (const ex of executors) await ex.close();
  rmSync(scratch, { recursive: true, force: true });
});

let counter = 0;
function spec(over: Partial<TaskSpec> & { script: string }): TaskSpec {
  return {
    taskId: `spawner-${++counter}`,
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

function executorWith(spawnHelper: boolean): TaskExecutor {
  const ex = createTaskExecutor({ logger, spawnHelper, workDir: path.join(scratch, `work-${spawnHelper}`) });
  executors.push(ex);
  return ex;
}

async function run(ex: TaskExecutor, s: TaskSpec): Promise<ExecResult> {
  return ex.start(s, () => undefined).result;
}

/** Children of this process whose command is `comm`. */
function childrenNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && name === comm) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

const probe = await createSpawner(logger);
await probe?.close();
const haveHelper = probe !== null;

for (const helper of [true, false]) {
  const name = helper ? 'helper' : 'child_process.spawn';
  test(`${name}: args, env, working directory, exit code and both streams`, async (t) => {
    if (helper && !haveHelper) return t.skip('no usable spawn helper (perl, /proc)');
    const ex = executorWith(helper);
    const r = await run(
      ex,
      spec({
        script: 'echo "$1|$2|$FOO|$(pwd)"; echo err >&2; exit 3',
        args: ['a b', 'c'],
        env: { FOO: 'x=y' },
        workingDir: scratch,
      }),
    );
    assert.equal(r.status, 'failed');
    assert.equal(r.exitCode, 3);
    assert.equal(r.stdout, `a b|c|x=y|${scratch}\n`);
    assert.equal(r.stderr, 'err\n');
  });

  test(`${name}: the task has default signal dispositions, no blocked signals, its own session`, async (t) => {
    if (helper && !haveHelper) return t.skip('no usable spawn helper (perl, /proc)');
    const ex = executorWith(helper);
    const r = await run(
      ex,
      spec({
        script: [
          'grep -E "^Sig(Ign|Blk)" /proc/self/status',
          'ps -o sid= -o pgid= -o pid= -p $$',
          'readlink /proc/self/fd/0',
        ].join('\n'),
      }),
    );
    assert.equal(r.status, 'succeeded', r.stderr);
    const [blk, ign, ids, stdin] = r.stdout.split('\n');
    assert.match(blk ?? '', /^SigBlk:\s+0+$/);
    assert.match(ign ?? '', /^SigIgn:\s+0+$/);
    const [sid, pgid, pid] = (ids ?? '').trim().split(/\s+/);
    assert.equal(sid, pid);
    assert.equal(pgid, pid);
    assert.equal(stdin, '/dev/null');
  });

  test(`${name}: a task does not hold another task's output pipes`, async (t) => {
    if (helper && !haveHelper) return t.skip('no usable spawn helper (perl, /proc)');
    const ex = executorWith(helper);
    let first = '';
    let printed!: () => void;
    const ready = new Promise<void>((resolve) => (printed = resolve));
    const a = ex.start(spec({ script: 'readlink /proc/$$/fd/1 /proc/$$/fd/2; sleep 1' }), (c) => {
      first += c.data;
      if (first.split('\n').length > 2) printed();
    });
    await ready;
    const b = await run(ex, spec({ script: 'for f in /proc/$$/fd/*; do readlink $f; done' }));
    const theirs = first.trim().split('\n');
    assert.equal(theirs.length, 2);
    for (const link of theirs) assert.ok(!b.stdout.includes(link), `${link} leaked into ${b.stdout}`);
    assert.equal((await a.result).status, 'succeeded');
  });

  test(`${name}: an interpreter that cannot be executed is reported, nothing hangs`, async (t) => {
    if (helper && !haveHelper) return t.skip('no usable spawn helper (perl, /proc)');
    const ex = executorWith(helper);
    const r = await run(ex, spec({ script: '#!/bin/sh\nexit 0', workingDir: '/nonexistent-dir-xyz' }));
    assert.equal(r.status, 'failed');
    assert.equal(r.error, 'working directory not found: /nonexistent-dir-xyz');
  });
}

for (const helper of [true, false]) {
  const name = helper ? 'helper' : 'child_process.spawn';
  test(`${name}: a work directory removed between tasks is made again; a script with a NUL byte still runs`, async (t) => {
    if (helper && !haveHelper) return t.skip('no usable spawn helper (perl, /proc)');
    const workDir = path.join(scratch, `vanishing-${helper}`);
    const ex = createTaskExecutor({ logger, spawnHelper: helper, workDir });
    executors.push(ex);
    assert.equal((await run(ex, spec({ script: 'echo one' }))).stdout, 'one\n');
    rmSync(workDir, { recursive: true, force: true });
    const again = await run(ex, spec({ script: 'echo two; ls -ld "$(pwd)" | cut -c1-10' }));
    assert.equal(again.status, 'succeeded', again.error);
    assert.equal(again.stdout, 'two\ndrwx------\n');
    const nul = await run(ex, spec({ script: 'echo "a"; # \0 in a comment\necho b' }));
    assert.equal(nul.status, 'succeeded', nul.error);
    assert.equal(nul.stdout, 'a\nb\n');
  });
}

test('helper: exec and chdir failures come back as errors with their stage', async (t) => {
  const s = await createSpawner(logger);
  if (!s) return t.skip('no usable spawn helper (perl, /proc)');
  try {
    const base = { args: [], env: [], joinCgroups: [], joinStrict: false };
    const noFile = await s.start({ ...base, file: '/nonexistent/bin', cwd: '/' });
    assert.ok('error' in noFile);
    assert.equal(noFile.stage, 'exec');
    assert.equal(noFile.error.code, 'ENOENT');
    const noDir = await s.start({ ...base, file: '/bin/true', cwd: '/nonexistent-dir-xyz' });
    assert.ok('error' in noDir);
    assert.equal(noDir.stage, 'chdir');
    const strict = await s.start({
      ...base,
      file: '/bin/true',
      cwd: '/',
      joinCgroups: ['/nonexistent-dir-xyz/cgroup.procs'],
      joinStrict: true,
    });
    assert.ok('error' in strict);
    assert.equal(strict.stage, 'join');
    const lenient = await s.start({
      ...base,
      file: '/bin/true',
      cwd: '/',
      joinCgroups: ['/nonexistent-dir-xyz/cgroup.procs'],
    });
    assert.ok('process' in lenient);
    lenient.process.stdout.resume();
    lenient.process.stderr.resume();
    assert.deepEqual(await lenient.process.exited, { code: 0, signal: null, error: null });
  } finally {
    await s.close();
  }
});

test('helper: a signal that ends the task is reported by name', async (t) => {
  const s = await createSpawner(logger);
  if (!s) return t.skip('no usable spawn helper (perl, /proc)');
  try {
    const r = await s.start({
      file: '/bin/sh',
      args: ['-c', 'kill -SEGV $$'],
      env: [],
      cwd: '/',
      joinCgroups: [],
      joinStrict: false,
    });
    assert.ok('process' in r);
    r.process.stdout.resume();
    r.process.stderr.resume();
    assert.deepEqual(await r.process.exited, { code: null, signal: 'SIGSEGV', error: null });
  } finally {
    await s.close();
  }
});

test('helper: if the helper dies mid-task the task fails, its processes are killed, the next task runs', async (t) => {
  if (!haveHelper) return t.skip('no usable spawn helper (perl, /proc)');
  const ex = executorWith(true);
  assert.equal((await run(ex, spec({ script: 'true' }))).status, 'succeeded');
  const task = ex.start(spec({ script: 'echo $$; sleep 30' }), () => undefined);
  await task.started;
  await new Promise((r) => setTimeout(r, 200));
  const helpers = childrenNamed('perl');
  assert.ok(helpers.length >= 1, 'a perl helper is a child of this process');
  for (const pid of helpers) process.kill(pid, 'SIGKILL');
  const r = await task.result;
  assert.equal(r.status, 'failed');
  assert.match(r.error, /spawn helper/);
  const pid = Number(r.stdout.trim());
  assert.ok(pid > 0);
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((res) => setTimeout(res, 20));
  assert.equal(alive(pid), false, 'the task process was killed');
  const next = await run(ex, spec({ script: 'echo again' }));
  assert.equal(next.status, 'succeeded');
  assert.equal(next.stdout, 'again\n');
});
