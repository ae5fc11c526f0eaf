/**
 * Task lifecycle on a real PostgreSQL with two platform processes' worth of
 * components (two startPlatform() instances on one database) and simulated
 * agents speaking the real protocol over real gRPC.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { startPlatform, type Platform } from '../index.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/db.js';
import { startSimAgent, type SimAgent } from '../../../../test/support/sim-agent.js';
import { waitFor } from '../../../../test/support/procs.js';
import { AUTH_HEADERS, TEST_PLATFORM_OPTIONS } from '../../../../test/support/security.js';

const logger = pino({ level: 'silent' });
let db: TestDatabase;
let a: Platform;
let b: Platform;
const sims: SimAgent[] = [];

interface TaskJson {
  task_id: string;
  status: string;
  exit_code: number | null;
  stdout: string | null;
  error: string | null;
  agent_id: string;
  created_at: string;
  dispatched_at: string | null;
  started_at: string | null;
  completed_at: string | null;
}

/** The options of every platform process these tests start. */
const common = () => ({
  databaseUrl: db.url,
  grpcListen: '127.0.0.1:0',
  httpListen: '127.0.0.1:0',
  logger,
  heartbeatIntervalSeconds: 1,
  ...TEST_PLATFORM_OPTIONS,
});

before(async () => {
  db = await createTestDatabase();
  [a, b] = await Promise.all([startPlatform(common()), startPlatform(common())]);
});
after(async () => {
  for (const s of sims) s.close();
  await a.stop();
  await b.stop();
  await db.drop();
});

function sim(
  p: Platform,
  o: Parameters<typeof startSimAgent>[0] extends infer T ? Omit<T & object, 'address'> : never = {},
): SimAgent {
  const s = startSimAgent({ address: `127.0.0.1:${p.grpcPort}`, ...o });
  sims.push(s);
  return s;
}

async function api<T>(
  p: Platform,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(`http://127.0.0.1:${p.httpPort}${path}`, {
    method,
    headers:
      body === undefined
        ? { ...AUTH_HEADERS, ...headers }
        : { ...AUTH_HEADERS, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** Creates a shell task through `p`'s REST API; its id. */
const createTask = async (p: Platform, agentId: string, script: string): Promise<string> =>
  (await api<TaskJson>(p, 'POST', '/api/v1/tasks', { agent_id: agentId, type: 'shell', script })).body
    .task_id;

const terminal = (t: TaskJson | undefined) =>
  t && ['succeeded', 'failed', 'timed_out', 'canceled', 'lost', 'expired'].includes(t.status) ? t : undefined;

test('a task created through one process reaches an agent on the other and its result is stored', async () => {
  const agent = sim(b, { lines: 4 });
  await agent.ready;
  const created = await api<TaskJson>(a, 'POST', '/api/v1/tasks', {
    agent_id: agent.agentId,
    type: 'shell',
    script: 'echo hi',
    timeout: 30,
  });
  assert.equal(created.status, 201);
  assert.equal(created.body.status, 'pending');
  const done = await waitFor('terminal task', async () =>
    terminal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${created.body.task_id}`)).body),
  );
  assert.equal(done.status, 'succeeded');
  assert.equal(done.exit_code, 0);
  assert.equal(done.stdout, 'ok\n');
  for (const k of ['dispatched_at', 'started_at', 'completed_at'] as const) assert.ok(done[k], k);
  assert.ok(Date.parse(done.completed_at ?? '') >= Date.parse(done.created_at));
  const logs = await api<{ logs: { seq: number; stream: string; output: string }[] }>(
    a,
    'GET',
    `/api/v1/tasks/${done.task_id}/logs`,
  );
  assert.deepEqual(
    logs.body.logs.map((l) => l.seq),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    logs.body.logs.map((l) => l.stream),
    ['stdout', 'stderr', 'stdout', 'stderr'],
  );
  await waitFor('result acknowledged', async () => agent.acks.includes(done.task_id));
});

test('a result with no TaskStarted before it: started_at is the agent-measured run time before completed_at, on the platform clock', async () => {
  // The agent's clock is an hour ahead: its times must not be stored as they are.
  const agent = sim(a, { lines: 0, foldStarted: { ranMs: 250, skewMs: 3_600_000 } });
  await agent.ready;
  const created = await api<TaskJson>(a, 'POST', '/api/v1/tasks', {
    agent_id: agent.agentId,
    type: 'shell',
    script: 'true',
    timeout: 30,
  });
  const done = await waitFor('terminal task', async () =>
    terminal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${created.body.task_id}`)).body),
  );
  assert.equal(done.status, 'succeeded');
  const started = Date.parse(done.started_at ?? '');
  const completed = Date.parse(done.completed_at ?? '');
  assert.equal(completed - started, 250);
  assert.ok(completed - Date.now() < 60_000, 'the platform clock, not the agent one');
});

test('two processes never send one task twice: 200 tasks, each received exactly once', async () => {
  const agent = sim(a, { capacity: 20 });
  await agent.ready;
  const ids: string[] = [];
  for (let i = 0; i < 200; i++) {
    const via = i % 2 ? a : b;
    const r = await api<TaskJson>(via, 'POST', '/api/v1/tasks', {
      agent_id: agent.agentId,
      type: 'shell',
      script: `echo ${i}`,
    });
    assert.equal(r.status, 201);
    ids.push(r.body.task_id);
  }
  await waitFor(
    'all 200 succeeded',
    async () => {
      const { body } = await api<{ tasks: TaskJson[] }>(
        a,
        'GET',
        `/api/v1/tasks?agent_id=${agent.agentId}&status=succeeded&limit=1000`,
      );
      return body.tasks.length === 200;
    },
    30_000,
  );
  const received = agent.received.map((t) => t.taskId);
  assert.equal(received.length, 200, 'no duplicate deliveries');
  assert.deepEqual([...new Set(received)].sort(), [...ids].sort());
});

test('capacity is respected: an agent that does not finish gets at most capacity tasks', async () => {
  const agent = sim(b, { capacity: 2, respond: false });
  await agent.ready;
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push(
      (
        await api<TaskJson>(a, 'POST', '/api/v1/tasks', {
          agent_id: agent.agentId,
          type: 'shell',
          script: 'sleep 1',
        })
      ).body.task_id,
    );
  }
  await waitFor('two dispatched', async () => agent.received.length === 2);
  await new Promise((r) => setTimeout(r, 1500)); // several poll rounds
  assert.equal(agent.received.length, 2);
  // Finishing one frees one slot: exactly one more arrives.
  agent.finish(agent.received[0]?.taskId ?? '');
  await waitFor('third dispatched', async () => agent.received.length === 3);
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(agent.received.length, 3);
  // Oldest first.
  assert.deepEqual(
    agent.received.map((t) => t.taskId),
    ids.slice(0, 3),
  );
});

