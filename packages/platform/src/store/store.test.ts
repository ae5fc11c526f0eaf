import { after, before, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { createStore, type Store } from './index.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/db.js';
import { TRUE_SPEC, newTask, succeededResult } from '../../../../test/support/tasks.js';

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

/**
 * A store with one connection (plan caches are per connection) on a fresh
 * database, and an admin client on the same database; both closed after `fn`.
 * The database is migrated by a store of its own, so the store `fn` gets has
 * opened no connection yet: each of its pools' idle timers starts inside `fn`.
 */
async function withOneConnectionStore(fn: (s: Store, admin: pg.Client) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  const migrator = createStore({ databaseUrl: db.url, logger });
  await migrator.migrate();
  await migrator.close();
  const s = createStore({ databaseUrl: db.url, logger, maxConnections: 1 });
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    await fn(s, admin);
  } finally {
    await admin.end();
    await s.close();
    await db.drop();
  }
}

test("a lull of minutes keeps both pools' connections open (pg-pool closed them after 10 s)", () =>
  withOneConnectionStore(async (s, admin) => {
    const backends = async () =>
      (
        await admin.query<{ application_name: string }>(
          `select application_name from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()
            order by 1`,
        )
      ).rows.map((r) => r.application_name);
    // Pools set an idle timer when a connection is released: the mocked clock runs them.
    // Every one of this store's is made on it (a real one, its clearTimeout mocked at
    // checkout, would keep the process alive).
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      await s.tasks.markStarted([{ taskId: randomUUID(), agentId: 'nobody', at: new Date() }]);
      await s.tasks.applyProgress({
        logs: [],
        dropped: [],
        started: [{ taskId: randomUUID(), agentId: 'nobody', at: new Date() }],
      });
      const open = await backends();
      assert.ok(open.includes('agent-platform') && open.includes('agent-platform-progress'), open.join());
      mock.timers.tick(5 * 60_000);
    } finally {
      mock.timers.reset();
    }
    await new Promise((r) => setTimeout(r, 300)); // a connection closed by its timer has gone by now
    assert.deepEqual(
      [...new Set(await backends())],
      ['agent-platform', 'agent-platform-progress'],
      'still open after five idle minutes',
    );
  }));

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
    const task = (id: string) => newTask(id, 'upgrade-agent');
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

/** The named statements a store sends (name -> text and the last call's values), from now on. */
function captureNamed(s: Store): Map<string, { text: string; values: unknown[] }> {
  const sent = new Map<string, { text: string; values: unknown[] }>();
  const wrapped = new WeakSet<object>();
  const wrap = (client: pg.PoolClient) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (...a: unknown[]) => unknown;
    (client as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
      const q = a[0] as { name?: string; text?: string; values?: unknown[] };
      if (q?.name && q.text) sent.set(q.name, { text: q.text, values: q.values ?? [] });
      return query(...a);
    };
  };
  // Named statements run on a client the store takes with pool.connect() (promise form);
  // the callback form (pool.query) carries no named statement.
  const connect = s.pool.connect.bind(s.pool) as (...a: unknown[]) => unknown;
  (s.pool as unknown as { connect: (...a: unknown[]) => unknown }).connect = (...a: unknown[]) => {
    if (a.length > 0) return connect(...a);
    return (connect() as Promise<pg.PoolClient>).then((client) => {
      wrap(client);
      return client;
    });
  };
  return sent;
}

/** The generic plan PostgreSQL makes for a captured statement, with its last values (EXPLAIN, not run). */
async function genericPlan(
  admin: pg.Client,
  sent: Map<string, { text: string; values: unknown[] }>,
  name: string,
): Promise<string> {
  const st = sent.get(name);
  assert.ok(st, `${name} was sent as a named statement`);
  await admin.query('set plan_cache_mode = force_generic_plan');
  await admin.query(`prepare gp as ${st.text}`);
  // EXPLAIN EXECUTE takes no bind parameters: literals (simple values here).
  const literal = (v: unknown) =>
    v === null
      ? 'null'
      : admin.escapeLiteral(
          Array.isArray(v)
            ? `{${v.map((x) => (x === null ? 'NULL' : `"${String(x).replace(/["\\]/g, '\\$&')}"`)).join(',')}}`
            : typeof v === 'string'
              ? v
              : JSON.stringify(v),
        );
  try {
    const { rows } = await admin.query<{ 'QUERY PLAN': string }>(
      `explain execute gp(${st.values.map(literal).join(', ')})`,
    );
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  } finally {
    await admin.query('deallocate gp');
  }
}

