/**
 * Foundation end to end: one real platform process, two real agent processes,
 * real PostgreSQL. Kills things with real signals.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { AgentServiceClient, type AgentMessage, type ServerMessage } from '@agent-platform/protocol';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import {
  ProcessGroup,
  platformHealthy,
  freePort,
  getJson,
  tempDir,
  waitFor,
  type Proc,
} from '../support/procs.js';

interface AgentJson {
  agent_id: string;
  hostname: string;
  status: string;
  labels: Record<string, string>;
  platform_node: string | null;
  connected_at: string | null;
  disconnect_reason: string | null;
  ip_addresses: string[];
  capacity: number;
}

const HEARTBEAT_S = 1;
const procs = new ProcessGroup();
let db: TestDatabase;
let grpcPort: number;
let httpPort: number;
let platform: Proc;
const stateDirs = [tempDir('agent-a'), tempDir('agent-b')];
const agents: Proc[] = [];

function startPlatform(): Proc {
  return procs.startPlatform({ grpcPort, httpPort, databaseUrl: db.url, heartbeatSeconds: HEARTBEAT_S });
}

function startAgent(i: number): Proc {
  return procs.start([
    'agent',
    '--server',
    `127.0.0.1:${grpcPort}`,
    '--state-dir',
    stateDirs[i] ?? '',
    '--labels',
    `role=r${i},suite=fleet`,
  ]);
}

async function listAgents(): Promise<AgentJson[]> {
  const { body } = await getJson<{ agents: AgentJson[] }>(
    `http://127.0.0.1:${httpPort}/api/v1/agents?label=suite=fleet`,
  );
  return body.agents;
}

const healthy = () => platformHealthy(`http://127.0.0.1:${httpPort}`);

before(async () => {
  db = await createTestDatabase('ap_e2e_fleet');
  grpcPort = await freePort();
  httpPort = await freePort();
  platform = startPlatform();
  await waitFor('platform health', healthy, 30_000);
  agents.push(startAgent(0), startAgent(1));
});

after(async () => {
  await procs.killAll();
  await db.drop();
});

test('two agents register with their facts and are online', async () => {
  const list = await waitFor('two online agents', async () => {
    const l = await listAgents();
    return l.length === 2 && l.every((a) => a.status === 'online') ? l : undefined;
  });
  const roles = list.map((a) => a.labels.role).sort();
  assert.deepEqual(roles, ['r0', 'r1']);
  for (const a of list) {
    assert.ok(a.hostname.length > 0);
    assert.ok(a.ip_addresses.length > 0);
    assert.equal(a.capacity, 5);
  }
});

test('SIGKILL of the platform: started again, both agents come back with no help', async () => {
  const before = await listAgents();
  const oldNode = before[0]?.platform_node;
  const killedAt = Date.now();
  process.kill(platform.pid, 'SIGKILL');
  await platform.exited;
  platform = startPlatform();
  await waitFor('platform health after restart', healthy, 30_000);
  const list = await waitFor(
    'both agents on the new platform process',
    async () => {
      const l = await listAgents();
      const back = l.filter(
        (a) =>
          a.status === 'online' && a.platform_node !== oldNode && Date.parse(a.connected_at ?? '') > killedAt,
      );
      return back.length === 2 ? l : undefined;
    },
    30_000,
  );
  assert.equal(new Set(list.map((a) => a.agent_id)).size, 2);
  // Ids are stable: the same two agents, not two new rows.
  assert.deepEqual(list.map((a) => a.agent_id).sort(), before.map((a) => a.agent_id).sort());
});

test('SIGSTOP of an agent: offline after 3 silent intervals, online again after SIGCONT', async () => {
  const b = agents[1];
  assert.ok(b);
  const id = (await listAgents()).find((a) => a.labels.role === 'r1')?.agent_id;
  process.kill(b.pid, 'SIGSTOP');
  const stoppedAt = Date.now();
  const off = await waitFor(
    'stopped agent offline',
    async () => {
      const a = (await listAgents()).find((x) => x.agent_id === id);
      return a?.status === 'offline' ? a : undefined;
    },
    15_000,
  );
  const took = Date.now() - stoppedAt;
  assert.equal(off.disconnect_reason, 'heartbeat_timeout');
  assert.ok(took >= 2 * HEARTBEAT_S * 1000, `offline too early: ${took} ms`);
  process.kill(b.pid, 'SIGCONT');
  await waitFor(
    'continued agent online',
    async () => {
      const a = (await listAgents()).find((x) => x.agent_id === id);
      return a?.status === 'online';
    },
    30_000,
  );
});

test('SIGKILL of an agent: offline within 3 heartbeat intervals, with a reason', async () => {
  const a = agents[0];
  assert.ok(a);
  const id = (await listAgents()).find((x) => x.labels.role === 'r0')?.agent_id;
  const killedAt = Date.now();
  process.kill(a.pid, 'SIGKILL');
  const off = await waitFor(
    'killed agent offline',
    async () => {
      const row = (await listAgents()).find((x) => x.agent_id === id);
      return row?.status === 'offline' ? row : undefined;
    },
    3 * HEARTBEAT_S * 1000 + 2000,
    50,
  );
  assert.ok(Date.now() - killedAt <= 3 * HEARTBEAT_S * 1000 + 2000);
  assert.ok(
    off.disconnect_reason === 'stream_closed' || off.disconnect_reason === 'heartbeat_timeout',
    String(off.disconnect_reason),
  );
});

function rawRegister(register: AgentMessage): Promise<{ err?: grpc.ServiceError; msg?: ServerMessage }> {
  return new Promise((resolve) => {
    const client = new AgentServiceClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    });
    const call = client.connect();
    const done = (r: { err?: grpc.ServiceError; msg?: ServerMessage }) => {
      call.cancel();
      client.close();
      resolve(r);
    };
    call.on('data', (msg: ServerMessage) => done({ msg }));
    call.on('error', (err: grpc.ServiceError) => done({ err }));
    call.write(register);
  });
}

function registration(agentId: string, patch: Record<string, unknown>): AgentMessage {
  return {
    message: {
      $case: 'register',
      value: {
        agentId,
        hostname: 'h',
        os: 'linux',
        arch: 'x64',
        ipAddresses: [],
        version: '0.1.0',
        labels: {},
        capacity: 1,
        pendingTaskIds: [],
        ...patch,
      },
    },
  };
}

async function rowExists(agentId: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return ((await c.query('select 1 from agents where agent_id = $1', [agentId])).rowCount ?? 0) > 0;
  } finally {
    await c.end();
  }
}

test('a registration without a hostname gets INVALID_REGISTRATION on the stream and leaves no row', async () => {
  const r = await rawRegister(registration('bad-no-host', { hostname: '' }));
  assert.equal(r.msg, undefined);
  assert.equal(r.err?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(r.err?.metadata.get('error-code')[0], 'INVALID_REGISTRATION');
  assert.match(r.err?.details ?? '', /hostname is required/);
  assert.equal(await rowExists('bad-no-host'), false);
});

test('a registration with 10 MB of labels is refused on the stream and leaves no row', async () => {
  const r = await rawRegister(
    registration('bad-huge-labels', { labels: { big: 'x'.repeat(10 * 1024 * 1024) } }),
  );
  assert.equal(r.msg, undefined);
  assert.equal(r.err?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(await rowExists('bad-huge-labels'), false);
  // Under the message limit but over the label limit: refused by validation.
  const r2 = await rawRegister(registration('bad-big-label', { labels: { big: 'x'.repeat(100_000) } }));
  assert.equal(r2.err?.metadata.get('error-code')[0], 'INVALID_REGISTRATION');
  assert.equal(await rowExists('bad-big-label'), false);
});

test('SIGTERM stops the platform cleanly and marks its agents offline', async () => {
  const exit = platform.exited;
  process.kill(platform.pid, 'SIGTERM');
  const { code } = await exit;
  assert.equal(code, 0, platform.log().slice(-2000));
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const { rows } = await c.query<{ status: string; disconnect_reason: string }>(
      `select status, disconnect_reason from agents where labels->>'suite' = 'fleet'`,
    );
    assert.ok(rows.length === 2 && rows.every((r) => r.status === 'offline'), JSON.stringify(rows));
    assert.ok(
      rows.some((r) => r.disconnect_reason === 'platform_shutdown'),
      JSON.stringify(rows),
    );
    const { rows: conns } = await c.query<{ n: string }>(
      `select count(*) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`,
    );
    assert.equal(conns[0]?.n, '0', 'the platform released its database connections');
  } finally {
    await c.end();
  }
});