test('created where the agent is connected: dispatched in the create itself, capacity held under concurrent creates, one audit row each', async () => {
  const agent = sim(a, { capacity: 3, respond: false });
  await agent.ready;
  const created = await Promise.all(
    Array.from(
      { length: 12 },
      async () =>
        (
          await api<TaskJson>(a, 'POST', '/api/v1/tasks', {
            agent_id: agent.agentId,
            type: 'shell',
            script: 'sleep 1',
          })
        ).body,
    ),
  );
  // The answer already says dispatched for the ones that fit: no claim round trip after the insert.
  const dispatched = created.filter((t) => t.status === 'dispatched');
  assert.equal(dispatched.length, 3, JSON.stringify(created.map((t) => t.status)));
  for (const t of dispatched) assert.ok(t.dispatched_at);
  await waitFor('three received', async () => agent.received.length === 3);
  await new Promise((r) => setTimeout(r, 1500)); // several poll rounds: nothing beyond capacity
  assert.equal(agent.received.length, 3);
  assert.deepEqual(agent.received.map((t) => t.taskId).sort(), dispatched.map((t) => t.task_id).sort());
  // One audit row per created task (written with it, not again by the audit hook).
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const { rows: audit } = await c
    .query<{ target: string; n: string }>(
      `select target, count(*)::text as n from audit_log where action = 'task.create' and target = any($1::text[])
        group by target`,
      [created.map((t) => `task:${t.task_id}`)],
    )
    .finally(() => c.end());
  assert.equal(audit.length, 12);
  assert.ok(audit.every((r) => r.n === '1'));
});

test('without the dispatch poll, a full agent still gets every queued task as slots free up', async () => {
  // Event-driven dispatch only (results, creates, NOTIFY): a lost wake-up would
  // leave tasks pending for the 1 s poll, here an hour away, and time the test out.
  const p = await startPlatform({
    databaseUrl: db.url,
    grpcListen: '127.0.0.1:0',
    httpListen: '127.0.0.1:0',
    logger,
    heartbeatIntervalSeconds: 1,
    dispatchPollMs: 3_600_000,
    ...TEST_PLATFORM_OPTIONS,
  });
  try {
    const agent = sim(p, { capacity: 2 });
    await agent.ready;
    const ids = await Promise.all(
      Array.from(
        { length: 30 },
        async () =>
          (
            await api<TaskJson>(p, 'POST', '/api/v1/tasks', {
              agent_id: agent.agentId,
              type: 'shell',
              script: 'true',
            })
          ).body.task_id,
      ),
    );
    for (const id of ids) {
      await waitFor(
        `task ${id} done`,
        async () => (await api<TaskJson>(p, 'GET', `/api/v1/tasks/${id}`)).body.status === 'succeeded',
        5_000,
        20,
      );
    }
    assert.equal(agent.received.length, 30);
  } finally {
    await p.stop();
  }
});

test('cancel: pending becomes canceled at once; running is sent to the agent; finished is 409', async () => {
  const agent = sim(a, { capacity: 1, respond: false });
  await agent.ready;
  const first = (
    await api<TaskJson>(b, 'POST', '/api/v1/tasks', {
      agent_id: agent.agentId,
      type: 'shell',
      script: 'sleep 100',
    })
  ).body;
  const second = (
    await api<TaskJson>(b, 'POST', '/api/v1/tasks', {
      agent_id: agent.agentId,
      type: 'shell',
      script: 'sleep 100',
    })
  ).body;
  await waitFor('first dispatched', async () => agent.received.length === 1);
  const c2 = await api<TaskJson>(b, 'POST', `/api/v1/tasks/${second.task_id}/cancel`, {
    reason: 'not needed',
  });
  assert.equal(c2.status, 202);
  assert.equal(c2.body.status, 'canceled');
  // Cancel through the process that does NOT hold the stream: NOTIFY carries it over.
  const c1 = await api<TaskJson>(b, 'POST', `/api/v1/tasks/${first.task_id}/cancel`, {});
  assert.equal(c1.status, 202);
  await waitFor('agent told to cancel', async () => agent.cancels.includes(first.task_id));
  const again = await api<{ error: { code: string } }>(
    b,
    'POST',
    `/api/v1/tasks/${second.task_id}/cancel`,
    {},
  );
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'TASK_ALREADY_FINISHED');
});

test('a task for an offline agent waits, then is dispatched when the agent connects', async () => {
  const agentId = 'late-agent-1';
  // Register once so the agent exists, then disconnect.
  const first = sim(a, { agentId });
  await first.ready;
  first.close();
  await waitFor(
    'offline',
    async () =>
      (await api<{ status: string }>(a, 'GET', `/api/v1/agents/${agentId}`)).body.status === 'offline',
  );
  const t = (
    await api<TaskJson>(a, 'POST', '/api/v1/tasks', { agent_id: agentId, type: 'python', script: 'print(1)' })
  ).body;
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body.status, 'pending');
  const back = sim(b, { agentId });
  await back.ready;
  const done = await waitFor('dispatched on connect and done', async () =>
    terminal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body),
  );
  assert.equal(done.status, 'succeeded');
  assert.equal(back.received[0]?.taskId, t.task_id);
});

