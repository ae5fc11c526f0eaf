import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fdatasync, readFileSync, writeSync } from 'node:fs';
import {
  appendFile,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  truncate,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { TaskResult, TaskStatus } from '@agent-platform/protocol';
import { promisify } from 'node:util';
import {
  createTaskJournal,
  LOST_ERROR,
  TASK_ID_ENV,
  type JournalIo,
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
    lastSeq: 1,
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

/** The log files of a journal directory (`log-<gen>.jsonl`), oldest first. */
async function logFiles(dir: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((n) => /^log-\d+\.jsonl$/.test(n))
    .sort((a, b) => Number(a.slice(4, -6)) - Number(b.slice(4, -6)));
}

/** The one log file of a journal directory, as a path. */
async function theLog(dir: string): Promise<string> {
  const files = await logFiles(dir);
  assert.equal(files.length, 1, `one log file expected, found ${files.join(', ')}`);
  return path.join(dir, files[0] as string);
}

/** Byte offset and length of the line of `op` for `id` in the log text. */
function lineOf(text: string, op: string, id: string): { off: number; len: number } {
  const start = text.indexOf(`{"op":"${op}",`, 0);
  for (let i = start; i !== -1; i = text.indexOf(`{"op":"${op}",`, i + 1)) {
    const end = text.indexOf('\n', i);
    const line = text.slice(i, end + 1);
    if (line.includes(`"id":${JSON.stringify(id)},`))
      return { off: Buffer.byteLength(text.slice(0, i)), len: Buffer.byteLength(line) };
  }
  throw new Error(`no ${op} line for ${id}`);
}

/** Overwrites `bytes` at `off` of the file. */
async function damage(file: string, off: number, bytes: string): Promise<void> {
  const buf = await readFile(file);
  buf.write(bytes, off, 'latin1');
  await writeFile(file, buf);
}

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
  assert.equal(j1.state('a'), undefined, 'bounded between prunes too');
  await j1.close();

  const j2 = await open(dir, { maxTombstones: 2 });
  assert.equal(j2.state('a'), undefined, 'oldest beyond the maximum is forgotten');
  assert.equal(j2.state('b'), 'acknowledged');
  assert.equal(j2.state('c'), 'acknowledged');
  await j2.close();

  await new Promise((r) => setTimeout(r, 30));
  const j3 = await open(dir, { tombstoneTtlMs: 10 });
  assert.equal(j3.state('b'), undefined);
  assert.equal(j3.state('c'), undefined);
  await j3.close();
});

test('ids that are not plain file names round-trip', async () => {
  const dir = await tempDir();
  const id = '../../etc/passwd\n"x" \\ ü 😀';
  const j1 = await open(dir);
  await j1.accept(id);
  await j1.complete(id, result(id));
  await j1.close();
  const j2 = await open(dir);
  assert.deepEqual(j2.unacknowledged(), [id]);
  assert.equal((await j2.result(id))?.taskId, id);
  await j2.close();
});

test('the log is one line of JSON per event, with checksums', async () => {
  const dir = await tempDir();
  const j = await open(dir);
  await j.accept('t1');
  await j.complete('t1', result('t1'));
  await j.ack('t1');
  await j.close();
  const lines = (await readFile(await theLog(dir), 'utf8')).trimEnd().split('\n');
  const records = lines.map((l) => JSON.parse(l) as { op: string; id: string; seq: number; r?: unknown });
  assert.deepEqual(
    records.map((r) => [r.op, r.id]),
    [
      ['accept', 't1'],
      ['complete', 't1'],
      ['ack', 't1'],
    ],
  );
  assert.ok(records.every((r, i) => i === 0 || r.seq > (records[i - 1]?.seq ?? Infinity)));
  assert.deepEqual(records[1]?.r, TaskResult.toJSON(result('t1')));
});

/** io whose fdatasync is held until released; records the order of writes and syncs. */
function gatedIo() {
  const events: string[] = [];
  const held: (() => void)[] = [];
  let holding = true;
  const realSync = promisify(fdatasync);
  const io: Partial<JournalIo> = {
    writeSync(fd, buf, off, len) {
      const line = buf.toString('utf8', off, off + len);
      events.push(
        `write ${/"op":"(\w+)"/.exec(line)?.[1] ?? '?'} ${/"id":"([^"]*)"/.exec(line)?.[1] ?? '?'}`,
      );
      return writeSync(fd, buf, off, len);
    },
    async fdatasync(fd) {
      events.push('fdatasync');
      if (holding) await new Promise<void>((r) => held.push(r));
      await realSync(fd);
      events.push('synced');
    },
  };
  return {
    io,
    events,
    release() {
      holding = false;
      for (const r of held.splice(0)) r();
    },
    hold() {
      holding = true;
    },
  };
}

