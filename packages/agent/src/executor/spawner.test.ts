/**
 * The spawn helper (spawner.ts) and the executor on both ways of starting a
 * task: through the helper and through child_process.spawn.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { createCgroupManager } from './cgroups.js';
import { createSpawner, type SpawnRequest, type Spawner } from './spawner.js';
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

/** Runs `fn` with a fresh spawn helper, closed after; skips (saying why) where there is none. */
async function withHelper(t: TestContext, fn: (s: Spawner) => Promise<void>): Promise<void> {
  const s = await createSpawner(logger);
  if (!s) return t.skip('no usable spawn helper (perl, /proc)');
  try {
    await fn(s);
  } finally {
    await s.close();
  }
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

test('helper: exec and chdir failures come back as errors with their stage', (t) =>
  withHelper(t, async (s) => {
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
  }));

test("helper: a program named without a slash goes through Perl's exec (PATH, %ENV): same environment and signals", (t) =>
  withHelper(t, async (s) => {
    const { out, exit } = await spawnOut(s, 'echo "$GREETING"; grep -E "^Sig(Ign|Blk)" /proc/self/status', {
      file: 'sh',
      env: ['PATH=/usr/bin:/bin', 'GREETING=hi there'],
      joinStrict: false,
    });
    assert.deepEqual(exit, { code: 0, signal: null, error: null });
    const [greeting, blk, ign] = out.split('\n');
    assert.equal(greeting, 'hi there');
    assert.match(blk ?? '', /^SigBlk:\s+0+$/);
    assert.match(ign ?? '', /^SigIgn:\s+0+$/);
  }));

test('helper: a signal that ends the task is reported by name', (t) =>
  withHelper(t, async (s) => {
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
  }));

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

/** Why a test of the clone3 path cannot run here, or null. */
async function clone3Unavailable(): Promise<{ reason: string } | { v2Base: string; v1Pids: string | null }> {
  if (!haveHelper) return { reason: 'no usable spawn helper (perl, /proc)' };
  if (process.getuid?.() !== 0) return { reason: 'not root: cannot make cgroups' };
  if (process.arch !== 'x64' && process.arch !== 'arm64')
    return { reason: `clone3 syscall number not known on ${process.arch}` };
  const [major = 0, minor = 0] = os.release().split('.').map(Number);
  if (major < 5 || (major === 5 && minor < 7))
    return { reason: `kernel ${os.release()} has no CLONE_INTO_CGROUP (5.7+)` };
  const cgroups = await createCgroupManager(logger);
  await cgroups.close?.();
  const caps = cgroups.capabilities;
  if (!caps.v2Base) return { reason: `no writable cgroup v2: ${caps.unavailable.join('; ')}` };
  return { v2Base: caps.v2Base, v1Pids: caps.v1Bases.pids ?? null };
}

/** The path /proc/<pid>/cgroup shows for a cgroup v2 directory. */
function cgroupPath(dir: string): string {
  const mount = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f.includes('cgroup2'))?.[4];
  assert.ok(mount && dir.startsWith(`${mount}/`), `${dir} is not under the cgroup2 mount ${mount}`);
  return dir.slice(mount.length);
}

/** Runs `sh -c script` through the spawner; its stdout and how it was created. */
async function spawnOut(
  s: Spawner,
  script: string,
  over: Partial<SpawnRequest> = {},
): Promise<{ out: string; via: string | undefined; exit: unknown }> {
  const r = await s.start({
    file: '/bin/sh',
    args: ['-c', script],
    env: ['PATH=/usr/bin:/bin'],
    cwd: '/',
    joinCgroups: [],
    joinStrict: true,
    ...over,
  });
  if ('error' in r) throw r.error;
  let out = '';
  r.process.stdout.on('data', (d: Buffer) => (out += d.toString()));
  r.process.stderr.resume();
  const [exit] = await Promise.all([
    r.process.exited,
    new Promise((resolve) => r.process.stdout.once('close', resolve)),
  ]);
  return { out, via: r.process.via, exit };
}