test('a task not delivered before its delivery timeout expires', async () => {
  const agentId = 'never-back';
  const s = sim(a, { agentId });
  await s.ready;
  s.close();
  // Until the platform has seen the stream close, a task would be sent to it (and be lost, not expired).
  await waitFor(
    'offline',
    async () =>
      (await api<{ status: string }>(a, 'GET', `/api/v1/agents/${agentId}`)).body.status === 'offline',
  );
  const t = (
    await api<TaskJson>(a, 'POST', '/api/v1/tasks', {
      agent_id: agentId,
      type: 'shell',
      script: 'true',
      delivery_timeout: 1,
    })
  ).body;
  const done = await waitFor(
    'expired',
    async () => terminal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body),
    10_000,
  );
  assert.equal(done.status, 'expired');
  assert.match(done.error ?? '', /delivery timeout/);
});

test('a duplicate or late result is acknowledged and changes nothing', async () => {
  const agent = sim(a);
  await agent.ready;
  const t = (
    await api<TaskJson>(a, 'POST', '/api/v1/tasks', {
      agent_id: agent.agentId,
      type: 'shell',
      script: 'true',
    })
  ).body;
  const done = await waitFor('done', async () =>
    terminal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body),
  );
  const acksBefore = agent.acks.filter((x) => x === t.task_id).length;
  agent.finish(t.task_id, 7); // a different exit code, late
  await waitFor(
    'second ack',
    async () => agent.acks.filter((x) => x === t.task_id).length === acksBefore + 1,
  );
  const after = (await api<TaskJson>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body;
  assert.equal(after.exit_code, 0);
  assert.equal(after.completed_at, done.completed_at);
});

test('Idempotency-Key returns the same task', async () => {
  const agent = sim(a, { respond: false });
  await agent.ready;
  const body = { agent_id: agent.agentId, type: 'shell', script: 'echo once' };
  const one = await api<TaskJson>(a, 'POST', '/api/v1/tasks', body, { 'idempotency-key': 'k-123' });
  const two = await api<TaskJson>(b, 'POST', '/api/v1/tasks', body, { 'idempotency-key': 'k-123' });
  assert.equal(one.status, 201);
  assert.equal(two.status, 200);
  assert.equal(one.body.task_id, two.body.task_id);
});

test('bad task input gets a 4xx with a code and writes nothing', async () => {
  const agent = sim(a, { respond: false });
  await agent.ready;
  const before = (await api<{ tasks: unknown[] }>(a, 'GET', `/api/v1/tasks?agent_id=${agent.agentId}`)).body
    .tasks.length;
  const cases: [unknown, number, string][] = [
    [{ agent_id: 'nope', type: 'shell', script: 'true' }, 404, 'AGENT_NOT_FOUND'],
    [{ agent_id: agent.agentId, type: 'perl', script: 'true' }, 400, 'VALIDATION_FAILED'],
    [{ agent_id: agent.agentId, type: 'shell', script: 'true', timeout: 0 }, 400, 'VALIDATION_FAILED'],
    [{ agent_id: agent.agentId, type: 'shell', script: 'true', timeout: 'soon' }, 400, 'VALIDATION_FAILED'],
    [
      { agent_id: agent.agentId, type: 'shell', script: 'x'.repeat(1024 * 1024 + 1) },
      400,
      'SCRIPT_TOO_LARGE',
    ],
    [
      { agent_id: agent.agentId, type: 'shell', script: 'true', env: { 'BAD-NAME': 'x' } },
      400,
      'VALIDATION_FAILED',
    ],
    [
      { agent_id: agent.agentId, type: 'shell', script: 'true', working_dir: 'relative' },
      400,
      'VALIDATION_FAILED',
    ],
    [{ agent_id: agent.agentId, type: 'shell' }, 400, 'VALIDATION_FAILED'],
    [{ agent_id: agent.agentId, type: 'shell', script: 'true', surprise: 1 }, 400, 'VALIDATION_FAILED'],
  ];
  // Past the body limit (2 MiB), the body is refused before it is parsed.
  cases.push([
    { agent_id: agent.agentId, type: 'shell', script: 'x'.repeat(3 * 1024 * 1024) },
    413,
    'BODY_TOO_LARGE',
  ]);
  for (const [body, status, code] of cases) {
    const r = await api<{ error: { code: string; message: string } }>(a, 'POST', '/api/v1/tasks', body);
    assert.equal(r.status, status, JSON.stringify(body).slice(0, 100));
    assert.equal(r.body.error.code, code, JSON.stringify(body).slice(0, 100));
  }
  const r = await api<{ error: { code: string } }>(
    a,
    'GET',
    '/api/v1/tasks/00000000-0000-0000-0000-000000000000',
  );
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 'TASK_NOT_FOUND');
  const after = (await api<{ tasks: unknown[] }>(a, 'GET', `/api/v1/tasks?agent_id=${agent.agentId}`)).body
    .tasks.length;
  assert.equal(after, before);
});

test('logs follow (SSE) replays, follows live and ends with the task', async () => {
  const agent = sim(b, { lines: 3, runMs: 300 });
  await agent.ready;
  const t = (
    await api<TaskJson>(a, 'POST', '/api/v1/tasks', {
      agent_id: agent.agentId,
      type: 'shell',
      script: 'true',
    })
  ).body;
  const res = await fetch(`http://127.0.0.1:${a.httpPort}/api/v1/tasks/${t.task_id}/logs?follow=1`, {
    headers: AUTH_HEADERS,
  });
  assert.equal(res.headers.get('content-type')?.startsWith('text/event-stream'), true);
  const text = await res.text(); // resolves only when the server ends the stream
  const events = text.split('\n\n').filter((e) => e.startsWith('event:'));
  const logs = events.filter((e) => e.startsWith('event: log'));
  assert.equal(logs.length, 3);
  const end = events.at(-1) ?? '';
  assert.match(end, /^event: end/);
  assert.match(end, /"status":"succeeded"/);
});