test('started marks and results find their tasks by primary key under a generic plan on stale statistics, not through the in-flight index, and keep that plan', async () => {
  // A queue table's statistics: taken while nothing was in flight, then many tasks
  // in flight. The plan that read every in-flight task through tasks_inflight_idx
  // and scanned the statement's input again for each ran for tens of seconds under
  // bench:fleet (see RESULT_FROM_STATES in tasks.ts).
  await withOneConnectionStore(async (s, admin) => {
    const session = randomUUID();
    const agents = Array.from({ length: 50 }, (_, i) => `gp-${i}`);
    for (const a of agents) await s.agents.register(reg(a), session, 'node-1');
    const insert = async (n: number, status: string) => {
      const ids = Array.from({ length: n }, () => randomUUID());
      await admin.query(
        `insert into tasks (task_id, agent_id, type, script, args, env, clean_env, working_dir, run_as,
                            timeout_seconds, kill_grace_seconds, limits, delivery_timeout_seconds, status,
                            delivery_deadline, dispatched_at)
         select t, ($2::text[])[1 + (o::int % cardinality($2::text[]))], 'shell', 'true', '[]', '{}', false, '', '',
                30, 5, '{}', 3600, $3, now() + interval '1 hour', now()
           from unnest($1::uuid[]) with ordinality as x(t, o)`,
        [ids, agents, status],
      );
      return ids;
    };
    await insert(3000, 'succeeded');
    await admin.query('analyze tasks');
    const inflight = await insert(1000, 'dispatched');
    const agentOf = new Map(
      (
        await admin.query<{ task_id: string; agent_id: string }>(`select task_id, agent_id from tasks`)
      ).rows.map((r) => [r.task_id, r.agent_id]),
    );
    const sent = captureNamed(s);
    const marks = inflight
      .slice(0, 500)
      .map((taskId) => ({ taskId, agentId: agentOf.get(taskId) ?? '', at: new Date() }));
    assert.equal((await s.tasks.markStarted(marks)).length, 500);
    const results = inflight
      .slice(0, 600)
      .map((taskId) => succeededResult(taskId, agentOf.get(taskId) ?? ''));
    // From running (the 500 marked) and from dispatched (100 more).
    assert.equal((await s.tasks.applyResults(results)).length, 600);

    for (const name of ['ap_task_started', 'ap_task_results']) {
      const plan = await genericPlan(admin, sent, name);
      assert.doesNotMatch(plan, /tasks_inflight_idx/, `${name}, generic plan:\n${plan}`);
      // Nor through a scan of the whole table (a hash join: a table of a few
      // thousand tasks read for every result).
      assert.match(plan, /tasks_pkey/, `${name}, generic plan:\n${plan}`);
    }

    // One task at a time (the task path): the cached generic plan is used, not a
    // new plan for every call (PostgreSQL keeps planning when a generic plan is
    // estimated dearer than the custom ones).
    for (const t of inflight.slice(600, 620)) {
      const agentId = agentOf.get(t) ?? '';
      assert.equal((await s.tasks.markStarted([{ taskId: t, agentId, at: new Date() }])).length, 1);
      assert.equal((await s.tasks.applyResults([{ ...results[0]!, taskId: t, agentId }])).length, 1);
    }
    const { rows: cached } = await s.pool.query<{ name: string; generic_plans: string }>(
      `select name, generic_plans::text from pg_prepared_statements
        where name in ('ap_task_started', 'ap_task_results') order by name`,
    );
    assert.deepEqual(
      cached.map((r) => [r.name, Number(r.generic_plans) > 0]),
      [
        ['ap_task_results', true],
        ['ap_task_started', true],
      ],
      JSON.stringify(cached),
    );
  });
});

test('batch and single creates and the claim find their agent by primary key under a generic plan, not by scanning the online agents', async () => {
  // With the per-agent check as a join on `status = 'online'`, the generic plan read
  // every online agent (agents_status_idx) and ran both per-agent subqueries on each,
  // for every target: 285 ms for 50 targets among 50 agents (docs/decisions/0003).
  await withOneConnectionStore(async (s, admin) => {
    const session = randomUUID();
    const agents = Array.from({ length: 120 }, (_, i) => `bp-${i}`);
    for (const a of agents) await s.agents.register({ ...reg(a), capacity: 1 }, session, 'node-1');
    const sent = captureNamed(s);
    const batch = (ids: string[], held: boolean) =>
      s.tasks.createMany(
        TRUE_SPEC,
        ids.map((agentId) => ({
          agentId,
          taskId: randomUUID(),
          idempotencyKey: null,
          sessionId: held ? session : null,
        })),
        'node-1',
      );
    // Held here with a free slot: dispatched; the slot taken: pending; not held: pending.
    const first = await batch(agents.slice(0, 100), true);
    assert.deepEqual(new Set(first.map((r) => r.status)), new Set(['dispatched']));
    const second = await batch(agents.slice(0, 100), true);
    assert.deepEqual(new Set(second.map((r) => r.status)), new Set(['pending']));
    const third = await batch(agents.slice(100), false);
    assert.deepEqual(new Set(third.map((r) => r.status)), new Set(['pending']));
    const plan = await genericPlan(admin, sent, 'ap_task_create_many');
    assert.match(plan, /agents_pkey/, plan);
    assert.doesNotMatch(plan, /agents_status_idx|Seq Scan on agents/, plan);
    // The single create (dispatched where its agent is held) and the claim look their agent up the same way.
    await s.tasks.create(newTask(randomUUID(), 'bp-119'), {
      dispatch: { sessionId: session, platformNode: 'node-1' },
    });
    await s.tasks.claim('bp-0', session, 'node-1');
    for (const name of ['ap_task_create', 'ap_task_claim']) {
      const p = await genericPlan(admin, sent, name);
      assert.match(p, /agents_pkey/, `${name}:\n${p}`);
      assert.doesNotMatch(p, /agents_status_idx|Seq Scan on agents/, `${name}:\n${p}`);
    }
  });
});