const settledYet = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setTimeout(r, 30));
  return done;
};

test('accept and complete resolve only after their line is written and fdatasynced; ack does not sync', async () => {
  const dir = await tempDir();
  const g = gatedIo();
  g.release();
  const j = await open(dir, { io: g.io });
  g.hold();
  g.events.length = 0;

  const accepted = j.accept('t1');
  assert.equal(await settledYet(accepted), false, 'accept resolved before its fdatasync finished');
  assert.deepEqual(g.events, ['write accept t1', 'fdatasync']);
  g.release();
  await accepted;
  assert.deepEqual(g.events, ['write accept t1', 'fdatasync', 'synced']);

  g.hold();
  g.events.length = 0;
  const completed = j.complete('t1', result('t1'));
  // An ack arriving while the result is being written waits for it, then succeeds.
  const acked = j.ack('t1');
  assert.equal(await settledYet(completed), false, 'complete resolved before its fdatasync finished');
  assert.equal(await settledYet(acked), false, 'ack applied before the result was on disk');
  assert.equal(j.state('t1'), 'accepted');
  g.release();
  await completed;
  assert.equal(await acked, true);
  assert.deepEqual(g.events, ['write complete t1', 'fdatasync', 'synced', 'write ack t1']);
  assert.equal(j.state('t1'), 'acknowledged');
  await j.close();
});

test('concurrent accepts share fdatasyncs (group commit)', async () => {
  const dir = await tempDir();
  const g = gatedIo();
  g.release();
  const j = await open(dir, { io: g.io });
  g.hold();
  g.events.length = 0;
  const first = j.accept('c0');
  const rest = Array.from({ length: 15 }, (_, i) => j.accept(`c${i + 1}`));
  g.release();
  await Promise.all([first, ...rest]);
  assert.equal(g.events.filter((e) => e === 'fdatasync').length, 2, g.events.join(', '));
  assert.equal(g.events.filter((e) => e.startsWith('write accept')).length, 16);
  await j.close();
});

test('a failed fdatasync fails the accept (the id is unknown again) and the journal moves to a new file', async () => {
  const dir = await tempDir();
  let fail = false;
  const realSync = promisify(fdatasync);
  const j = await open(dir, {
    io: {
      async fdatasync(fd) {
        if (fail) {
          fail = false;
          throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        }
        await realSync(fd);
      },
    },
  });
  const [before] = await logFiles(dir);
  await j.accept('ok1');
  fail = true;
  await assert.rejects(j.accept('bad'), /EIO/);
  assert.equal(j.state('bad'), undefined);
  await j.accept('ok2');
  // The compaction away from the failed file runs in the background.
  for (let i = 0; i < 100 && (await logFiles(dir))[0] === before; i++)
    await new Promise((r) => setTimeout(r, 10));
  assert.notEqual((await logFiles(dir))[0], before);
  await j.complete('ok2', result('ok2'));
  await j.close();

  const j2 = await open(dir, { killOrphans: false });
  assert.deepEqual(j2.lost, ['ok1']);
  assert.equal(j2.state('ok2'), 'completed');
  await j2.close();
});

test('a torn last record (crash mid-append) is dropped; what it still identifies stays known', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.accept('done');
  await j1.complete('done', result('done'));
  await j1.accept('running');
  await j1.complete('running', result('running', 'y'.repeat(5000)));
  await j1.close();
  const file = await theLog(dir);
  const text = await readFile(file, 'utf8');
  const last = lineOf(text, 'complete', 'running');
  // The last record cut in the middle of its result.
  await truncate(file, last.off + 2500);

  const j2 = await open(dir, { killOrphans: false });
  assert.deepEqual(await j2.result('done'), result('done'));
  // Its result was not on disk: the task ran, so it is LOST, never unknown.
  assert.deepEqual(j2.lost, ['running']);
  assert.equal((await j2.result('running'))?.status, TaskStatus.TASK_STATUS_LOST);
  await j2.accept('next');
  await j2.close();

  // Garbage without a newline at the end, too short to identify anything.
  await appendFile(await theLog(dir), '{"op":"acc');
  const j3 = await open(dir, { killOrphans: false });
  assert.deepEqual(j3.lost, ['next']);
  assert.deepEqual(j3.unacknowledged(), ['done', 'running', 'next']);
  await j3.close();
  // New lines never follow a damaged one: the next open reads a clean log.
  const j4 = await open(dir, { killOrphans: false });
  assert.deepEqual(j4.lost, []);
  assert.deepEqual(j4.unacknowledged(), ['done', 'running', 'next']);
  await j4.close();
  assert.deepEqual(
    (await readdir(dir)).filter((n) => !n.startsWith('log-')),
    [],
    'a torn tail is not kept as damage',
  );
});