test('create with follow=1: one call answers the task, its logs live and its end; a repeat replays them', async () => {
  for (const [lines, reportLastSeq] of [
    [3, true],
    [0, true],
    [3, false],
    [0, false],
  ] as const) {
    const agent = sim(a, { lines, runMs: 200, reportLastSeq });
    await agent.ready;
    // Count the follower's reads: with the agent's last seq, the end comes from memory.
    let reads = 0;
    const followRead = a.tasks.followRead.bind(a.tasks);
    (a.tasks as { followRead: typeof followRead }).followRead = (...args) => {
      reads++;
      return followRead(...args);
    };
    const key = `follow-${lines}-${String(reportLastSeq)}`;
    const post = () =>
      fetch(`http://127.0.0.1:${a.httpPort}/api/v1/tasks?follow=1`, {
        method: 'POST',
        headers: { ...AUTH_HEADERS, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ agent_id: agent.agentId, type: 'shell', script: 'true' }),
      });
    const events = (text: string) =>
      text
        .split('\n\n')
        .filter((e) => e.startsWith('event:'))
        .map((e) => ({ event: /^event: (\w+)/.exec(e)?.[1], data: /\ndata: (.*)$/m.exec(e)?.[1] ?? '' }));
    try {
      const res = await post();
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('content-type')?.startsWith('text/event-stream'), true);
      const ev = events(await res.text());
      const expected = ['task', ...Array.from({ length: lines }, () => 'log'), 'end'];
      assert.deepEqual(
        ev.map((e) => e.event),
        expected,
      );
      const task = JSON.parse(ev[0]?.data ?? '{}') as TaskJson;
      assert.equal(task.agent_id, agent.agentId);
      assert.deepEqual(
        ev.slice(1, 1 + lines).map((e) => (JSON.parse(e.data) as { seq: number }).seq),
        Array.from({ length: lines }, (_, i) => i + 1),
      );
      assert.match(ev.at(-1)?.data ?? '', /"status":"succeeded"/);
      assert.equal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${task.task_id}`)).body.status, 'succeeded');
      // A new task needs no first read; with no output and the agent's last seq, the
      // end comes from the stored result in memory: no read at all.
      if (lines === 0) assert.equal(reads, reportLastSeq ? 0 : 1);
      else assert.ok(reads >= 1, `reads ${reads}`);

      // The same key again: the same task, replayed from the database, 200, and audited.
      const again = await post();
      assert.equal(again.status, 200);
      const ev2 = events(await again.text());
      assert.deepEqual(
        ev2.map((e) => e.event),
        expected,
      );
      assert.equal((JSON.parse(ev2[0]?.data ?? '{}') as TaskJson).task_id, task.task_id);
      assert.equal(agent.received.filter((r) => r.taskId === task.task_id).length, 1);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const audit = await c
        .query<{ n: number }>(`select count(*)::int as n from audit_log where target = $1`, [
          `task:${task.task_id}`,
        ])
        .finally(() => c.end());
      assert.equal(audit.rows[0]?.n, 2, 'the create and the repeat');
    } finally {
      (a.tasks as { followRead: typeof followRead }).followRead = followRead;
    }
  }
});

test('tasks list is newest first with a working cursor', async () => {
  const agent = sim(a, { respond: false, capacity: 1 });
  await agent.ready;
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push(
      (
        await api<TaskJson>(a, 'POST', '/api/v1/tasks', {
          agent_id: agent.agentId,
          type: 'shell',
          script: `echo ${i}`,
        })
      ).body.task_id,
    );
  }
  const p1 = (
    await api<{ tasks: TaskJson[]; next_cursor: string }>(
      a,
      'GET',
      `/api/v1/tasks?agent_id=${agent.agentId}&limit=3`,
    )
  ).body;
  const p2 = (
    await api<{ tasks: TaskJson[]; next_cursor: string | null }>(
      a,
      'GET',
      `/api/v1/tasks?agent_id=${agent.agentId}&limit=3&cursor=${p1.next_cursor}`,
    )
  ).body;
  assert.deepEqual(
    [...p1.tasks, ...p2.tasks].map((t) => t.task_id),
    [...ids].reverse(),
  );
  assert.equal(p2.next_cursor, null);
});

test('a follow=1 answer whose client goes away stops following: no listener is left behind', async () => {
  const agent = sim(a, { respond: false });
  await agent.ready;
  const baseline = a.tasks.events.listenerCount('task');
  const ac = new AbortController();
  const res = await fetch(`http://127.0.0.1:${a.httpPort}/api/v1/tasks?follow=1`, {
    method: 'POST',
    headers: { ...AUTH_HEADERS, 'content-type': 'application/json' },
    body: JSON.stringify({ agent_id: agent.agentId, type: 'shell', script: 'sleep 100' }),
    signal: ac.signal,
  });
  assert.equal(res.status, 201);
  const reader = res.body?.getReader();
  const chunk = (await reader?.read()) as { value?: Uint8Array } | undefined;
  const first = new TextDecoder().decode(chunk?.value);
  assert.match(first, /^event: task\n/);
  assert.equal(a.tasks.events.listenerCount('task'), baseline + 1, 'following while connected');
  ac.abort();
  await waitFor('listener removed', async () => a.tasks.events.listenerCount('task') === baseline);
  const taskId = (/"task_id":"([^"]+)"/.exec(first) ?? [])[1] ?? '';

  // The same for a log follow (GET) and a batch follow.
  const opens = [
    () => ({ url: `/api/v1/tasks/${taskId}/logs?follow=1`, init: {} }),
    () => ({
      url: '/api/v1/tasks/batch?follow=1',
      init: {
        method: 'POST',
        body: JSON.stringify({ agent_ids: [agent.agentId], type: 'shell', script: 'sleep 100' }),
      },
    }),
  ];
  for (const open of opens) {
    const { url, init } = open();
    const ac2 = new AbortController();
    const r = await fetch(`http://127.0.0.1:${a.httpPort}${url}`, {
      ...init,
      headers: { ...AUTH_HEADERS, 'content-type': 'application/json' },
      signal: ac2.signal,
    });
    assert.ok(r.ok, url);
    await r.body?.getReader().read();
    assert.equal(a.tasks.events.listenerCount('task'), baseline + 1, url);
    ac2.abort();
    await waitFor(
      `listener of ${url} removed`,
      async () => a.tasks.events.listenerCount('task') === baseline,
    );
  }
});

