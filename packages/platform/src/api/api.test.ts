import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import type { LightMyRequestResponse } from 'fastify';
import { createStore, type Store } from '../store/index.js';
import { createApiServer, type ApiServer } from './index.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/db.js';
import { AUTH_HEADERS, TEST_ADMIN_TOKEN } from '../../../../test/support/security.js';
import { hashToken } from '../security/tokens.js';

const logger = pino({ level: 'silent' });
let tdb: TestDatabase;
let store: Store;
let app: ApiServer;

before(async () => {
  tdb = await createTestDatabase();
  store = createStore({ databaseUrl: tdb.url, logger });
  await store.migrate();
  await store.tokens.ensureApi({
    tokenId: randomUUID(),
    name: 'test',
    role: 'admin',
    hash: hashToken(TEST_ADMIN_TOKEN),
    createdBy: null,
  });
  app = await createApiServer({ store, logger, version: 'test' });
  for (let i = 0; i < 5; i++) {
    await store.agents.register(
      {
        agentId: `agent-${i}`,
        hostname: `h${i}`,
        os: 'linux',
        arch: 'x64',
        ipAddresses: ['127.0.0.1'],
        version: '0.1.0',
        labels: { tier: i < 3 ? 'web' : 'db' },
        capacity: 2,
      },
      randomUUID(),
      'node-a',
    );
  }
  await store.pool.query(
    `update agents set status = 'offline', disconnect_reason = 'stream_closed' where agent_id = 'agent-4'`,
  );
});
after(async () => {
  await app.close();
  await store.close();
  await tdb.drop();
});

test('agents list pages through every agent exactly once with snake_case fields', async () => {
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const url: string = `/api/v1/agents?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
    const res: LightMyRequestResponse = await app.inject({ headers: AUTH_HEADERS, url });
    assert.equal(res.statusCode, 200);
    const body = res.json<{
      agents: { agent_id: string; last_seen_at: string }[];
      next_cursor: string | null;
    }>();
    assert.ok(body.agents.length <= 2);
    for (const a of body.agents) {
      assert.ok(!Number.isNaN(Date.parse(a.last_seen_at)));
      seen.push(a.agent_id);
    }
    cursor = body.next_cursor;
  } while (cursor);
  assert.deepEqual(seen, ['agent-0', 'agent-1', 'agent-2', 'agent-3', 'agent-4']);
});

test('agents filter by status and label', async () => {
  const off = (await app.inject({ headers: AUTH_HEADERS, url: '/api/v1/agents?status=offline' })).json<{
    agents: { agent_id: string }[];
  }>();
  assert.deepEqual(
    off.agents.map((a) => a.agent_id),
    ['agent-4'],
  );
  const db = (
    await app.inject({ headers: AUTH_HEADERS, url: '/api/v1/agents?label=tier=db&status=online' })
  ).json<{
    agents: { agent_id: string }[];
  }>();
  assert.deepEqual(
    db.agents.map((a) => a.agent_id),
    ['agent-3'],
  );
});

test('bad input gets a 4xx with a stable code in the error envelope', async () => {
  const cases: [string, number, string][] = [
    ['/api/v1/agents?status=sleeping', 400, 'VALIDATION_FAILED'],
    ['/api/v1/agents?limit=0', 400, 'VALIDATION_FAILED'],
    ['/api/v1/agents?limit=abc', 400, 'VALIDATION_FAILED'],
    ['/api/v1/agents?cursor=%%%', 400, 'INVALID_CURSOR'],
    ['/api/v1/agents?label==x', 400, 'INVALID_LABEL_SELECTOR'],
    ['/api/v1/agents/no-such-agent', 404, 'AGENT_NOT_FOUND'],
    ['/api/v1/nothing-here', 404, 'ROUTE_NOT_FOUND'],
  ];
  for (const [url, status, code] of cases) {
    const res = await app.inject({ headers: AUTH_HEADERS, url });
    assert.equal(res.statusCode, status, url);
    const body = res.json<{ error: { code: string; message: string } }>();
    assert.equal(body.error.code, code, url);
    assert.ok(body.error.message.length > 0, url);
  }
});

test('the OpenAPI document describes the agents routes', async () => {
  const res = await app.inject({ headers: AUTH_HEADERS, url: '/api/docs/json' });
  assert.equal(res.statusCode, 200);
  const doc = res.json<{ openapi: string; paths: Record<string, unknown> }>();
  assert.match(doc.openapi, /^3\./);
  assert.ok(doc.paths['/api/v1/agents']);
  assert.ok(doc.paths['/api/v1/agents/{agent_id}']);
});

test('healthz reports ok with a reachable database', async () => {
  const res = await app.inject({ headers: AUTH_HEADERS, url: '/healthz' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.json<{ status: string }>().status, 'ok');
});