test('a damaged record in the middle never makes a task unknown', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  // running: accepted only. acked: acknowledged. result: completed, unacknowledged.
  for (const id of ['running', 'acked', 'result', 'merged-a', 'merged-b', 'after']) await j1.accept(id);
  await j1.complete('acked', result('acked'));
  await j1.ack('acked');
  await j1.complete('result', result('result'));
  await j1.complete('after', result('after'));
  await j1.close();
  const file = await theLog(dir);
  const text = await readFile(file, 'utf8');

  // The head of running's accept (its id inside), the tail of acked's ack, the
  // middle of result's result, and the newline between two accepts.
  const a = lineOf(text, 'accept', 'running');
  await damage(file, a.off + 10, 'XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX');
  const k = lineOf(text, 'ack', 'acked');
  await damage(file, k.off + k.len - 40, 'ZZZZZZZZZZ');
  const c = lineOf(text, 'complete', 'result');
  await damage(file, c.off + Math.floor(c.len / 2), 'hello');
  const m = lineOf(text, 'accept', 'merged-a');
  await damage(file, m.off + m.len - 1, ' ');

  const j2 = await open(dir, { killOrphans: false });
  // Known, and reported LOST: its accept line is damaged but its trailer names it.
  assert.equal(j2.state('running'), 'completed');
  assert.equal((await j2.result('running'))?.status, TaskStatus.TASK_STATUS_LOST);
  await assert.rejects(j2.accept('running'), { code: 'JOURNAL_TASK_KNOWN' });
  // The damaged ack still names its task: the tombstone holds.
  assert.equal(j2.state('acked'), 'acknowledged');
  await assert.rejects(j2.accept('acked'), { code: 'JOURNAL_TASK_KNOWN' });
  // A damaged result is never delivered as it is: LOST.
  assert.equal((await j2.result('result'))?.status, TaskStatus.TASK_STATUS_LOST);
  // Two lines run together: both still known.
  assert.equal(j2.state('merged-a'), 'completed');
  assert.equal(j2.state('merged-b'), 'completed');
  assert.deepEqual(await j2.result('after'), result('after'));
  assert.deepEqual([...j2.lost].sort(), ['merged-a', 'merged-b', 'result', 'running']);
  await j2.close();
});

test('damage that identifies no task is logged and the file set aside for the operator', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.accept('x1');
  await j1.accept('x2');
  await j1.accept('x3');
  await j1.close();
  const file = await theLog(dir);
  const text = await readFile(file, 'utf8');
  const x2 = lineOf(text, 'accept', 'x2');
  await damage(file, x2.off, '\0'.repeat(x2.len - 1));

  const errors: string[] = [];
  const { pino } = await import('pino');
  const logger = pino({ level: 'error' }, { write: (s: string) => errors.push(s) });
  const j2 = await open(dir, { killOrphans: false, logger });
  assert.deepEqual(j2.lost, ['x1', 'x3']);
  await j2.close();
  assert.ok(
    errors.some((e) => e.includes('cannot be identified')),
    errors.join('\n'),
  );
  const names = await readdir(dir);
  assert.ok(
    names.some((n) => n.startsWith('damaged-log-')),
    names.join(', '),
  );
});

test('compaction keeps tombstones, results not acknowledged and running tasks, and bounds the log', async () => {
  const dir = await tempDir();
  const j1 = await open(dir, { compactBytes: 8192 });
  await j1.accept('still-running');
  await j1.accept('unacked');
  await j1.complete('unacked', result('unacked', 'u'.repeat(3000)));
  await j1.complete('refused', result('refused'));
  const big = 'b'.repeat(2000);
  for (let i = 0; i < 300; i++) {
    const id = `t${i}`;
    await j1.accept(id);
    await j1.complete(id, result(id, big));
    // Reads during compactions find the result wherever it is.
    assert.equal((await j1.result('unacked'))?.stdout.length, 3000);
    await j1.ack(id);
  }
  // A few in flight at once while compactions run.
  await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const id = `p${i}`;
      await j1.accept(id);
      await j1.complete(id, result(id, big));
      if (i % 2 === 0) await j1.ack(id);
    }),
  );
  // close() waits for a compaction in flight.
  await j1.close();
  const files = await logFiles(dir);
  assert.equal(files.length, 1);
  assert.ok(Number(files[0]?.slice(4, -6)) > 5, `compacted several times: ${files[0]}`);
  const size = (await readFile(await theLog(dir))).length;
  assert.ok(size < 16384 + 320 * 300, `log bounded, ${size} bytes`);

  const j2 = await open(dir, { killOrphans: false, compactBytes: 8192 });
  assert.deepEqual(j2.lost, ['still-running']);
  assert.equal((await j2.result('unacked'))?.stdout, 'u'.repeat(3000));
  assert.deepEqual(await j2.result('refused'), result('refused'));
  for (let i = 0; i < 300; i++) assert.equal(j2.state(`t${i}`), 'acknowledged', `t${i}`);
  for (let i = 0; i < 20; i++) assert.equal(j2.state(`p${i}`), i % 2 === 0 ? 'acknowledged' : 'completed');
  assert.deepEqual(j2.unacknowledged(), [
    'still-running',
    'unacked',
    'refused',
    ...Array.from({ length: 10 }, (_, i) => `p${i * 2 + 1}`),
  ]);
  await j2.close();
});