test('a batch with follow=1: one call streams every task (on this process and on the other) to its end, then done', async () => {
  // Agents on both processes; one has two lines of output, one none, one reports no last seq.
  const agents = [
    sim(a, { lines: 2, runMs: 100 }),
    sim(b, { lines: 0, runMs: 150 }),
    sim(a, { lines: 1, runMs: 50, reportLastSeq: false }),
  ];
  await Promise.all(agents.map((x) => x.ready));
  const res = await fetch(`http://127.0.0.1:${a.httpPort}/api/v1/tasks/batch?follow=1`, {
    method: 'POST',
    headers: { ...AUTH_HEADERS, 'content-type': 'application/json' },
    body: JSON.stringify({ agent_ids: agents.map((x) => x.agentId), type: 'shell', script: 'true' }),
  });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get('content-type')?.startsWith('text/event-stream'), true);
  const events = (await res.text())
    .split('\n\n')
    .filter((e) => e.startsWith('event:'))
    .map((e) => ({
      event: /^event: (\w+)/.exec(e)?.[1] ?? '',
      data: JSON.parse(/\ndata: (.*)$/m.exec(e)?.[1] ?? '{}') as Record<string, unknown>,
    }));
  assert.equal(events[0]?.event, 'tasks');
  const tasks = (events[0]?.data.tasks ?? []) as { task_id: string; agent_id: string; hostname: string }[];
  assert.equal(tasks.length, 3);
  assert.ok(
    tasks.every((t) => t.hostname === 'sim'),
    'host names come with the tasks',
  );
  assert.equal(events.at(-1)?.event, 'done');
  for (const [i, lines] of [2, 0, 1].entries()) {
    const id = tasks.find((t) => t.agent_id === agents[i]?.agentId)?.task_id;
    const mine = events.filter((e) => e.data.task_id === id);
    assert.deepEqual(
      mine.map((e) => e.event),
      [...Array.from({ length: lines }, () => 'log'), 'end'],
      `task ${i}`,
    );
    assert.deepEqual(
      mine.filter((e) => e.event === 'log').map((e) => e.data.seq),
      Array.from({ length: lines }, (_, k) => k + 1),
    );
    assert.equal(mine.at(-1)?.data.status, 'succeeded');
  }
});

/**
 * Counts the claim statements `p` runs for `agents` (other tests' agents on that
 * process may be claimed too, by the poll: only these count) until `restore`.
 */
function countClaims(p: Platform, agents: SimAgent[]) {
  const ours = new Set(agents.map((x) => x.agentId));
  const counts = { claim: 0, claimMany: 0, claimedAgents: 0 };
  const tasksStore = p.store.tasks;
  // (Bound copies put back afterwards: the store's methods are its own properties.)
  const claim = tasksStore.claim.bind(tasksStore);
  const claimMany = tasksStore.claimMany.bind(tasksStore);
  tasksStore.claim = (...args) => {
    if (ours.has(args[0])) counts.claim++;
    return claim(...args);
  };
  tasksStore.claimMany = (list, node) => {
    const mine = list.filter((x) => ours.has(x.agentId)).length;
    if (mine > 0) counts.claimMany++;
    counts.claimedAgents += mine;
    return claimMany(list, node);
  };
  return {
    counts,
    restore: () => {
      tasksStore.claim = claim;
      tasksStore.claimMany = claimMany;
    },
  };
}

test('tasks created elsewhere (a direct INSERT, one NOTIFY each) for many agents are claimed together, not one statement per agent', async () => {
  const agents = Array.from({ length: 20 }, () => sim(a, { respond: false }));
  await Promise.all(agents.map((x) => x.ready));
  const { counts, restore } = countClaims(a, agents);
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query(
      `insert into tasks (task_id, agent_id, type, script, args, env, clean_env, working_dir, run_as,
                          timeout_seconds, kill_grace_seconds, limits, delivery_timeout_seconds,
                          status, delivery_deadline)
       select gen_random_uuid(), id, 'shell', 'true', '[]', '{}', false, '', '', 30, 5,
              '{"memory_bytes":0,"cpu_millicores":0,"max_processes":0,"max_output_bytes":0}', 600,
              'pending', now() + interval '10 minutes'
         from unnest($1::text[]) as id`,
      [agents.map((x) => x.agentId)],
    );
    await waitFor('every agent got its task', async () => agents.every((x) => x.received.length === 1), 3000);
    // One statement per agent without batching (20). The NOTIFYs arrive in a few socket
    // reads (seen: 7 + 5 + ...), and the poll may claim once more: a handful of statements.
    assert.ok(counts.claim + counts.claimMany <= 8, JSON.stringify(counts));
    assert.ok(counts.claimedAgents >= 10, JSON.stringify(counts));
  } finally {
    restore();
    await c.end();
  }
});

test('batches to agents held here: each agent gets up to its capacity, oldest first, the rest as slots free', async () => {
  const agents = [
    sim(a, { capacity: 1, respond: false }),
    sim(a, { capacity: 2, respond: false }),
    sim(a, { capacity: 1, respond: false }),
  ];
  await Promise.all(agents.map((x) => x.ready));
  const batches: { task_id: string; agent_id: string }[][] = [];
  for (let i = 0; i < 3; i++) {
    const r = await api<{ tasks: { task_id: string; agent_id: string }[] }>(
      a,
      'POST',
      '/api/v1/tasks/batch',
      {
        agent_ids: agents.map((x) => x.agentId),
        type: 'shell',
        script: `echo ${i}`,
      },
    );
    assert.equal(r.status, 201);
    batches.push(r.body.tasks);
  }
  await waitFor('first tasks', async () => agents.every((x, i) => x.received.length === [1, 2, 1][i]));
  await new Promise((r) => setTimeout(r, 1500)); // poll rounds: nothing beyond capacity
  assert.deepEqual(
    agents.map((x) => x.received.length),
    [1, 2, 1],
  );
  // Each agent got its oldest tasks.
  agents.forEach((x, i) => {
    const mine = batches.map((b) => b.find((t) => t.agent_id === x.agentId)?.task_id);
    assert.deepEqual(
      x.received.map((t) => t.taskId),
      mine.slice(0, [1, 2, 1][i]),
    );
  });
  // A finished task frees exactly one slot.
  agents[0]?.finish(agents[0].received[0]?.taskId ?? '');
  await waitFor('next for agent 0', async () => agents[0]?.received.length === 2);
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(agents[0]?.received.length, 2);
});

