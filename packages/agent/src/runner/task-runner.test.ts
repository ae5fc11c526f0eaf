import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  TaskRequest,
  TaskStatus,
  TaskType,
  type AgentMessage,
  type ServerMessage,
  type TaskLog,
  type TaskResult,
} from '@agent-platform/protocol';
import type { ServerLink } from '../connection/index.js';
import { createTaskExecutor, type TaskExecutor } from '../executor/index.js';
import { createTaskJournal, LOST_ERROR, TASK_ID_ENV, type TaskJournal } from '../journal/index.js';
import { createTaskRunner, type TaskRunner } from './index.js';
import { ReplayStore } from './task-runner.js';

const roots: string[] = [];
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

async function tempRoot(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'runner-test-'));
  roots.push(d);
  return d;
}

/** The network as the runner sees it: collects what is sent. Not the thing under test. */
interface FakeLink extends ServerLink {
  sent: AgentMessage[];
  results(): TaskResult[];
  logs(taskId: string): TaskLog[];
  started(): string[];
}

function fakeLink(drain: () => Promise<void> = () => Promise.resolve()): FakeLink {
  const sent: AgentMessage[] = [];
  return {
    sent,
    send(msg) {
      sent.push(msg);
      return true;
    },
    drain,
    results: () => sent.flatMap((m) => (m.message?.$case === 'taskResult' ? [m.message.value] : [])),
    logs: (taskId) =>
      sent.flatMap((m) =>
        m.message?.$case === 'taskLog' && m.message.value.taskId === taskId ? [m.message.value] : [],
      ),
    started: () => sent.flatMap((m) => (m.message?.$case === 'taskStarted' ? [m.message.value.taskId] : [])),
  };
}

interface Setup {
  root: string;
  journalDir: string;
  journal: TaskJournal;
  executor: TaskExecutor;
  runner: TaskRunner;
}

async function setup(
  opts: {
    root?: string;
    maxConcurrent?: number;
    maxQueued?: number;
    maxChunkBytes?: number;
    startedReportDelayMs?: number;
    logReplayBytes?: number;
    onTaskRequest?: () => void;
  } = {},
): Promise<Setup> {
  const root = opts.root ?? (await tempRoot());
  const journalDir = path.join(root, 'journal');
  const journal = await createTaskJournal({ dir: journalDir });
  const executor = createTaskExecutor({
    workDir: path.join(root, 'work'),
    maxConcurrent: opts.maxConcurrent,
    maxQueued: opts.maxQueued,
    maxChunkBytes: opts.maxChunkBytes,
    flushIntervalMs: 10,
  });
  const runner = createTaskRunner({
    executor,
    journal,
    closeAckTimeoutMs: 0,
    startedReportDelayMs: opts.startedReportDelayMs,
    logReplayBytes: opts.logReplayBytes,
    onTaskRequest: opts.onTaskRequest,
  });
  cleanups.push(async () => {
    await runner.close();
    await executor.close();
    await journal.close();
  });
  return { root, journalDir, journal, executor, runner };
}

function request(taskId: string, script: string, extra: Partial<TaskRequest> = {}): ServerMessage {
  return {
    message: {
      $case: 'taskRequest',
      value: TaskRequest.fromPartial({ taskId, type: TaskType.TASK_TYPE_SHELL, script, ...extra }),
    },
  };
}
const ack = (taskId: string): ServerMessage => ({ message: { $case: 'resultAck', value: { taskId } } });
const cancel = (taskId: string, reason: string): ServerMessage => ({
  message: { $case: 'taskCancel', value: { taskId, reason } },
});

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Acknowledges the task's result on `link`, then reconnects: the new link, 100 ms after onReady. */
async function ackThenReconnect(s: Setup, taskId: string, link: FakeLink): Promise<FakeLink> {
  s.runner.onMessage(ack(taskId), link);
  await waitFor('acknowledged', () => s.journal.state(taskId) === 'acknowledged');
  s.runner.onDisconnected();
  const next = fakeLink();
  s.runner.onReady(next);
  await sleep(100);
  return next;
}

