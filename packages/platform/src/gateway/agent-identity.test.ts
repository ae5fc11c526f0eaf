/**
 * An agent reports only on tasks sent to it: a start, log or result for
 * another agent's task changes nothing and is logged. Plaintext (the gateway's
 * check does not depend on TLS; test/e2e/security.test.ts covers TLS identity).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { TaskStatus } from '@agent-platform/protocol';
import { startPlatform, type Platform } from '../index.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/db.js';
import { startSimAgent, type SimAgent } from '../../../../test/support/sim-agent.js';
import { waitFor } from '../../../../test/support/procs.js';
import { AUTH_HEADERS, TEST_PLATFORM_OPTIONS } from '../../../../test/support/security.js';

let db: TestDatabase;
let platform: Platform;
const sims: SimAgent[] = [];
const lines: string[] = [];

before(async () => {
  db = await createTestDatabase();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  platform = await startPlatform({
    databaseUrl: db.url,
    grpcListen: '127.0.0.1:0',
    httpListen: '127.0.0.1:0',
    heartbeatIntervalSeconds: 1,
    ...TEST_PLATFORM_OPTIONS,
    logger: pino({ level: 'info' }, sink),
  });
});
after(async () => {
  for (const s of sims) s.close();
  await platform.stop();
  await db.drop();
});

interface TaskJson {
  task_id: string;
  status: string;
  stdout: string | null;
  exit_code: number | null;
}

async function getTask(id: string): Promise<TaskJson> {
  const res = await platform.api.inject({ url: `/api/v1/tasks/${id}`, headers: AUTH_HEADERS });
  return res.json<TaskJson>();
}

test("a start, log or result for another agent's task is rejected and logged", async () => {
  const owner = startSimAgent({ address: `127.0.0.1:${platform.grpcPort}`, respond: false });
  const intruder = startSimAgent({ address: `127.0.0.1:${platform.grpcPort}`, respond: false });
  sims.push(owner, intruder);
  await Promise.all([owner.ready, intruder.ready]);
  const created = await platform.api.inject({
    method: 'POST',
    url: '/api/v1/tasks',
    headers: AUTH_HEADERS,
    payload: { agent_id: owner.agentId, type: 'shell', script: 'echo mine' },
  });
  assert.equal(created.statusCode, 201);
  const taskId = created.json<TaskJson>().task_id;
  await waitFor('dispatched to its owner', async () => owner.received.some((t) => t.taskId === taskId));

  const now = new Date();
  intruder.send({ message: { $case: 'taskStarted', value: { taskId, startedAt: now } } });
  intruder.send({
    message: {
      $case: 'taskLog',
      value: { taskId, output: 'forged\n', isStderr: false, timestamp: now, seq: 1 },
    },
  });
  intruder.send({
    message: {
      $case: 'taskResult',
      value: {
        taskId,
        exitCode: 0,
        stdout: 'forged\n',
        stderr: '',
        completedAt: now,
        status: TaskStatus.TASK_STATUS_SUCCEEDED,
        error: '',
        startedAt: now,
        stdoutBytes: 7,
        stderrBytes: 0,
        stdoutTruncated: false,
        stderrTruncated: false,
        limitsEnforced: [],
        signal: '',
      },
    },
  });
  const logged = await waitFor('the rejection in the log', async () => {
    const found = lines.filter(
      (l) => l.includes('message for a task not sent to this agent') && l.includes(intruder.agentId),
    );
    return found.length >= 3 ? found : undefined;
  });
  assert.ok(logged.some((l) => l.includes('"kind":"taskResult"')));
  // Give the batched writer time to have applied anything it (wrongly) would.
  await new Promise((r) => setTimeout(r, 500));
  const t = await getTask(taskId);
  assert.equal(t.status, 'dispatched');
  assert.equal(t.stdout, null);
  const logs = await platform.api.inject({ url: `/api/v1/tasks/${taskId}/logs`, headers: AUTH_HEADERS });
  assert.deepEqual(logs.json<{ logs: unknown[] }>().logs, []);

  // The owner's own result is applied as usual.
  owner.finish(taskId);
  const done = await waitFor('owner result applied', async () => {
    const x = await getTask(taskId);
    return x.status === 'succeeded' ? x : undefined;
  });
  assert.equal(done.stdout, 'ok\n');
});

test('an agent revoked through another platform process loses its stream and cannot register again', async () => {
  const other = await startPlatform({
    databaseUrl: db.url,
    grpcListen: '127.0.0.1:0',
    httpListen: '127.0.0.1:0',
    heartbeatIntervalSeconds: 1,
    ...TEST_PLATFORM_OPTIONS,
    logger: pino({ level: 'silent' }),
  });
  try {
    const agent = startSimAgent({ address: `127.0.0.1:${other.grpcPort}` });
    sims.push(agent);
    await agent.ready;
    const res = await platform.api.inject({
      method: 'DELETE',
      url: `/api/v1/agents/${agent.agentId}`,
      headers: AUTH_HEADERS,
    });
    assert.equal(res.statusCode, 200);
    // The process holding the stream finds out in its sweep (every half heartbeat interval).
    await waitFor(
      'stream ended on the other process',
      async () => other.gateway.session(agent.agentId) === undefined,
    );
    // Ended for that reason, not by the heartbeat timeout (the simulated agent sends no heartbeats).
    const row = await waitFor('offline row', async () => {
      const r = await platform.store.agents.get(agent.agentId);
      return r?.status === 'offline' ? r : undefined;
    });
    assert.equal(row.disconnect_reason, 'revoked');
    const again = startSimAgent({ address: `127.0.0.1:${other.grpcPort}`, agentId: agent.agentId });
    sims.push(again);
    await assert.rejects(again.ready, (err: { metadata?: { get(k: string): unknown[] } }) => {
      assert.equal(err.metadata?.get('error-code')[0], 'AGENT_REVOKED');
      return true;
    });
  } finally {
    await other.stop();
  }
});