test('a batch to agents held here goes in dispatched and is sent from the create: no claim statement', async () => {
  const agents = Array.from({ length: 6 }, () => sim(a, { capacity: 2, respond: false }));
  await Promise.all(agents.map((x) => x.ready));
  // A registration claims once (in the next turn after it): let those go by first.
  await new Promise((r) => setTimeout(r, 500));
  const { counts, restore } = countClaims(a, agents);
  // Nor an agents lookup before it: the statement's foreign key finds unknown agents.
  const agentsStore = a.store.agents;
  const existing = agentsStore.existing.bind(agentsStore);
  let lookups = 0;
  agentsStore.existing = (ids) => {
    lookups++;
    return existing(ids);
  };
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const batchAudits = async () =>
    (
      await c.query<{ n: string }>(
        `select count(*)::text as n from audit_log where action = 'task.create_batch' and status_code = 201`,
      )
    ).rows[0]?.n;
  try {
    const auditsBefore = Number(await batchAudits());
    const r = await api<{
      tasks: { task_id: string; agent_id: string; hostname: string; created: boolean }[];
    }>(a, 'POST', '/api/v1/tasks/batch', {
      agent_ids: agents.map((x) => x.agentId),
      type: 'shell',
      script: 'echo held',
      env: { K: 'v' },
    });
    // One audit row for the call, committed with its tasks (not again by the audit hook).
    assert.equal(Number(await batchAudits()), auditsBefore + 1);
    assert.equal(r.status, 201);
    // The answer is unchanged by how the tasks went out.
    assert.deepEqual(Object.keys(r.body.tasks[0] ?? {}).sort(), [
      'agent_id',
      'created',
      'hostname',
      'task_id',
    ]);
    await waitFor('every agent got its task', async () => agents.every((x) => x.received.length === 1), 3000);
    for (const x of agents) {
      const got = x.received[0];
      assert.equal(got?.taskId, r.body.tasks.find((t) => t.agent_id === x.agentId)?.task_id);
      assert.equal(got?.script, 'echo held');
      assert.deepEqual(got?.env, { K: 'v' });
    }
    const rows = await Promise.all(
      r.body.tasks.map(async (t) => (await api<TaskJson>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body),
    );
    for (const row of rows) {
      assert.equal(row.status, 'dispatched');
      assert.equal(row.dispatched_at, row.created_at, 'dispatched in the statement that created it');
    }
    assert.deepEqual(counts, { claim: 0, claimMany: 0, claimedAgents: 0 });
    assert.equal(lookups, 0);
    // Listed in the order the agents were named, each with its hostname.
    assert.deepEqual(
      r.body.tasks.map((t) => [t.agent_id, t.hostname]),
      agents.map((x) => [x.agentId, 'sim']),
    );
  } finally {
    restore();
    agentsStore.existing = existing;
    await c.end();
  }
});

test('a batch runs one script on many agents, by ids or by label, in one call', async () => {
  const agentsHere = [
    sim(a, { labels: { tier: 'batch' } }),
    sim(b, { labels: { tier: 'batch' } }),
    sim(a, { labels: { tier: 'batch' } }),
  ];
  await Promise.all(agentsHere.map((s) => s.ready));
  const byLabel = await api<{ tasks: { task_id: string; agent_id: string; created: boolean }[] }>(
    a,
    'POST',
    '/api/v1/tasks/batch',
    {
      label: 'tier=batch',
      type: 'shell',
      script: 'echo fan-out',
    },
  );
  assert.equal(byLabel.status, 201);
  assert.deepEqual(byLabel.body.tasks.map((t) => t.agent_id).sort(), agentsHere.map((s) => s.agentId).sort());
  for (const t of byLabel.body.tasks) {
    const done = await waitFor('batch task done', async () =>
      terminal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body),
    );
    assert.equal(done.status, 'succeeded');
  }
  for (const s of agentsHere) assert.equal(s.received.length, 1);

  // By ids, with an idempotency key: the repeat returns the same tasks and creates none.
  const ids = agentsHere.slice(0, 2).map((s) => s.agentId);
  const body = { agent_ids: ids, type: 'shell', script: 'true' };
  const one = await api<{ tasks: { task_id: string; created: boolean }[] }>(
    a,
    'POST',
    '/api/v1/tasks/batch',
    body,
    { 'idempotency-key': 'batch-1' },
  );
  const two = await api<{ tasks: { task_id: string; created: boolean }[] }>(
    b,
    'POST',
    '/api/v1/tasks/batch',
    body,
    { 'idempotency-key': 'batch-1' },
  );
  assert.equal(one.body.tasks.filter((t) => t.created).length, 2);
  assert.equal(two.body.tasks.filter((t) => t.created).length, 0);
  assert.deepEqual(two.body.tasks.map((t) => t.task_id).sort(), one.body.tasks.map((t) => t.task_id).sort());
});