for (const clone3 of [true, false]) {
  const name = clone3 ? 'clone3 into the cgroup' : 'fallback: fork and cgroup.procs write';
  test(`helper, ${name}: the child is in the task's cgroups before exec`, async (t) => {
    const env = await clone3Unavailable();
    if ('reason' in env) return t.skip(env.reason);
    const s = await createSpawner(logger, { cloneIntoCgroup: clone3 });
    assert.ok(s, 'the helper starts');
    const leaf = `spawner-test-${process.pid}-${clone3}`;
    const v2 = path.join(env.v2Base, leaf);
    const v1 = env.v1Pids ? path.join(env.v1Pids, leaf) : null;
    mkdirSync(v2);
    if (v1) mkdirSync(v1);
    try {
      assert.equal(s.cloneIntoCgroup, clone3, 'the helper says how it creates children');
      // The v2 cgroup only (a task without limits: by far the most common start). The
      // first thing the exec'd program sees is its cgroup.
      const alone = await spawnOut(s, 'grep "^0::" /proc/self/cgroup', { cgroupDir: v2 });
      assert.deepEqual(alone.exit, { code: 0, signal: null, error: null });
      assert.equal(alone.out.split('\n')[0], `0::${cgroupPath(v2)}`);
      assert.equal(alone.via, clone3 ? 'clone3' : 'fork');
      if (v1) {
        // v2 plus a v1 cgroup (a task with a limit on a hybrid host): both before exec.
        const both = await spawnOut(s, 'grep -E "^(0::|[0-9]+:pids:)" /proc/self/cgroup', {
          cgroupDir: v2,
          joinCgroups: [path.join(v1, 'cgroup.procs')],
        });
        const lines = both.out.trim().split('\n');
        assert.equal(lines.length, 2, both.out);
        for (const line of lines) assert.ok(line.endsWith(`/agent-platform/${leaf}`), line);
        assert.equal(both.via, clone3 ? 'clone3' : 'fork');
      } else {
        t.diagnostic('no cgroup v1 pids hierarchy: the v2 + v1 case is not run');
      }
      // A cgroup directory that is not there: strict fails at 'join' and nothing runs.
      const gone = await s.start({
        file: '/bin/true',
        args: [],
        env: [],
        cwd: '/',
        cgroupDir: path.join(env.v2Base, 'nonexistent-xyz'),
        joinCgroups: [],
        joinStrict: true,
      });
      assert.ok('error' in gone);
      assert.equal(gone.stage, 'join');
      assert.equal(s.cloneIntoCgroup, clone3, 'a missing cgroup does not turn clone3 off');
    } finally {
      await s.close();
      rmdirSync(v2);
      if (v1) rmdirSync(v1);
    }
  });
}

test('helper: a cgroup once emptied with cgroup.kill still gets the task (clone3 or its fallback)', async (t) => {
  const env = await clone3Unavailable();
  if ('reason' in env) return t.skip(env.reason);
  const s = await createSpawner(logger, { cloneIntoCgroup: true });
  assert.ok(s, 'the helper starts');
  const dir = path.join(env.v2Base, `spawner-killed-${process.pid}`);
  mkdirSync(dir);
  try {
    if (!existsSync(path.join(dir, 'cgroup.kill'))) return t.skip('no cgroup.kill (kernel < 5.14)');
    writeFileSync(path.join(dir, 'cgroup.kill'), '1');
    // Kernel 6.18 SIGKILLs a clone3 child whose cgroup's kill count differs from its
    // parent's: the helper sees it die before it ran and forks instead.
    const r = await spawnOut(s, 'grep "^0::" /proc/self/cgroup', { cgroupDir: dir });
    assert.deepEqual(r.exit, { code: 0, signal: null, error: null });
    assert.ok(r.out.trim().endsWith(`/agent-platform/spawner-killed-${process.pid}`), r.out);
    t.diagnostic(`created by ${r.via ?? '?'}; clone3 still on: ${s.cloneIntoCgroup}`);
    if (r.via === 'fork') assert.equal(s.cloneIntoCgroup, false);
  } finally {
    await s.close();
    rmdirSync(dir);
  }
});

/** Live children of `ppid`. */
function childrenOf(ppid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid && !/^[ZX]/.test(fields[0] ?? '')) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/**
 * Children of the helper `ppid` that wait at their gate: prepared (own session,
 * stdin /dev/null) but not executed (still perl).
 */
function gatedChildren(ppid: number): number[] {
  return childrenOf(ppid).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const session = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
      return comm === 'perl' && session === pid && readlinkSync(`/proc/${pid}/fd/0`) === '/dev/null';
    } catch {
      return false;
    }
  });
}

async function until(what: string, check: () => boolean, ms = 3000): Promise<void> {
  for (const end = Date.now() + ms; !check(); await new Promise((r) => setTimeout(r, 10)))
    if (Date.now() > end) assert.fail(`timed out waiting: ${what}`);
}

/**
 * A gated start whose script appends to a marker file; `dir` is the task directory
 * the child makes (with the script in it) once let go.
 */
function gatedRequest(tag: string): { req: SpawnRequest; marker: string; dir: string } {
  const dir = path.join(scratch, `gated-${tag}-${++counter}`);
  const marker = `${dir}.ran`;
  const file = path.join(dir, 'script.sh');
  return {
    req: {
      file: '/bin/sh',
      args: [file],
      cwd: '/',
      env: ['PATH=/usr/bin:/bin'],
      joinCgroups: [],
      joinStrict: false,
      script: { dir, file, content: `echo ran >> ${marker}\necho out\n`, owner: null },
    },
    marker,
    dir,
  };
}

function gateOf(): { gate: Promise<boolean>; open: (go: boolean) => void } {
  let open!: (go: boolean) => void;
  const gate = new Promise<boolean>((resolve) => (open = resolve));
  return { gate, open };
}