test('a claim for a session that no longer owns the agent, or for an offline agent, takes nothing; an owner takes up to the capacity', async () => {
  const db = await createTestDatabase();
  const s = createStore({ databaseUrl: db.url, logger });
  try {
    await s.migrate();
    const owner = randomUUID();
    await s.agents.register({ ...reg('claim-agent'), capacity: 2 }, owner, 'node-1');
    const ids = Array.from({ length: 5 }, () => randomUUID());
    for (const taskId of ids) {
      await s.tasks.create(newTask(taskId, 'claim-agent'));
    }
    const pending = async () =>
      (await s.pool.query<{ n: string }>(`select count(*)::text as n from tasks where status = 'pending'`))
        .rows[0]?.n;
    // A stale session (the agent re-registered elsewhere): nothing, and no more_pending claim either.
    const stale = await s.tasks.claim('claim-agent', randomUUID(), 'node-2');
    assert.equal(stale.rows.length, 0);
    assert.equal(await pending(), '5');
    // The owner, offline: nothing.
    assert.equal(await s.agents.markOffline('claim-agent', owner, 'test'), true);
    assert.equal((await s.tasks.claim('claim-agent', owner, 'node-1')).rows.length, 0);
    assert.equal(await pending(), '5');
    // The owner, online again: its capacity, oldest first.
    await s.agents.register({ ...reg('claim-agent'), capacity: 2 }, owner, 'node-1');
    const got = await s.tasks.claim('claim-agent', owner, 'node-1');
    assert.deepEqual(
      got.rows.map((r) => r.task_id),
      ids.slice(0, 2),
    );
    assert.equal(got.more, true);
    assert.equal(await pending(), '3');
  } finally {
    await s.close();
    await db.drop();
  }
});

