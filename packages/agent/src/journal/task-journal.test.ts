import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { TaskResult, TaskStatus } from '@agent-platform/protocol';
import {
  createTaskJournal,
  LOST_ERROR,
  taskFileName,
  TASK_ID_ENV,
  type TaskJournalOptions,
} from './index.js';

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'journal-test-'));
  roots.push(d);
  return path.join(d, 'journal');
}

function result(taskId: string, stdout = 'hello\n'): TaskResult {
  return {
    taskId,
    exitCode: 0,
    stdout,
    stderr: '',
    completedAt: new Date('2026-01-02T03:04:05.678Z'),
    status: TaskStatus.TASK_STATUS_SUCCEEDED,
    error: '',
    startedAt: new Date('2026-01-02T03:04:05.000Z'),
    stdoutBytes: stdout.length,
    stderrBytes: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    limitsEnforced: [{ name: 'memory', mechanism: 'cgroup1', value: 1048576 }],
    signal: '',
  };
}

/** True while the process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const open = (dir: string, extra: Partial<TaskJournalOptions> = {}) => createTaskJournal({ dir, ...extra });

test('a completed result survives re-opening and is listed until acknowledged', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.accept('t1');
  assert.equal(j1.state('t1'), 'accepted');
  await j1.complete('t1', result('t1'));
  await j1.close();

  const j2 = await open(dir);
  assert.equal(j2.state('t1'), 'completed');
  assert.deepEqual(j2.unacknowledged(), ['t1']);
  assert.deepEqual(j2.pending(), ['t1']);
  assert.deepEqual(j2.lost, []);
  assert.deepEqual(await j2.result('t1'), result('t1'));
  await j2.close();
});

test('a task accepted without a result becomes LOST on re-open and stays known', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.accept('t-running');
  // No close(): the agent "dies" here.

  const j2 = await open(dir);
  assert.deepEqual(j2.lost, ['t-running']);
  assert.equal(j2.state('t-running'), 'completed');
  const r = await j2.result('t-running');
  assert.equal(r?.status, TaskStatus.TASK_STATUS_LOST);
  assert.equal(r?.error, LOST_ERROR);
  assert.equal(r?.taskId, 't-running');
  await assert.rejects(j2.accept('t-running'), { code: 'JOURNAL_TASK_KNOWN' });
  await j2.close();

  // The LOST result itself is durable: a third open reports it again, not as newly lost.
  const j3 = await open(dir);
  assert.deepEqual(j3.lost, []);
  assert.equal((await j3.result('t-running'))?.status, TaskStatus.TASK_STATUS_LOST);
  await j3.close();
});

test('ack drops the result but keeps a tombstone that survives re-opening', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.accept('t1');
  assert.equal(await j1.ack('t1'), false, 'no result yet: nothing to acknowledge');
  await j1.complete('t1', result('t1'));
  assert.equal(await j1.ack('t1'), true);
  assert.equal(await j1.ack('t1'), false);
  assert.equal(j1.state('t1'), 'acknowledged');
  assert.deepEqual(j1.pending(), []);
  assert.deepEqual(await readdir(path.join(dir, 'tasks')), []);
  await j1.close();

  const j2 = await open(dir);
  assert.equal(j2.state('t1'), 'acknowledged');
  assert.deepEqual(j2.unacknowledged(), []);
  await assert.rejects(j2.accept('t1'), { code: 'JOURNAL_TASK_KNOWN' });
  // A late result for an acknowledged id is not stored again.
  await j2.complete('t1', result('t1'));
  assert.equal(j2.state('t1'), 'acknowledged');
  await j2.close();
});

test('a duplicate accept is refused while the first is still being written', async () => {
  const j = await open(await tempDir());
  const first = j.accept('dup');
  await assert.rejects(j.accept('dup'), { code: 'JOURNAL_TASK_KNOWN' });
  await first;
  assert.equal(j.state('dup'), 'accepted');
  await j.close();
});

test('tombstones older than the ttl, or beyond the maximum, are pruned', async () => {
  const dir = await tempDir();
  const j1 = await open(dir, { maxTombstones: 2 });
  for (const id of ['a', 'b', 'c']) {
    await j1.accept(id);
    await j1.complete(id, result(id));
    await j1.ack(id);
  }
  await j1.close();

  const j2 = await open(dir, { maxTombstones: 2 });
  assert.equal(j2.state('a'), undefined, 'oldest beyond the maximum is forgotten');
  assert.equal(j2.state('b'), 'acknowledged');
  assert.equal(j2.state('c'), 'acknowledged');
  await j2.close();
  assert.equal((await readFile(path.join(dir, 'acked.log'), 'utf8')).trim().split('\n').length, 2);

  await new Promise((r) => setTimeout(r, 30));
  const j3 = await open(dir, { tombstoneTtlMs: 10 });
  assert.equal(j3.state('b'), undefined);
  assert.equal(j3.state('c'), undefined);
  await j3.close();
});

test('a torn last tombstone line is dropped without corrupting later ones', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.accept('kept');
  await j1.complete('kept', result('kept'));
  await j1.ack('kept');
  await j1.close();
  await appendFile(path.join(dir, 'acked.log'), '{"task_id":"tor');

  const j2 = await open(dir);
  assert.equal(j2.state('kept'), 'acknowledged');
  await j2.accept('next');
  await j2.complete('next', result('next'));
  await j2.ack('next');
  await j2.close();

  const j3 = await open(dir);
  assert.equal(j3.state('kept'), 'acknowledged');
  assert.equal(j3.state('next'), 'acknowledged');
  await j3.close();
});

test('a record left next to its tombstone (died between ack steps) is removed at open', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.accept('t1');
  await j1.complete('t1', result('t1'));
  const record = await readFile(path.join(dir, 'tasks', 't1.json'), 'utf8');
  await j1.ack('t1');
  await j1.close();
  await writeFile(path.join(dir, 'tasks', 't1.json'), record);

  const j2 = await open(dir);
  assert.equal(j2.state('t1'), 'acknowledged');
  assert.deepEqual(j2.unacknowledged(), []);
  assert.deepEqual(await readdir(path.join(dir, 'tasks')), []);
  await j2.close();
});

test('ids that are not plain file names round-trip through a hashed file name', async () => {
  const dir = await tempDir();
  const id = '../../etc/passwd\nx';
  assert.match(taskFileName(id), /^_[0-9a-f]{64}\.json$/);
  const j1 = await open(dir);
  await j1.accept(id);
  await j1.complete(id, result(id));
  await j1.close();
  const j2 = await open(dir);
  assert.deepEqual(j2.unacknowledged(), [id]);
  assert.equal((await j2.result(id))?.taskId, id);
  await j2.close();
});

test('temp files left by a crash mid-write are removed at open', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.close();
  await writeFile(path.join(dir, 'tasks', '.tmp-abc-t9.json'), '{"v":1,');
  const j2 = await open(dir);
  assert.deepEqual(await readdir(path.join(dir, 'tasks')), []);
  assert.equal(j2.state('t9'), undefined);
  await j2.close();
});

test('at open, leftover processes of a lost task are killed', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.accept('orphan-task');
  // What the executor would have left behind: a process group of its own, marked
  // with the task id, that outlives the agent.
  const child = spawn('sh', ['-c', 'sleep 300 & echo $!; wait'], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, [TASK_ID_ENV]: 'orphan-task' },
  });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, s) => r(s)));
  const sleepPid = await new Promise<number>((r) => child.stdout.once('data', (b: Buffer) => r(Number(b))));
  child.stdout.destroy();
  assert.ok(alive(sleepPid));

  const j2 = await open(dir);
  assert.deepEqual(j2.lost, ['orphan-task']);
  assert.equal(await exited, 'SIGKILL');
  // The grandchild is gone too (a zombie at most, where PID 1 does not reap).
  assert.equal(alive(sleepPid), false);
  await j2.close();
});
