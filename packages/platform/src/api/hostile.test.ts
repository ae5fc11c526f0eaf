/**
 * Hostile input at every REST route: random and malformed methods, paths,
 * query strings, headers, tokens and bodies. Whatever arrives, the answer is a
 * 2xx/3xx or a 4xx with the error envelope: never a 5xx, never a crash, never
 * a half-written row, and every mutating call leaves exactly one audit row.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { pino } from 'pino';
import { startPlatform, type Platform } from '../index.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/db.js';
import { startSimAgent, type SimAgent } from '../../../../test/support/sim-agent.js';
import { AUTH_HEADERS, TEST_ADMIN_TOKEN, TEST_PLATFORM_OPTIONS } from '../../../../test/support/security.js';

let db: TestDatabase;
let platform: Platform;
let sim: SimAgent;
let operator: string;
let viewer: string;
let realTaskId: string;
/** What the platform logged at error level: a 5xx-in-waiting, or a lost audit row. */
const errors: string[] = [];

before(async () => {
  db = await createTestDatabase();
  platform = await startPlatform({
    databaseUrl: db.url,
    grpcListen: '127.0.0.1:0',
    httpListen: '127.0.0.1:0',
    ...TEST_PLATFORM_OPTIONS,
    logger: pino(
      { level: 'error' },
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          errors.push(chunk.toString().slice(0, 500));
          cb();
        },
      }),
    ),
  });
  sim = startSimAgent({ address: `127.0.0.1:${platform.grpcPort}`, respond: false });
  await sim.ready;
  const mk = async (role: string) =>
    (
      await platform.api.inject({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: AUTH_HEADERS,
        payload: { name: `hostile-${role}`, role },
      })
    ).json<{ token: string }>().token;
  operator = await mk('operator');
  viewer = await mk('viewer');
  const t = await platform.api.inject({
    method: 'POST',
    url: '/api/v1/tasks',
    headers: AUTH_HEADERS,
    payload: { agent_id: sim.agentId, type: 'shell', script: 'true' },
  });
  realTaskId = t.json<{ task_id: string }>().task_id;
});
after(async () => {
  sim.close();
  await platform.stop();
  await db.drop();
});

const ROUTES: [string, string][] = [
  ['GET', '/api/v1/agents'],
  ['GET', '/api/v1/agents/:agent_id'],
  ['DELETE', '/api/v1/agents/:agent_id'],
  ['POST', '/api/v1/tasks'],
  ['POST', '/api/v1/tasks/batch'],
  ['GET', '/api/v1/tasks'],
  ['GET', '/api/v1/tasks/:task_id'],
  ['POST', '/api/v1/tasks/:task_id/cancel'],
  ['GET', '/api/v1/tasks/:task_id/logs'],
  ['POST', '/api/v1/tokens'],
  ['GET', '/api/v1/tokens'],
  ['DELETE', '/api/v1/tokens/:token_id'],
  ['POST', '/api/v1/join-tokens'],
  ['GET', '/api/v1/join-tokens'],
  ['DELETE', '/api/v1/join-tokens/:token_id'],
  ['GET', '/api/v1/audit'],
  ['GET', '/healthz'],
  ['GET', '/api/docs/json'],
];
const METHODS = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'] as const;

/** Strings that tend to break things. */
const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '%00',
    '..',
    '../../etc/passwd',
    "' or 1=1 --",
    '{}',
    '[]',
    'null',
    '-1',
    '1e309',
    'NaN',
    '\ud800',
    '9'.repeat(40),
    'a'.repeat(300),
  ),
  fc.uuid(),
);
const param = fc.oneof(nasty, fc.uuid(), fc.constant('__agent__'));

const queryValue = fc.oneof(
  nasty,
  fc.integer().map(String),
  fc.constantFrom('online', 'offline', 'pending', 'true', '0'),
);
const query = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom('limit', 'cursor', 'status', 'label', 'agent_id', 'since_seq', 'token_id'),
        fc.string({ maxLength: 10 }),
      ),
      queryValue,
    ),
    { maxLength: 5 },
  )
  .map((pairs) => pairs.filter(([k]) => k !== 'follow'));