test('a request runs once even when sent twice, and never again after its result is acknowledged', async () => {
  const s = await setup();
  const marker = path.join(s.root, 'ran.txt');
  const link = fakeLink();
  s.runner.onReady(link);
  const req = request('t-once', `echo "$${TASK_ID_ENV}" >> ${marker}; sleep 0.2`);
  s.runner.onMessage(req, link);
  s.runner.onMessage(req, link);
  await waitFor('result', () => link.results().length === 1);
  assert.equal(link.results()[0]?.status, TaskStatus.TASK_STATUS_SUCCEEDED);

  // Re-sent before the ack: the stored result comes back, the script does not run.
  // (Re-sent while the result is still being written, it is ignored: the result
  // went out on this same link already.)
  await waitFor('journaled', () => s.journal.state('t-once') === 'completed');
  s.runner.onMessage(req, link);
  await waitFor('re-sent result', () => link.results().length === 2);
  assert.deepEqual(link.results()[1], link.results()[0]);

  s.runner.onMessage(ack('t-once'), link);
  await waitFor('ack journaled', () => s.journal.state('t-once') === 'acknowledged');
  s.runner.onMessage(req, link);
  await sleep(300);
  assert.equal(
    await readFile(marker, 'utf8'),
    't-once\n',
    'ran exactly once, with its id in the environment',
  );
  assert.equal(link.results().length, 2, 'nothing sent for an acknowledged id');
  assert.deepEqual(s.runner.pendingTaskIds(), []);
});

test('onTaskRequest is called for every task request and for nothing else', async () => {
  let calls = 0;
  const s = await setup({ onTaskRequest: () => calls++ });
  const link = fakeLink();
  s.runner.onReady(link);
  s.runner.onMessage(request('t-hook', 'true'), link);
  s.runner.onMessage(request('t-hook', 'true'), link); // a repeat is a request too
  s.runner.onMessage(cancel('t-other', 'test'), link);
  await waitFor('result', () => link.results().length === 1);
  s.runner.onMessage(ack('t-hook'), link);
  assert.equal(calls, 2);
});

