import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { createStore, type Store } from './index.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/db.js';

const logger = pino({ level: 'silent' });
let tdb: TestDatabase;
let store: Store;

before(async () => {
  tdb = await createTestDatabase();
  store = createStore({ databaseUrl: tdb.url, logger });
  await store.migrate();
});
after(async () => {
  await store.close();
  await tdb.drop();
});

function reg(agentId: string, labels: Record<string, string> = {}) {
  return {
    agentId,
    hostname: `host-${agentId}`,
    os: 'linux',
    arch: 'x64',
    ipAddresses: ['10.0.0.1'],
    version: '0.1.0',
    labels,
    capacity: 5,
  };
}

test('two migrators started at once on one empty database both succeed', async () => {
  const db = await createTestDatabase();
  const a = createStore({ databaseUrl: db.url, logger });
  const b = createStore({ databaseUrl: db.url, logger });
  try {
    const [ra, rb] = await Promise.all([a.migrate(), b.migrate()]);
    // Exactly one of them applied the migrations; the other found them done.
    assert.equal(ra.length + rb.length, ra.length || rb.length);
    assert.ok(ra.length + rb.length > 0);
    assert.deepEqual(await a.migrate(), []);
    const { rows } = await a.pool.query<{ n: string }>('select count(*) as n from agents');
    assert.equal(rows[0]?.n, '0');
  } finally {
    await a.close();
    await b.close();
    await db.drop();
  }
});

test('register creates the row online and re-register keeps first_seen_at', async () => {
  const s1 = randomUUID();
  const row = await store.agents.register(reg('a-1', { env: 'prod' }), s1, 'node-1');
  assert.equal(row.status, 'online');
  assert.deepEqual(row.labels, { env: 'prod' });
  assert.deepEqual(row.ip_addresses, ['10.0.0.1']);
  const s2 = randomUUID();
  const again = await store.agents.register({ ...reg('a-1'), hostname: 'renamed' }, s2, 'node-2');
  assert.equal(again.hostname, 'renamed');
  assert.equal(again.session_id, s2);
  assert.equal(again.platform_node, 'node-2');
  assert.equal(again.first_seen_at.getTime(), row.first_seen_at.getTime());
});

test('a stale session cannot mark a reconnected agent offline', async () => {
  const old = randomUUID();
  await store.agents.register(reg('a-2'), old, 'node-1');
  const fresh = randomUUID();
  await store.agents.register(reg('a-2'), fresh, 'node-1');
  assert.equal(await store.agents.markOffline('a-2', old, 'stream_closed'), false);
  assert.equal((await store.agents.get('a-2'))?.status, 'online');
  assert.equal(await store.agents.markOffline('a-2', fresh, 'stream_closed'), true);
  const row = await store.agents.get('a-2');
  assert.equal(row?.status, 'offline');
  assert.equal(row?.disconnect_reason, 'stream_closed');
  assert.ok(row?.disconnected_at instanceof Date);
});

test('heartbeats move last_seen_at and silence marks agents offline', async () => {
  const s = randomUUID();
  await store.agents.register(reg('a-3'), s, 'node-1');
  await store.pool.query(`update agents set last_seen_at = now() - interval '1 hour' where agent_id = 'a-3'`);
  await store.agents.touch([{ agentId: 'a-3', sessionId: s, runningTasks: 2 }]);
  let row = await store.agents.get('a-3');
  assert.ok(row && Date.now() - row.last_seen_at.getTime() < 60_000);
  assert.equal(row?.running_tasks, 2);
  // A heartbeat for a session that is no longer current changes nothing.
  await store.pool.query(`update agents set last_seen_at = now() - interval '1 hour' where agent_id = 'a-3'`);
  await store.agents.touch([{ agentId: 'a-3', sessionId: randomUUID(), runningTasks: 0 }]);
  const silent = await store.agents.markSilentOffline(30);
  assert.ok(silent.includes('a-3'));
  row = await store.agents.get('a-3');
  assert.equal(row?.status, 'offline');
  assert.equal(row?.disconnect_reason, 'heartbeat_timeout');
});

test('list filters by status and labels and pages by cursor', async () => {
  for (let i = 0; i < 7; i++) {
    await store.agents.register(reg(`p-${i}`, { role: i % 2 ? 'db' : 'web', zone: 'z1' }), randomUUID(), 'n');
  }
  const web = await store.agents.list({ labels: [{ key: 'role', value: 'web' }], limit: 100 });
  assert.deepEqual(
    web.map((r) => r.agent_id),
    ['p-0', 'p-2', 'p-4', 'p-6'],
  );
  const hasZone = await store.agents.list({ labels: [{ key: 'zone', value: null }], limit: 100 });
  assert.equal(hasZone.length, 7);
  const page1 = await store.agents.list({ labels: [{ key: 'zone', value: null }], limit: 3 });
  const page2 = await store.agents.list({
    labels: [{ key: 'zone', value: null }],
    limit: 3,
    after: page1.at(-1)?.agent_id,
  });
  assert.deepEqual(
    [...page1, ...page2].map((r) => r.agent_id),
    ['p-0', 'p-1', 'p-2', 'p-3', 'p-4', 'p-5'],
  );
  const offline = await store.agents.list({ status: 'offline', limit: 100 });
  assert.ok(offline.every((r) => r.status === 'offline'));
  assert.ok(!offline.some((r) => r.agent_id.startsWith('p-')));
});

test('markNodeOffline only touches agents held by that node', async () => {
  await store.agents.register(reg('n-1'), randomUUID(), 'node-x');
  await store.agents.register(reg('n-2'), randomUUID(), 'node-y');
  assert.equal(await store.agents.markNodeOffline('node-x', 'platform_shutdown'), 1);
  assert.equal((await store.agents.get('n-1'))?.status, 'offline');
  assert.equal((await store.agents.get('n-2'))?.status, 'online');
});

test('the prepared create survives a column added by a newer platform (rolling upgrade)', async () => {
  const db = await createTestDatabase();
  // One connection, so the second create runs on the connection that prepared the first.
  const s = createStore({ databaseUrl: db.url, logger, maxConnections: 1 });
  try {
    await s.migrate();
    await s.agents.register(reg('upgrade-agent'), randomUUID(), 'node-a');
    const task = (id: string) => ({
      taskId: id,
      agentId: 'upgrade-agent',
      type: 'shell' as const,
      script: 'true',
      args: [],
      env: {},
      cleanEnv: false,
      workingDir: '',
      runAs: '',
      timeoutSeconds: 30,
      killGraceSeconds: 5,
      limits: { memory_bytes: 0, cpu_millicores: 0, max_processes: 0, max_output_bytes: 0 },
      deliveryTimeoutSeconds: 60,
      idempotencyKey: null,
    });
    const first = await s.tasks.create(task(randomUUID()));
    assert.equal(first.created, true);
    await s.pool.query('alter table tasks add column added_by_a_newer_version int');
    const id = randomUUID();
    const second = await s.tasks.create(task(id));
    assert.equal(second.created, true);
    assert.equal(second.task.task_id, id);
    assert.equal(second.task.status, 'pending');
  } finally {
    await s.close();
    await db.drop();
  }
});