const auth = fc.oneof(
  fc.constant<string | undefined>(undefined),
  fc.constantFrom('admin', 'operator', 'viewer').map((r) => `@${r}`),
  nasty.map((s) => `Bearer ${s}`),
  nasty,
  fc.constantFrom(
    'Bearer',
    'Basic YWRtaW46YWRtaW4=',
    `bearer ${TEST_ADMIN_TOKEN}x`,
    `Bearer  ${TEST_ADMIN_TOKEN} extra`,
  ),
);

const anyJson = fc.jsonValue({ maxDepth: 4 });
const taskish = fc.record(
  {
    agent_id: fc.oneof(fc.constant('__agent__'), nasty, fc.integer()),
    type: fc.oneof(fc.constantFrom('shell', 'python'), nasty, fc.integer()),
    script: fc.oneof(fc.string({ maxLength: 200 }), fc.constant(''), anyJson),
    timeout: fc.oneof(fc.integer(), fc.double(), nasty),
    args: fc.oneof(fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }), anyJson),
    env: fc.oneof(
      fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 5 }),
      anyJson,
    ),
    limits: fc.oneof(
      fc.record({ memory_bytes: fc.integer(), cpu_millicores: fc.integer() }, { requiredKeys: [] }),
      anyJson,
    ),
    working_dir: nasty,
    run_as: nasty,
    delivery_timeout: fc.oneof(fc.integer(), nasty),
    kill_grace: fc.oneof(fc.integer(), nasty),
    labels: fc.dictionary(nasty, nasty, { maxKeys: 3 }),
    name: nasty,
    role: fc.oneof(fc.constantFrom('viewer', 'operator', 'admin'), nasty),
    ttl: fc.oneof(fc.integer(), nasty),
    uses: fc.oneof(fc.integer(), nasty),
    reason: nasty,
    extra: anyJson,
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  fc.constant<{ payload?: string | Buffer; type?: string }>({}),
  taskish.map((o) => ({ payload: JSON.stringify(o), type: 'application/json' })),
  anyJson.map((v) => ({ payload: JSON.stringify(v), type: 'application/json' })),
  fc.string({ maxLength: 200 }).map((s) => ({ payload: s, type: 'application/json' })),
  fc.uint8Array({ maxLength: 300 }).map((b) => ({ payload: Buffer.from(b), type: 'application/json' })),
  fc
    .tuple(
      fc.string({ maxLength: 100 }),
      fc.constantFrom(
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data',
        'application/json; charset=latin1',
        '',
      ),
    )
    .map(([p, type]) => ({ payload: p, type })),
);

const request = fc.record({
  route: fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...ROUTES) },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constantFrom(...METHODS),
        nasty.map((s) => `/api/v1/${enc(s)}`),
      ),
    },
  ),
  method: fc.oneof(
    { weight: 5, arbitrary: fc.constant<string | null>(null) },
    { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
  ),
  agentParam: param,
  taskParam: fc.oneof(param, fc.constant('__task__')),
  tokenParam: param,
  query,
  auth,
  idem: fc.option(nasty, { nil: undefined }),
  body,
});

/** encodeURIComponent that survives lone surrogates (it throws on them). */
function enc(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return encodeURIComponent(s.replace(/[\ud800-\udfff]/g, '\ufffd'));
  }
}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown };
}

test('numeric query parameters that coerce to Infinity are a 400, not a 500 (found by the property below)', async () => {
  for (const url of [
    '/api/v1/agents?limit=1e309',
    '/api/v1/agents?limit=Infinity',
    '/api/v1/tasks?limit=-1e309',
    `/api/v1/tasks/${realTaskId}/logs?since_seq=1e400`,
  ]) {
    const res = await platform.api.inject({ method: 'GET', url, headers: AUTH_HEADERS });
    assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
  }
  // Plain numbers still work.
  const ok = await platform.api.inject({
    method: 'GET',
    url: '/api/v1/agents?limit=5',
    headers: AUTH_HEADERS,
  });
  assert.equal(ok.statusCode, 200);
});