test('a statement PostgreSQL refuses (a create for an unknown agent) leaves its connection in the pool', async () => {
  await withOneConnectionStore(async (s) => {
    const backend = async () =>
      (await s.pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid;
    const before = await backend();
    for (let i = 0; i < 3; i++) {
      await assert.rejects(s.tasks.create(newTask(randomUUID(), 'no-such-agent')), { code: '23503' });
    }
    // The same backend: no reconnect, and the statement stays prepared on it.
    assert.equal(await backend(), before);
    const { rows } = await s.pool.query(`select 1 from pg_prepared_statements where name = 'ap_task_create'`);
    assert.equal(rows.length, 1);
  });
});

test("a batch's shared script is read from the database once per store, then from its cache, by every claim of its tasks", async () => {
  const db = await createTestDatabase();
  const creator = createStore({ databaseUrl: db.url, logger });
  const claimer = createStore({ databaseUrl: db.url, logger });
  try {
    await creator.migrate();
    const sessions = new Map<string, string>();
    for (const id of ['sh-1', 'sh-2', 'sh-3']) {
      sessions.set(id, randomUUID());
      await creator.agents.register(reg(id), sessions.get(id) ?? '', 'node-1');
    }
    const script = `# ${'s'.repeat(5000)}\ntrue\n`;
    // Pending for every agent (no session given): each is claimed on its own below.
    await creator.tasks.createMany(
      { ...TRUE_SPEC, script },
      [...sessions.keys()].map((agentId) => ({
        agentId,
        taskId: randomUUID(),
        idempotencyKey: null,
        sessionId: null,
      })),
      'node-1',
    );
    // A probe: the stored copy changes under the stores (a hash names one content, so
    // nothing else ever changes it). A store that reads it again sees the change.
    const rewrite = (to: string) => creator.pool.query(`update task_scripts set script = $1`, [to]);
    const claimed = async (s: Store, agentId: string) =>
      (await s.tasks.claim(agentId, sessions.get(agentId) ?? '', 'node-1')).rows.map((r) => r.script);

    await rewrite('first read');
    // The creating store has it from the create.
    assert.deepEqual(await claimed(creator, 'sh-1'), [script]);
    // Another store reads it once...
    assert.deepEqual(await claimed(claimer, 'sh-2'), ['first read']);
    await rewrite('second read');
    // ...and not again.
    assert.deepEqual(await claimed(claimer, 'sh-3'), ['first read']);
  } finally {
    await creator.close();
    await claimer.close();
    await db.drop();
  }
});

test('a task row holds its script or names a stored one: never neither, never both, never an unknown hash', async () => {
  await store.agents.register(reg('script-rule'), randomUUID(), 'node-1');
  const insert = (script: string | null, hash: Buffer | null) =>
    store.pool.query(
      `insert into tasks (task_id, agent_id, type, script, script_hash, args, env, clean_env, working_dir, run_as,
                          timeout_seconds, kill_grace_seconds, limits, delivery_timeout_seconds, status, delivery_deadline)
       values ($1, 'script-rule', 'shell', $2, $3, '[]', '{}', false, '', '', 30, 5, '{}', 60, 'pending', now())`,
      [randomUUID(), script, hash],
    );
  const code = async (p: Promise<unknown>) =>
    (await p.then(
      () => 'ok',
      (e: { code?: string }) => e.code,
    )) as string;
  const unknown = Buffer.alloc(32, 7);
  assert.equal(await code(insert(null, null)), '23514');
  assert.equal(await code(insert(null, unknown)), '23503');
  await store.pool.query(`insert into task_scripts (script_hash, script) values ($1, 'true')`, [unknown]);
  assert.equal(await code(insert('true', unknown)), '23514');
  assert.equal(await code(insert(null, unknown)), 'ok');
  assert.equal(await code(insert('true', null)), 'ok');
});

test('purge deletes finished tasks past the retention with their logs, and shared scripts no task names that no batch used since', async () => {
  const db = await createTestDatabase();
  const s = createStore({ databaseUrl: db.url, logger });
  try {
    await s.migrate();
    await s.agents.register(reg('purge-agent'), randomUUID(), 'node-1');
    const make = async (status: string, ageDays: number, script = 'true') => {
      const id = randomUUID();
      await s.tasks.createMany(
        { ...TRUE_SPEC, script },
        [{ agentId: 'purge-agent', taskId: id, idempotencyKey: null, sessionId: null }],
        'node-1',
      );
      await s.pool.query(
        `update tasks set status = $2, created_at = now() - make_interval(days => $3),
                completed_at = case when $2 in ('pending', 'running') then null else now() end
          where task_id = $1`,
        [id, status, ageDays],
      );
      await s.tasks.insertLogs([
        { taskId: id, agentId: 'purge-agent', seq: 1, stream: 'stdout', output: 'x\n', ts: new Date() },
      ]);
      return id;
    };
    const oldScript = `# ${'o'.repeat(5000)}\n`;
    const keptScript = `# ${'k'.repeat(5000)}\n`;
    const oldDone = [
      await make('succeeded', 40),
      await make('failed', 31),
      await make('expired', 35, oldScript),
    ];
    const oldRunning = await make('running', 40);
    const oldPending = await make('pending', 40, keptScript);
    const recentDone = await make('succeeded', 5);
    // Scripts last used long ago (a batch that reused one would have set it now).
    await s.pool.query(`update task_scripts set last_used_at = now() - interval '40 days'`);

    // Small batches: three statements for the three old finished tasks.
    assert.deepEqual(await s.tasks.purge(30, 1), { tasks: 3, scripts: 1 });
    const left = (await s.pool.query<{ task_id: string }>(`select task_id from tasks`)).rows.map(
      (r) => r.task_id,
    );
    assert.deepEqual(left.sort(), [oldRunning, oldPending, recentDone].sort());
    const logs = await s.pool.query<{ n: string }>(
      `select count(*) as n from task_logs where task_id = any($1::uuid[])`,
      [oldDone],
    );
    assert.equal(logs.rows[0]?.n, '0');
    // The pending task's script stays; the expired one's went with it.
    const scripts = await s.pool.query<{ script: string }>(`select script from task_scripts`);
    assert.deepEqual(
      scripts.rows.map((r) => r.script),
      [keptScript],
    );
    assert.deepEqual(await s.tasks.purge(30), { tasks: 0, scripts: 0 });
    // A batch that reuses a script marks it used (under the row's lock, so a purge
    // cannot delete it under that batch).
    await s.pool.query(`update task_scripts set last_used_at = now() - interval '40 days'`);
    await make('pending', 0, keptScript);
    const used = await s.pool.query<{ fresh: boolean }>(
      `select last_used_at > now() - interval '1 minute' as fresh from task_scripts`,
    );
    assert.deepEqual(
      used.rows.map((r) => r.fresh),
      [true],
    );
  } finally {
    await s.close();
    await db.drop();
  }
});