test('a compaction interrupted by a crash: its temp file is removed, a leftover older file merges', async () => {
  const dir = await tempDir();
  const j1 = await open(dir);
  await j1.accept('a');
  await j1.complete('a', result('a'));
  await j1.accept('b');
  await j1.close();
  const file = await theLog(dir);
  // An older state of the log, named as a later generation: files are merged by
  // each record's seq, not by their names or the order they are read in.
  const stale = `${dir}-stale.jsonl`;
  await copyFile(file, stale);
  await copyFile(stale, path.join(dir, 'log-99.jsonl'));
  const j2 = await open(dir, { killOrphans: false });
  assert.deepEqual(j2.lost, ['b']);
  assert.equal(await j2.ack('a'), true);
  await j2.close();
  const [current] = await logFiles(dir);
  await copyFile(stale, path.join(dir, 'log-1000.jsonl'));
  // Crash while writing a compaction's snapshot.
  await writeFile(path.join(dir, '.tmp-log-1001.jsonl'), '{"op":"accept","seq":1,"id":"ghost"');

  const j3 = await open(dir, { killOrphans: false });
  assert.equal(j3.state('a'), 'acknowledged', 'the stale file does not bring back an acknowledged result');
  assert.equal(j3.state('b'), 'completed');
  assert.equal((await j3.result('b'))?.status, TaskStatus.TASK_STATUS_LOST);
  assert.equal(j3.state('ghost'), undefined);
  assert.deepEqual(j3.lost, []);
  await j3.close();
  const names = await readdir(dir);
  assert.deepEqual(
    names.filter((n) => n.startsWith('.tmp-')),
    [],
  );
  assert.equal((await logFiles(dir)).length, 1);
  assert.notEqual((await logFiles(dir))[0], current);
});

test('the layout of earlier versions (tasks/<id>.json, acked.log) is imported and removed', async () => {
  const dir = await tempDir();
  const tasks = path.join(dir, 'tasks');
  await mkdir(tasks, { recursive: true });
  const record = (id: string, withResult: boolean) =>
    JSON.stringify({
      v: 1,
      task_id: id,
      accepted_at: '2026-01-02T03:04:00.000Z',
      ...(withResult ? { result: TaskResult.toJSON(result(id)) } : {}),
    });
  await writeFile(path.join(tasks, 'old-done.json'), record('old-done', true));
  await writeFile(path.join(tasks, 'old-running.json'), record('old-running', false));
  const odd = 'odd/id';
  const hashed = `_${createHash('sha256').update(odd).digest('hex')}.json`;
  await writeFile(path.join(tasks, hashed), record(odd, true));
  // Died between the two ack steps: the record next to its tombstone.
  await writeFile(path.join(tasks, 'old-acked.json'), record('old-acked', true));
  await writeFile(path.join(tasks, 'old-damaged.json'), '{"v":1,"task_');
  await writeFile(path.join(tasks, '.tmp-abc-x.json'), '{');
  const now = new Date().toISOString();
  await writeFile(
    path.join(dir, 'acked.log'),
    `${JSON.stringify({ task_id: 'old-acked', acked_at: now })}\n${JSON.stringify({ task_id: 'gone', acked_at: now })}\n{"task_id":"tor`,
  );

  const j1 = await open(dir, { killOrphans: false });
  assert.deepEqual([...j1.lost].sort(), ['old-damaged', 'old-running']);
  assert.deepEqual(await j1.result('old-done'), result('old-done'));
  assert.deepEqual(await j1.result(odd), result(odd));
  assert.equal(j1.state('old-acked'), 'acknowledged');
  assert.equal(j1.state('gone'), 'acknowledged');
  await assert.rejects(j1.accept('gone'), { code: 'JOURNAL_TASK_KNOWN' });
  await j1.close();
  assert.deepEqual(await readdir(dir), [path.basename(await theLog(dir))]);

  const j2 = await open(dir, { killOrphans: false });
  assert.deepEqual(j2.lost, []);
  assert.deepEqual(new Set(j2.unacknowledged()), new Set(['old-done', 'old-running', odd, 'old-damaged']));
  assert.deepEqual(await j2.result('old-done'), result('old-done'));
  assert.equal(j2.state('gone'), 'acknowledged');
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