test('helper, gated: the child is made and prepared at once but execs only on go', (t) =>
  withHelper(t, async (s) => {
    const { req, marker, dir } = gatedRequest('go');
    const { gate, open } = gateOf();
    let settled = false;
    const start = s.start(req, gate).finally(() => (settled = true));
    // Made and prepared, and waits: nothing of the task on disk yet, nothing ran.
    await until('the child waits at its gate', () => gatedChildren(s.pid).length === 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(gatedChildren(s.pid).length, 1, 'one child waits at its gate');
    assert.equal(existsSync(dir), false, 'the task directory is made after go');
    assert.equal(existsSync(marker), false, 'nothing ran before go');
    assert.equal(settled, false, 'the start is not over before go');
    open(true);
    const r = await start;
    assert.ok('process' in r, 'error' in r ? r.error.message : '');
    let out = '';
    r.process.stdout.on('data', (d: Buffer) => (out += d.toString()));
    r.process.stderr.resume();
    const closed = new Promise((resolve) => r.process.stdout.once('close', resolve));
    assert.deepEqual(await r.process.exited, { code: 0, signal: null, error: null });
    await closed;
    assert.equal(out, 'out\n');
    assert.equal(readFileSync(marker, 'utf8'), 'ran\n');
    // An exec that fails after go is still reported as an exec failure.
    const bad = await s.start({ ...req, file: '/nonexistent/bin', script: undefined }, Promise.resolve(true));
    assert.ok('error' in bad);
    assert.equal(bad.stage, 'exec');
    assert.equal(bad.error.code, 'ENOENT');
  }));

test('helper, gated: abort (or a rejected gate) ends the child without exec', (t) =>
  withHelper(t, async (s) => {
    const { req, marker, dir } = gatedRequest('abort');
    const { gate, open } = gateOf();
    const start = s.start(req, gate);
    await until('the child waits at its gate', () => gatedChildren(s.pid).length === 1);
    open(false);
    const r = await start;
    assert.ok('error' in r, 'an aborted start has no process');
    assert.equal(r.stage, 'gate');
    await until('the aborted child is gone', () => childrenOf(s.pid).length === 0);
    const again = gatedRequest('reject');
    const rejected = await s.start(again.req, Promise.reject(new Error('journal full')));
    assert.ok('error' in rejected);
    assert.equal(rejected.stage, 'gate');
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(existsSync(marker), false, 'the aborted task never ran');
    assert.equal(existsSync(dir), false, 'nor left a directory');
    assert.equal(existsSync(again.marker), false, 'the refused task never ran');
    // The helper goes on: the next start runs.
    const next = gatedRequest('after');
    const ok = await s.start(next.req, Promise.resolve(true));
    assert.ok('process' in ok);
    ok.process.stdout.resume();
    ok.process.stderr.resume();
    assert.equal((await ok.process.exited).code, 0);
    assert.equal(readFileSync(next.marker, 'utf8'), 'ran\n');
  }));

test('helper, gated: a child killed at its gate is reported as not started, and a later go does not run it', (t) =>
  withHelper(t, async (s) => {
    const { req, marker, dir } = gatedRequest('killed');
    const { gate, open } = gateOf();
    const start = s.start(req, gate);
    await until('the child waits at its gate', () => gatedChildren(s.pid).length === 1);
    const [pid] = gatedChildren(s.pid);
    assert.ok(pid, 'the gated child exists');
    // As a cgroup kill would.
    process.kill(pid, 'SIGKILL');
    const r = await start;
    assert.ok('error' in r);
    assert.equal(r.stage, 'gate');
    open(true);
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(existsSync(marker), false);
    assert.equal(existsSync(dir), false);
  }));

test('helper, gated: if the helper dies, its gated children exit without exec', async (t) => {
  const s = await createSpawner(logger);
  if (!s) return t.skip('no usable spawn helper (perl, /proc)');
  const helperPid = s.pid;
  const tasks = [gatedRequest('orphan-a'), gatedRequest('orphan-b')];
  const gates = tasks.map(() => gateOf());
  // Two gated at once: each must also not hold the other's gate open.
  const starts = tasks.map((x, i) => s.start(x.req, gates[i]?.gate));
  await until('both wait at their gate', () => gatedChildren(helperPid).length === 2);
  const kids = gatedChildren(helperPid);
  assert.equal(kids.length, 2);
  process.kill(helperPid, 'SIGKILL');
  for (const start of starts) {
    const r = await start;
    assert.ok('error' in r);
    assert.equal(r.stage, 'helper');
  }
  for (const g of gates) g.open(true);
  for (const pid of kids) await until(`gated child ${pid} exits`, () => !alive(pid));
  await new Promise((res) => setTimeout(res, 100));
  for (const x of tasks) {
    assert.equal(existsSync(x.marker), false, 'a gated child of a dead helper never runs');
    assert.equal(existsSync(x.dir), false);
  }
  await s.close();
});