test('every REST route answers random and malformed requests with a 4xx envelope, never a 5xx', async () => {
  const seen = new Map<number, number>();
  const mutating: string[] = [];
  const created = new Set<string>();
  await fc.assert(
    fc.asyncProperty(request, async (r) => {
      const [routeMethod, template] = r.route;
      const method = r.method ?? routeMethod;
      const agentId = r.agentParam === '__agent__' ? sim.agentId : r.agentParam;
      // Never follow a real task's logs: SSE would wait for the task to end.
      const taskId = r.taskParam === '__task__' && !template.endsWith('/logs') ? realTaskId : r.taskParam;
      const p = template
        .replace(':agent_id', enc(agentId === '__agent__' ? sim.agentId : agentId))
        .replace(':task_id', enc(taskId === '__task__' ? randomUUID() : taskId))
        .replace(':token_id', enc(r.tokenParam));
      const qs = new URLSearchParams(r.query).toString();
      const headers: Record<string, string> = {};
      if (r.auth !== undefined) {
        headers.authorization =
          r.auth === '@admin'
            ? `Bearer ${TEST_ADMIN_TOKEN}`
            : r.auth === '@operator'
              ? `Bearer ${operator}`
              : r.auth === '@viewer'
                ? `Bearer ${viewer}`
                : r.auth;
      }
      if (r.idem !== undefined) headers['idempotency-key'] = r.idem;
      if (r.body.type !== undefined) headers['content-type'] = r.body.type;
      let payload = r.body.payload;
      if (typeof payload === 'string') payload = payload.replaceAll('__agent__', sim.agentId);
      let res;
      try {
        res = await platform.api.inject({
          method: method as 'GET',
          url: qs ? `${p}?${qs}` : p,
          headers,
          payload: method === 'GET' || method === 'HEAD' ? undefined : payload,
        });
      } catch (err) {
        // light-my-request refuses to send some requests (invalid header bytes): no request, nothing to check.
        if (err instanceof TypeError || (err as { code?: string }).code === 'ERR_INVALID_CHAR') return;
        throw err;
      }
      seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1);
      if (!['GET', 'HEAD', 'OPTIONS'].includes(method) && p !== '/healthz')
        mutating.push(`${method} ${res.statusCode}`);
      assert.ok(res.statusCode < 500, `${method} ${p}?${qs} -> ${res.statusCode} ${res.body.slice(0, 300)}`);
      if (res.statusCode >= 400 && method !== 'HEAD') {
        const b = res.json<ErrorBody>();
        assert.equal(typeof b.error?.code, 'string', res.body);
        assert.equal(typeof b.error?.message, 'string', res.body);
      }
      if (res.statusCode === 201 && p === '/api/v1/tasks')
        created.add(res.json<{ task_id: string }>().task_id);
      if (res.statusCode === 201 && p === '/api/v1/tasks/batch')
        for (const t of res.json<{ tasks: { task_id: string }[] }>().tasks) created.add(t.task_id);
    }),
    {
      numRuns: 1500,
      interruptAfterTimeLimit: 15_000,
      markInterruptAsFailure: false,
    },
  );
  // A few answers of each kind, so the property did reach past authentication and validation.
  assert.ok(
    (seen.get(401) ?? 0) > 0 && (seen.get(400) ?? 0) > 0 && (seen.get(200) ?? 0) > 0,
    JSON.stringify([...seen]),
  );

  // No half-written rows: every task row is one a 201 announced (plus the one made in before()).
  const rows = await platform.store.pool.query<{ task_id: string; script: string; status: string }>(
    'select task_id, script, status from tasks',
  );
  const ids = new Set(rows.rows.map((x) => x.task_id));
  ids.delete(realTaskId);
  assert.deepEqual([...ids].sort(), [...created].sort());
  for (const row of rows.rows) assert.ok(row.script.length > 0);

  // Every mutating call left exactly one audit row (three made in before(): two tokens, one task).
  const audit = await platform.store.pool.query<{ method: string; status_code: number }>(
    'select method, status_code from audit_log',
  );
  const tally = (keys: string[]) => {
    const m: Record<string, number> = {};
    for (const k of keys) m[k] = (m[k] ?? 0) + 1;
    return m;
  };
  // Paths are not compared: the URL parser resolves "..", and the row has the result.
  const expected = tally(['POST 201', 'POST 201', 'POST 201', ...mutating]);
  assert.deepEqual(
    { audited: tally(audit.rows.map((a) => `${a.method} ${a.status_code}`)), errors },
    { audited: expected, errors: [] },
  );
});