test('output arrives as taskLog messages in seq order, both streams interleaved', async () => {
  const s = await setup({ maxChunkBytes: 8 });
  const link = fakeLink();
  s.runner.onReady(link);
  s.runner.onMessage(
    request('t-logs', 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "out $i"; echo "err $i" >&2; done'),
    link,
  );
  await waitFor('result', () => link.results().length === 1);
  const logs = link.logs('t-logs');
  assert.ok(logs.length >= 10, `small chunks: got ${logs.length}`);
  assert.deepEqual(
    logs.map((l) => l.seq),
    logs.map((_, i) => i + 1),
  );
  const stream = (err: boolean) =>
    logs
      .filter((l) => l.isStderr === err)
      .map((l) => l.output)
      .join('');
  const lines = (p: string) => Array.from({ length: 10 }, (_, i) => `${p} ${i + 1}\n`).join('');
  assert.equal(stream(false), lines('out'));
  assert.equal(stream(true), lines('err'));
  // Every log is sent before the result.
  const resultAt = link.sent.findIndex((m) => m.message?.$case === 'taskResult');
  const lastLogAt = link.sent.findLastIndex((m) => m.message?.$case === 'taskLog');
  assert.ok(lastLogAt < resultAt);
});

test('a task that ends within the start-report delay sends no TaskStarted, output or not; its result says when it started', async () => {
  // A delay far above the quick task's run time, so a loaded machine cannot make it outlive it.
  const s = await setup({ startedReportDelayMs: 300 });
  const link = fakeLink();
  s.runner.onReady(link);
  const before = Date.now();
  s.runner.onMessage(request('t-quick', 'echo quick'), link);
  s.runner.onMessage(request('t-slow', 'echo slow; sleep 1'), link);
  await waitFor('results', () => link.results().length === 2);
  await sleep(350); // a stray timer would have fired by now
  assert.deepEqual(link.started(), ['t-slow'], 'only the task that outlived the delay');
  const quick = link.results().find((r) => r.taskId === 't-quick');
  assert.ok(quick?.startedAt && quick.completedAt, 'start and end times in the result');
  assert.ok(quick.startedAt.getTime() >= before - 5 && quick.startedAt <= quick.completedAt);
  // The slow one was reported within the delay's order of magnitude, long before it ended.
  const startedIdx = link.sent.findIndex((m) => m.message?.$case === 'taskStarted');
  const slowResultIdx = link.sent.findIndex(
    (m) => m.message?.$case === 'taskResult' && m.message.value.taskId === 't-slow',
  );
  assert.ok(startedIdx < slowResultIdx);
});

test('a result is re-sent at every onReady until the platform acknowledges it', async () => {
  const s = await setup();
  const link1 = fakeLink();
  s.runner.onReady(link1);
  s.runner.onMessage(request('t-resend', 'sleep 0.3; echo done'), link1);
  await waitFor('started', () => link1.started().length === 1);
  // Disconnected while the task runs: its result is journaled, not sent.
  s.runner.onDisconnected();
  await waitFor('journaled', () => s.journal.state('t-resend') === 'completed');
  assert.equal(link1.results().length, 0);
  assert.deepEqual(s.runner.pendingTaskIds(), ['t-resend']);

  const link2 = fakeLink();
  s.runner.onReady(link2);
  await waitFor('re-sent', () => link2.results().length === 1);
  assert.equal(link2.results()[0]?.stdout, 'done\n');
  s.runner.onDisconnected();

  const link3 = fakeLink();
  s.runner.onReady(link3);
  await waitFor('re-sent again', () => link3.results().length === 1);
  const link4 = await ackThenReconnect(s, 't-resend', link3);
  assert.equal(link4.results().length, 0);
});

test('output printed while disconnected, and output sent on a link that died, goes again first on the next link', async () => {
  const s = await setup();
  const link1 = fakeLink();
  s.runner.onReady(link1);
  // Long enough to print while disconnected; a marker file says when to go on.
  const go = path.join(s.root, 'go');
  s.runner.onMessage(
    request(
      't-replay',
      `echo one; echo two >&2; while [ ! -e ${go} ]; do sleep 0.02; done; echo three; echo four`,
    ),
    link1,
  );
  await waitFor('two chunks', () => link1.logs('t-replay').length >= 2);
  s.runner.onDisconnected();
  await writeFile(go, '');
  await waitFor('journaled', () => s.journal.state('t-replay') === 'completed');
  const lost = link1.logs('t-replay').map((l) => l.output);
  assert.equal(lost.join(''), 'one\ntwo\n', 'nothing of three/four went on the dead link');

  const link2 = fakeLink();
  s.runner.onReady(link2);
  await waitFor('re-sent result', () => link2.results().length === 1);
  const logs = link2.logs('t-replay');
  assert.deepEqual(
    logs.map((l) => l.seq),
    [...logs.keys()].map((i) => i + 1),
    'every chunk from seq 1, in order',
  );
  assert.equal(
    logs
      .filter((l) => !l.isStderr)
      .map((l) => l.output)
      .join(''),
    'one\nthree\nfour\n',
  );
  assert.equal(
    logs
      .filter((l) => l.isStderr)
      .map((l) => l.output)
      .join(''),
    'two\n',
  );
  assert.equal(link2.results()[0]?.lastSeq, logs.at(-1)?.seq);
  const lastLog = link2.sent.findLastIndex((m) => m.message?.$case === 'taskLog');
  const result = link2.sent.findIndex((m) => m.message?.$case === 'taskResult');
  assert.ok(lastLog < result, 'the output goes before the result');

  // Acknowledged: neither output nor result goes again.
  const link3 = await ackThenReconnect(s, 't-replay', link2);
  assert.equal(link3.sent.length, 0);
});

test('the output kept for a new link is the newest within logReplayBytes', async () => {
  const s = await setup({ logReplayBytes: 10 });
  const link1 = fakeLink();
  s.runner.onReady(link1);
  s.runner.onDisconnected();
  // Separate chunks: the executor flushes every 10 ms.
  s.runner.onMessage(request('t-budget', 'echo aaaa; sleep 0.1; echo bbbb; sleep 0.1; echo cccc'), link1);
  await waitFor('journaled', () => s.journal.state('t-budget') === 'completed');
  const link2 = fakeLink();
  s.runner.onReady(link2);
  await waitFor('re-sent result', () => link2.results().length === 1);
  const logs = link2.logs('t-budget');
  assert.deepEqual(
    logs.map((l) => [l.seq, l.output]),
    [
      [2, 'bbbb\n'],
      [3, 'cccc\n'],
    ],
  );
});

test('kept output is bounded per task and over all tasks: the task holding the most gives up its oldest chunks', () => {
  const store = new ReplayStore(10, 15);
  let seq = 0;
  const add = (taskId: string, output: string) =>
    store.add({ taskId, output, isStderr: false, timestamp: new Date(0), seq: ++seq });
  const kept = () =>
    Object.fromEntries([...store.entries()].map(([id, msgs]) => [id, [...msgs].map((m) => m.output)]));
  add('a', 'a1..\n');
  add('a', 'a2..\n');
  add('b', 'b1..\n');
  assert.equal(store.bytes, 15);
  // Over the total: a and b hold 10 each; the first of them gives up its oldest.
  add('b', 'b2..\n');
  assert.deepEqual(kept(), { a: ['a2..\n'], b: ['b1..\n', 'b2..\n'] });
  assert.equal(store.bytes, 15);
  // Over a's own budget, then over the total again.
  add('a', 'a3..\n');
  add('a', 'a4..\n');
  assert.deepEqual(kept(), { a: ['a4..\n'], b: ['b1..\n', 'b2..\n'] });
  assert.equal(store.bytes, 15);
  store.delete('b');
  assert.equal(store.bytes, 5);
  assert.deepEqual(kept(), { a: ['a4..\n'] });
});

test('taskCancel stops a running task: CANCELED with the reason', async () => {
  const s = await setup();
  const link = fakeLink();
  s.runner.onReady(link);
  s.runner.onMessage(request('t-cancel', 'sleep 30'), link);
  await waitFor('started', () => link.started().length === 1);
  const t0 = Date.now();
  s.runner.onMessage(cancel('t-cancel', 'user pressed ctrl-c'), link);
  s.runner.onMessage(cancel('no-such-task', 'ignored'), link);
  await waitFor('result', () => link.results().length === 1);
  const r = link.results()[0];
  assert.equal(r?.status, TaskStatus.TASK_STATUS_CANCELED);
  assert.match(r?.error ?? '', /user pressed ctrl-c/);
  assert.ok(Date.now() - t0 < 5000, 'sleep got SIGTERM, not the full 30 s');
});

test('a cancel that arrives while the task is being journaled stops it before it starts', async () => {
  const s = await setup();
  const marker = path.join(s.root, 'early.txt');
  const link = fakeLink();
  s.runner.onReady(link);
  s.runner.onMessage(request('t-early', `echo ran > ${marker}`), link);
  // Same tick: accept() is still writing, nothing has been started yet.
  s.runner.onMessage(cancel('t-early', 'changed my mind'), link);
  await waitFor('result', () => link.results().length === 1);
  assert.equal(link.results()[0]?.status, TaskStatus.TASK_STATUS_CANCELED);
  assert.equal(link.results()[0]?.error, 'canceled: changed my mind');
  assert.deepEqual(link.started(), []);
  await assert.rejects(readFile(marker), { code: 'ENOENT' });
});

test('a task whose accept cannot be journaled never runs; its FAILED result is sent, not journaled', async () => {
  const s = await setup();
  // The accept is slow and then fails: the executor prepares meanwhile but must not spawn.
  const failing = {
    ...s.journal,
    accept: (taskId: string) =>
      sleep(50).then(() => Promise.reject(new Error(`disk full while accepting ${taskId}`))),
  };
  const runner = createTaskRunner({ executor: s.executor, journal: failing, closeAckTimeoutMs: 0 });
  const marker = path.join(s.root, 'unjournaled.txt');
  const link = fakeLink();
  runner.onReady(link);
  runner.onMessage(request('t-nojournal', `echo ran > ${marker}`), link);
  await waitFor('result', () => link.results().length === 1);
  const r = link.results()[0];
  assert.equal(r?.status, TaskStatus.TASK_STATUS_FAILED);
  assert.match(r?.error ?? '', /cannot record the task in its journal: disk full/);
  assert.deepEqual(link.started(), []);
  assert.equal(s.journal.state('t-nojournal'), undefined);
  await sleep(100);
  await assert.rejects(readFile(marker), { code: 'ENOENT' });
  await runner.close();
});

test('a request the agent refuses (an unsupported type; an empty script, which the platform never sends) gets a journaled FAILED result and never runs', async () => {
  const cases = [
    { id: 't-type', script: 'echo hi', extra: { type: 42 as TaskType }, error: 'unsupported task type 42' },
    { id: 't-empty', script: ' \n', extra: {}, error: 'empty script' },
  ];
  for (const c of cases) {
    const s = await setup();
    const link = fakeLink();
    s.runner.onReady(link);
    s.runner.onMessage(request(c.id, c.script, c.extra), link);
    await waitFor('result', () => link.results().length === 1);
    const r = link.results()[0];
    assert.equal(r?.status, TaskStatus.TASK_STATUS_FAILED);
    assert.equal(r?.error, c.error);
    assert.equal(link.started().length, 0);
    // Sent while it is written: journaled shortly after.
    await waitFor('journaled', () => s.journal.state(c.id) === 'completed');
  }
});

test('when the executor queue is full the task fails with "agent queue full"', async () => {
  const s = await setup({ maxConcurrent: 1, maxQueued: 0 });
  const link = fakeLink();
  s.runner.onReady(link);
  s.runner.onMessage(request('t-busy', 'sleep 30'), link);
  await waitFor('started', () => link.started().length === 1);
  s.runner.onMessage(request('t-refused', 'echo never'), link);
  await waitFor('refusal', () => link.results().length === 1);
  assert.equal(link.results()[0]?.taskId, 't-refused');
  assert.equal(link.results()[0]?.status, TaskStatus.TASK_STATUS_FAILED);
  assert.equal(link.results()[0]?.error, 'agent queue full');
  // Journaled like any result: the id is never run, even when there is room later.
  s.runner.onMessage(cancel('t-busy', 'done'), link);
  await waitFor('busy ends', () => link.results().length === 2);
  s.runner.onMessage(request('t-refused', 'echo never'), link);
  await waitFor('re-sent refusal', () => link.results().length === 3);
  assert.equal(link.results()[2]?.error, 'agent queue full');
  assert.equal(link.logs('t-refused').length, 0);
});

test('a stream that never drains stalls output reading until the link goes away', async () => {
  const s = await setup();
  // Like the connection's drain() after its session ended: never resolves.
  const stuck = fakeLink(() => new Promise<void>(() => undefined));
  s.runner.onReady(stuck);
  s.runner.onMessage(request('t-flood', 'head -c 4000000 /dev/zero'), stuck);
  await waitFor('first chunk', () => stuck.logs('t-flood').length > 0);
  await sleep(300);
  assert.equal(stuck.logs('t-flood').length, 1, 'no more output read while the stream is full');
  assert.equal(s.journal.state('t-flood'), 'accepted', 'the task is held up, not finished');

  s.runner.onDisconnected();
  await waitFor('finished', () => s.journal.state('t-flood') === 'completed');
  const link2 = fakeLink();
  s.runner.onReady(link2);
  await waitFor('result', () => link2.results().length === 1);
  assert.equal(link2.results()[0]?.stdoutBytes, 4_000_000);
});

test('close() cancels running tasks and journals their results', async () => {
  const s = await setup();
  const link = fakeLink();
  s.runner.onReady(link);
  s.runner.onMessage(request('t-stop', 'sleep 30'), link);
  await waitFor('started', () => link.started().length === 1);
  await s.runner.close();
  assert.equal(s.journal.state('t-stop'), 'completed');
  const r = await s.journal.result('t-stop');
  assert.equal(r?.status, TaskStatus.TASK_STATUS_CANCELED);
  assert.match(r?.error ?? '', /agent stopping/);
  // Requests after close are refused, not run.
  s.runner.onMessage(request('t-late', 'echo late'), link);
  await waitFor('refusal', () => link.results().some((x) => x.taskId === 't-late'));
  assert.equal(link.results().find((x) => x.taskId === 't-late')?.error, 'agent is shutting down');
});

/** True while the process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

test('after SIGKILL of the agent, a restarted runner re-sends unacknowledged results, reports the running task LOST and never runs it', async () => {
  const root = await tempRoot();
  const journalDir = path.join(root, 'journal');
  const marker = path.join(root, 'ran.txt');
  const pidFile = path.join(root, 'sleep.pid');

  // A finished, unacknowledged result from an earlier life of the agent.
  {
    const j = await createTaskJournal({ dir: journalDir });
    const e = createTaskExecutor({ workDir: path.join(root, 'work') });
    const r = createTaskRunner({ executor: e, journal: j, closeAckTimeoutMs: 0 });
    const link = fakeLink();
    r.onReady(link);
    r.onMessage(request('t-done', 'echo finished'), link);
    await waitFor('result', () => link.results().length === 1);
    await r.close();
    await e.close();
    await j.close();
  }

  // A real agent process killed in the middle of a task.
  const fixture = fileURLToPath(new URL('./fixtures/crash-agent.ts', import.meta.url));
  const script = `echo run >> ${marker}; sleep 300 & echo $! > ${pidFile}; wait`;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fixture, journalDir, path.join(root, 'work2'), 't-crash', script],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor('task started in the child agent', () => out.includes('started t-crash'), 30_000);
  await waitFor('sleep pid', () => {
    try {
      return readFileSync(pidFile, 'utf8').trim() !== '';
    } catch {
      return false;
    }
  });
  const sleepPid = Number(readFileSync(pidFile, 'utf8'));
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  assert.ok(alive(sleepPid), 'the task outlives its SIGKILLed agent');

  const s = await setup({ root });
  assert.deepEqual(s.journal.lost, ['t-crash']);
  assert.equal(alive(sleepPid), false, 'the restarted agent killed the leftover task process');
  assert.deepEqual(new Set(s.runner.pendingTaskIds()), new Set(['t-done', 't-crash']));

  const link = fakeLink();
  s.runner.onReady(link);
  await waitFor('both results', () => link.results().length === 2);
  const byId = new Map(link.results().map((r) => [r.taskId, r]));
  assert.equal(byId.get('t-done')?.status, TaskStatus.TASK_STATUS_SUCCEEDED);
  assert.equal(byId.get('t-done')?.stdout, 'finished\n');
  assert.equal(byId.get('t-crash')?.status, TaskStatus.TASK_STATUS_LOST);
  assert.equal(byId.get('t-crash')?.error, LOST_ERROR);

  // The platform, unaware, sends the request again: it is answered, not run.
  s.runner.onMessage(request('t-crash', script), link);
  await waitFor('re-sent LOST', () => link.results().length === 3);
  assert.equal(link.results()[2]?.status, TaskStatus.TASK_STATUS_LOST);
  await sleep(200);
  assert.equal(await readFile(marker, 'utf8'), 'run\n', 'the script ran once, in the first life only');
});