test('a batch naming an unknown agent is refused whole, and bad targets get 400', async () => {
  const s = sim(a, { respond: false });
  await s.ready;
  const before = (await api<{ tasks: unknown[] }>(a, 'GET', `/api/v1/tasks?agent_id=${s.agentId}`)).body.tasks
    .length;
  const r = await api<{ error: { code: string; message: string } }>(a, 'POST', '/api/v1/tasks/batch', {
    agent_ids: [s.agentId, 'ghost-1'],
    type: 'shell',
    script: 'true',
  });
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 'AGENT_NOT_FOUND');
  assert.equal(r.body.error.message, '1 agent(s) not found: ghost-1');
  assert.equal(
    (await api<{ tasks: unknown[] }>(a, 'GET', `/api/v1/tasks?agent_id=${s.agentId}`)).body.tasks.length,
    before,
  );
  for (const bad of [
    { type: 'shell', script: 'true' },
    { agent_ids: [s.agentId], label: 'x=y', type: 'shell', script: 'true' },
    { agent_ids: [], type: 'shell', script: 'true' },
    { label: 'nobody=matches-this', type: 'shell', script: 'true' },
  ]) {
    const res = await api<{ error: { code: string } }>(a, 'POST', '/api/v1/tasks/batch', bad);
    assert.equal(res.status, 400, JSON.stringify(bad));
    assert.equal(res.body.error.code, 'VALIDATION_FAILED');
  }
});

test('a result the database refuses is not acknowledged: the session ends and the re-sent result is stored', async () => {
  const agentId = 'refused-result-agent';
  const first = sim(a, { agentId, respond: false });
  await first.ready;
  const t = (
    await api<TaskJson>(a, 'POST', '/api/v1/tasks', { agent_id: agentId, type: 'shell', script: 'true' })
  ).body;
  await waitFor('dispatched', async () => first.received.length === 1);
  // Make the result write fail (as a database fault would) for this exit code only.
  await a.store.pool.query(
    'alter table tasks add constraint refuse_77 check (exit_code is distinct from 77)',
  );
  try {
    first.finish(t.task_id, 77);
    const end = await Promise.race([
      first.ended,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the session was not ended')), 10_000),
      ),
    ]);
    assert.equal(end.code, grpc.status.INTERNAL);
    assert.match(end.details, /result could not be stored/);
    assert.deepEqual(first.acks, []);
    assert.ok(
      ['dispatched', 'running'].includes(
        (await api<TaskJson>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body.status,
      ),
    );
  } finally {
    await a.store.pool.query('alter table tasks drop constraint refuse_77');
  }
  // The agent reconnects with the task still in its journal and sends its result again.
  const again = sim(b, { agentId, respond: false, pendingTaskIds: [t.task_id] });
  await again.ready;
  again.finish(t.task_id, 0);
  const done = await waitFor('stored', async () =>
    terminal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body),
  );
  assert.equal(done.status, 'succeeded');
  await waitFor('acknowledged', async () => again.acks.includes(t.task_id));
  assert.equal(again.received.length, 0, 'the task was not dispatched a second time');
});

test('output an agent sends again after a reconnect is stored once and not counted twice against the log budget', async () => {
  // 30 bytes: four 7-byte lines and a 2-byte one fit; counted twice they would not.
  const c = await startPlatform({ ...common(), logBudgetBytes: 30 });
  try {
    const agent = sim(c, { respond: false });
    await agent.ready;
    const t = (
      await api<TaskJson>(c, 'POST', '/api/v1/tasks', {
        agent_id: agent.agentId,
        type: 'shell',
        script: 'true',
      })
    ).body;
    await waitFor('dispatched', async () => agent.received.length === 1);
    const log = (seq: number, output: string) =>
      agent.send({
        message: {
          $case: 'taskLog',
          value: { taskId: t.task_id, output, isStderr: false, timestamp: new Date(), seq },
        },
      });
    for (let seq = 1; seq <= 4; seq++) log(seq, `line ${seq}\n`);
    // The agent's replay: everything it kept, again, then what came after.
    for (let seq = 1; seq <= 4; seq++) log(seq, `line ${seq}\n`);
    log(5, 'k\n');
    agent.finish(t.task_id);
    const done = await waitFor('terminal', async () => {
      const r = await api<TaskJson & { logs_dropped: boolean; log_bytes: number }>(
        c,
        'GET',
        `/api/v1/tasks/${t.task_id}`,
      );
      return terminal(r.body) ? r.body : undefined;
    });
    assert.equal(done.logs_dropped, false);
    assert.equal(done.log_bytes, 30);
    const logs = (
      await api<{ logs: { seq: number; output: string }[] }>(c, 'GET', `/api/v1/tasks/${t.task_id}/logs`)
    ).body.logs;
    assert.deepEqual(
      logs.map((l) => [l.seq, l.output]),
      [
        [1, 'line 1\n'],
        [2, 'line 2\n'],
        [3, 'line 3\n'],
        [4, 'line 4\n'],
        [5, 'k\n'],
      ],
    );
  } finally {
    await c.stop();
  }
});

test('large task requests wait for the outbound budget, each agent in order; small messages and unstuck agents are not held up', async () => {
  // 400 KiB of budget, 300 KiB requests: one large request in flight at a time. The
  // simulated agents send no heartbeats: a long interval keeps their sessions.
  const c = await startPlatform({
    ...common(),
    heartbeatIntervalSeconds: 60,
    outboundBudgetBytes: 400 * 1024,
  });
  try {
    const slow = sim(c, { respond: false, capacity: 30 });
    const next = sim(c, { respond: false, capacity: 5 });
    const quick = sim(c);
    await Promise.all([slow.ready, next.ready, quick.ready]);
    const big = (n: number) => `# ${'x'.repeat(300 * 1024)}\necho ${n}\n`;
    const create = (agent: SimAgent, script: string) => createTask(c, agent.agentId, script);

    // An agent that stops reading: gRPC takes ~16 messages into its buffer, then HTTP/2
    // flow control holds the platform's write of the next one.
    slow.pause();
    const slowTasks: string[] = [];
    for (let i = 0; i < 24; i++) slowTasks.push(await create(slow, big(i)));
    const stuck = await waitFor('a large write held, the rest waiting', async () => {
      const o = c.gateway.outbound();
      return o.queued > 0 && o.bytes > 0 ? o : undefined;
    });
    assert.ok(stuck.bytes < 400 * 1024, `one request in flight, not ${stuck.bytes} bytes`);
    assert.ok(slow.received.length < 24);

    // Another agent's large request waits for the budget; a small task goes at once.
    const nextTask = await create(next, big(100));
    const small = await create(quick, 'true');
    await waitFor('the small task done', async () => quick.acks.includes(small));
    assert.equal(next.received.length, 0, 'the budget is held by the stuck write');
    // A heartbeat's ack is not held behind the waiting request.
    next.send({
      message: {
        $case: 'heartbeat',
        value: { agentId: next.agentId, timestamp: new Date(), runningTasks: 0 },
      },
    });
    await waitFor('heartbeat acknowledged', async () => next.order.includes('heartbeat-ack'));
    assert.equal(next.received.length, 0);
    assert.ok(c.gateway.outbound().bytes < 400 * 1024);

    // A cancel of a request still waiting reaches the agent after that request.
    const last = slowTasks[23] ?? '';
    assert.equal((await api(c, 'POST', `/api/v1/tasks/${last}/cancel`, {})).status, 202);
    slow.resume();
    await waitFor('everything delivered', async () => slow.cancels.length > 0 && next.received.length === 1);
    // (The dispatch poll sends a cancel again while the agent does not act on it.)
    assert.deepEqual(
      slow.order.slice(0, 25),
      [...slowTasks.map((id) => `request ${id}`), `cancel ${last}`],
      'requests in the order they were created, the cancel after its request',
    );
    assert.equal(next.received[0]?.taskId, nextTask);
    assert.deepEqual(c.gateway.outbound(), { bytes: 0, queued: 0 });

    // A session that closes with a write held and requests waiting gives the budget back.
    const gone = sim(c, { respond: false, capacity: 30 });
    await gone.ready;
    gone.pause();
    for (let i = 0; i < 24; i++) await create(gone, big(200 + i));
    await waitFor('held again', async () => c.gateway.outbound().queued > 0);
    gone.close();
    await waitFor('budget back', async () => {
      const o = c.gateway.outbound();
      return o.bytes === 0 && o.queued === 0;
    });
    const after = await create(next, big(300));
    await waitFor('the next large request goes', async () => next.received.some((t) => t.taskId === after));
  } finally {
    await c.stop();
  }
});

test("a batch's large script is stored once, shared by its tasks and by later batches of it; every agent, and every read, gets it whole", async () => {
  const here = sim(a);
  const there = sim(b);
  const later = sim(a);
  await Promise.all([here.ready, there.ready, later.ready]);
  // `later` is offline when the batch is created: its task is claimed when it is back.
  later.close();
  await waitFor('offline', async () => {
    const r = await api<{ status: string }>(a, 'GET', `/api/v1/agents/${later.agentId}`);
    return r.body.status === 'offline';
  });
  const script = `# ${'z'.repeat(8 * 1024)}\necho big\n`;
  const batch = async () =>
    (
      await api<{ tasks: { task_id: string; agent_id: string }[] }>(a, 'POST', '/api/v1/tasks/batch', {
        agent_ids: [here.agentId, there.agentId, later.agentId],
        type: 'shell',
        script,
      })
    ).body.tasks;
  const first = await batch();
  assert.equal(first.length, 3);
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    const ids = first.map((t) => t.task_id);
    const stored = await admin.query<{ inline: number; hashed: number }>(
      `select count(*) filter (where script is not null)::int as inline,
              count(*) filter (where script_hash is not null)::int as hashed
         from tasks where task_id = any($1::uuid[])`,
      [ids],
    );
    assert.deepEqual(stored.rows[0], { inline: 0, hashed: 3 });
    const count = async () =>
      Number(
        (
          await admin.query<{ n: string }>(
            `select count(*) as n from task_scripts where script_hash = sha256(convert_to($1, 'UTF8'))`,
            [script],
          )
        ).rows[0]?.n,
      );
    assert.equal(await count(), 1);

    // Sent from the create (here), claimed by the other process (there), claimed at reconnect (later).
    const back = sim(a, { agentId: later.agentId });
    await back.ready;
    for (const t of first) {
      const done = await waitFor('done', async () =>
        terminal((await api<TaskJson & { script: string }>(a, 'GET', `/api/v1/tasks/${t.task_id}`)).body),
      );
      assert.equal(done.status, 'succeeded');
    }
    for (const s of [here, there, back]) assert.equal(s.received[0]?.script, script);
    const read = (await api<{ script: string }>(b, 'GET', `/api/v1/tasks/${first[0]?.task_id}`)).body;
    assert.equal(read.script, script);

    // The same script again: new tasks, no new copy of it.
    const second = await batch();
    assert.equal(second.length, 3);
    assert.equal(await count(), 1);
    // A small script stays in the row.
    const small = await api<{ tasks: { task_id: string }[] }>(a, 'POST', '/api/v1/tasks/batch', {
      agent_ids: [here.agentId],
      type: 'shell',
      script: 'echo small',
    });
    const row = await admin.query<{ script: string | null }>(`select script from tasks where task_id = $1`, [
      small.body.tasks[0]?.task_id,
    ]);
    assert.equal(row.rows[0]?.script, 'echo small');
  } finally {
    await admin.end();
  }
});

test('with a task retention, the platform purges finished tasks past it by itself; without one it keeps them', async () => {
  const agent = sim(a);
  await agent.ready;
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const id = await createTask(a, agent.agentId, 'true');
    await waitFor('done', async () => terminal((await api<TaskJson>(a, 'GET', `/api/v1/tasks/${id}`)).body));
    ids.push(id);
  }
  const [old, recent] = ids;
  await a.store.pool.query(`update tasks set created_at = now() - interval '3 days' where task_id = $1`, [
    old,
  ]);
  const exists = async (id: string | undefined) =>
    (await a.store.pool.query(`select 1 from tasks where task_id = $1`, [id])).rows.length === 1;
  // `a` and `b` run without a retention: after a few of their sweeps, the old task is still there.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await exists(old), true);
  const c = await startPlatform({ ...common(), taskRetentionDays: 2, purgeIntervalMs: 50 });
  try {
    await waitFor('purged', async () => !(await exists(old)));
    assert.equal(await exists(recent), true);
    assert.equal((await api(c, 'GET', `/api/v1/tasks/${old}`)).status, 404);
  } finally {
    await c.stop();
  }
});
