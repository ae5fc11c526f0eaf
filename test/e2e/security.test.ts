/**
 * The real TLS path end to end: `apctl server` with its own CA, an agent that
 * enrolls with a join token and pins the CA by fingerprint, mutual TLS from then
 * on, REST over HTTPS with tokens and roles, revocation, and the audit log.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AgentServiceClient, type ServerMessage } from '@agent-platform/protocol';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import pg from 'pg';
import { APCTL, ProcessGroup, ROOT, freePort, tempDir, waitFor, type Proc } from '../support/procs.js';
import { TEST_ADMIN_TOKEN } from '../support/security.js';

const procs = new ProcessGroup();
const dataDir = tempDir('sec-platform');
const work = tempDir('sec');
const SECURE = { AP_INSECURE: '0', APCTL_TOKEN: '' };
let db: TestDatabase;
let grpcPort: number;
let httpPort: number;
let ca: string;

interface Res<T> {
  status: number;
  body: T;
}

function api<T = Record<string, unknown>>(
  method: string,
  p: string,
  token: string | undefined,
  body?: unknown,
): Promise<Res<T>> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const req = https.request({ host: '127.0.0.1', port: httpPort, path: p, method, ca, headers }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

function startAgent(name: string, extra: string[] = []): Proc {
  return procs.start(
    [
      'agent',
      '--server',
      `127.0.0.1:${grpcPort}`,
      '--state-dir',
      path.join(work, name),
      '--labels',
      `suite=sec,name=${name}`,
      ...extra,
    ],
    SECURE,
  );
}

interface AgentJson {
  agent_id: string;
  status: string;
  labels: Record<string, string>;
}

async function agent(id: string): Promise<AgentJson | undefined> {
  const r = await api<AgentJson>('GET', `/api/v1/agents/${id}`, TEST_ADMIN_TOKEN);
  return r.status === 200 ? r.body : undefined;
}

/** Opens a stream with `creds` and registers as `agentId`; resolves with how it ended. */
function tryRegister(creds: grpc.ChannelCredentials, agentId: string): Promise<string> {
  const client = new AgentServiceClient(`127.0.0.1:${grpcPort}`, creds);
  const call = client.connect();
  return new Promise<string>((resolve) => {
    const done = (what: string) => {
      call.cancel();
      client.close();
      resolve(what);
    };
    call.on('data', (m: ServerMessage) => {
      if (m.message?.$case === 'registerResponse') done('registered');
    });
    call.on('error', (err: grpc.ServiceError) =>
      done(String(err.metadata?.get('error-code')[0] ?? err.code)),
    );
    call.write({
      message: {
        $case: 'register',
        value: {
          agentId,
          hostname: 'intruder',
          os: 'linux',
          arch: 'x64',
          ipAddresses: [],
          version: 'x',
          labels: {},
          capacity: 1,
          pendingTaskIds: [],
        },
      },
    });
  });
}

let platform: Proc;
let joinToken: string;
let fingerprint: string;
let agentId: string;
let operator: string;
let viewer: string;

before(async () => {
  db = await createTestDatabase('ap_e2e_sec');
  grpcPort = await freePort();
  httpPort = await freePort();
  platform = procs.start(
    [
      'server',
      '--data-dir',
      dataDir,
      '--grpc-listen',
      `127.0.0.1:${grpcPort}`,
      '--http-listen',
      `127.0.0.1:${httpPort}`,
      '--heartbeat-interval',
      '1',
    ],
    { ...SECURE, DATABASE_URL: db.url },
  );
  const caFile = path.join(dataDir, 'tls', 'ca.crt');
  await waitFor('the platform CA', async () => existsSync(caFile), 30_000);
  ca = readFileSync(caFile, 'utf8');
  await waitFor(
    'https healthz',
    async () => (await api('GET', '/healthz', undefined)).status === 200,
    30_000,
  );
});

after(async () => {
  await procs.killAll();
  await db.drop();
});

test('REST is HTTPS only, needs a token, and checks the role', async () => {
  await assert.rejects(fetch(`http://127.0.0.1:${httpPort}/healthz`), 'plaintext HTTP is not served');
  const none = await api<{ error: { code: string } }>('GET', '/api/v1/agents', undefined);
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, 'UNAUTHENTICATED');
  const bad = await api<{ error: { code: string } }>('GET', '/api/v1/agents', 'apt_not-a-real-token-at-all');
  assert.equal(bad.status, 401);

  const mk = async (role: string) => {
    const r = await api<{ token: string }>('POST', '/api/v1/tokens', TEST_ADMIN_TOKEN, {
      name: `t-${role}`,
      role,
    });
    assert.equal(r.status, 201);
    return r.body.token;
  };
  operator = await mk('operator');
  viewer = await mk('viewer');
  assert.equal((await api('GET', '/api/v1/agents', viewer)).status, 200);
  const denied = await api<{ error: { code: string } }>('POST', '/api/v1/tasks', viewer, {
    agent_id: 'x',
    type: 'shell',
    script: 'true',
  });
  assert.equal(denied.status, 403);
  assert.equal(denied.body.error.code, 'FORBIDDEN');
  const notAdmin = await api<{ error: { code: string } }>('POST', '/api/v1/join-tokens', operator, {});
  assert.equal(notAdmin.status, 403);
  assert.equal((await api('GET', '/api/v1/audit', viewer)).status, 403);
});

test('an agent enrolls with a join token, pins the CA and runs a task over mutual TLS', async () => {
  const r = await api<{ token: string; ca_fingerprint: string; uses_max: number }>(
    'POST',
    '/api/v1/join-tokens',
    TEST_ADMIN_TOKEN,
    { ttl: 600, uses: 1, labels: { env: 'sec-test' } },
  );
  assert.equal(r.status, 201);
  joinToken = r.body.token;
  fingerprint = r.body.ca_fingerprint;
  assert.match(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);

  const a = startAgent('a', ['--join-token', joinToken, '--ca-fingerprint', fingerprint]);
  const idFile = path.join(work, 'a', 'agent-id');
  await waitFor('enrollment', async () => existsSync(path.join(work, 'a', 'identity', 'agent.crt')), 20_000);
  agentId = readFileSync(idFile, 'utf8').trim();
  const row = await waitFor('agent online', async () => {
    const x = await agent(agentId);
    return x?.status === 'online' ? x : undefined;
  });
  // The join token's labels win over the agent's own.
  assert.equal(row.labels.env, 'sec-test');
  assert.equal(row.labels.suite, 'sec');

  const created = await api<{ task_id: string }>('POST', '/api/v1/tasks', operator, {
    agent_id: agentId,
    type: 'shell',
    script: 'echo over-mtls',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const done = await waitFor('task done', async () => {
    const t = await api<{ status: string; stdout: string }>(
      'GET',
      `/api/v1/tasks/${created.body.task_id}`,
      viewer,
    );
    return t.body.status === 'succeeded' ? t.body : undefined;
  });
  assert.equal(done.stdout, 'over-mtls\n');

  // Restarted without the join token: the saved identity is used, same agent id.
  a.child.kill('SIGKILL');
  await a.exited;
  await waitFor('offline', async () => (await agent(agentId))?.status === 'offline');
  startAgent('a');
  await waitFor('online again', async () => (await agent(agentId))?.status === 'online');
  assert.equal(readFileSync(idFile, 'utf8').trim(), agentId);
});

test('a used-up join token enrolls nobody; a wrong CA fingerprint is refused before the token is sent', async () => {
  const b = startAgent('b', ['--join-token', joinToken, '--ca-fingerprint', fingerprint]);
  const exit = await b.exited;
  assert.notEqual(exit.code, 0);
  assert.match(b.log(), /INVALID_JOIN_TOKEN/);
  assert.equal(existsSync(path.join(work, 'b', 'identity', 'agent.crt')), false);

  const wrong = '00:'.repeat(31) + '00';
  const c = startAgent('c', ['--join-token', joinToken, '--ca-fingerprint', wrong]);
  const exitC = await c.exited;
  assert.notEqual(exitC.code, 0);
  assert.match(c.log(), /does not present the CA/);
});

test('without a certificate, or with another agent certificate, registration is refused', async () => {
  const caBuf = Buffer.from(ca);
  assert.equal(await tryRegister(grpc.credentials.createSsl(caBuf), agentId), 'UNAUTHENTICATED');
  assert.notEqual(await tryRegister(grpc.credentials.createInsecure(), agentId), 'registered');
  const id = path.join(work, 'a', 'identity');
  const mine = grpc.credentials.createSsl(
    caBuf,
    readFileSync(path.join(id, 'agent.key')),
    readFileSync(path.join(id, 'agent.crt')),
  );
  assert.equal(await tryRegister(mine, 'someone-else'), 'IDENTITY_MISMATCH');
  await waitFor('mismatch logged', async () => /IDENTITY_MISMATCH/.test(platform.log()));
});

test('a revoked agent is disconnected and cannot connect again; the audit log has who did what', async () => {
  const r = await api('DELETE', `/api/v1/agents/${agentId}`, TEST_ADMIN_TOKEN);
  assert.equal(r.status, 200);
  await waitFor('revoked agent offline', async () => (await agent(agentId))?.status === 'offline');
  // It keeps retrying with backoff; every attempt is refused.
  await waitFor('refused as revoked', async () => /AGENT_REVOKED/.test(platform.log()));
  await new Promise((res) => setTimeout(res, 1500));
  assert.equal((await agent(agentId))?.status, 'offline');

  const audit = await api<{
    entries: { action: string; actor: string; target: string | null; outcome: string }[];
  }>('GET', '/api/v1/audit?limit=100', TEST_ADMIN_TOKEN);
  assert.equal(audit.status, 200);
  const has = (action: string, actor: string, outcome = 'ok') =>
    audit.body.entries.some((e) => e.action === action && e.actor === actor && e.outcome === outcome);
  assert.ok(has('agent.revoke', 'bootstrap'));
  assert.ok(has('join_token.create', 'bootstrap'));
  assert.ok(has('task.create', 't-operator'));
  assert.ok(has('task.create', 't-viewer', 'denied'));
  assert.ok(audit.body.entries.some((e) => e.action === 'agent.revoke' && e.target === `agent:${agentId}`));
});

/** Runs `apctl args` to completion against the HTTPS API, trusting the platform CA the documented way. */
function apctl(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [APCTL, ...args],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          NODE_EXTRA_CA_CERTS: path.join(dataDir, 'tls', 'ca.crt'),
          APCTL_SERVER: `https://127.0.0.1:${httpPort}`,
          APCTL_TOKEN: TEST_ADMIN_TOKEN,
          ...env,
        },
      },
      (err, out, errOut) => resolve({ code: err ? Number(err.code ?? 1) : 0, out, err: errOut }),
    );
  });
}

test('apctl tokens over HTTPS: API tokens by role, join tokens with the CA fingerprint, the first admin token straight in the database', async () => {
  const viewerRun = await apctl(['tokens', 'create', '--role', 'viewer', '--name', 'cli-viewer']);
  assert.equal(viewerRun.code, 0, viewerRun.err);
  const token = viewerRun.out.trim();
  assert.match(token, /^apt_/);
  assert.equal((await api('GET', '/api/v1/tasks', token)).status, 200);

  const join = await apctl([
    'tokens',
    'create',
    '--join',
    '--ttl',
    '30m',
    '--uses',
    '2',
    '--labels',
    'zone=a',
  ]);
  assert.equal(join.code, 0, join.err);
  assert.match(join.out, /join token\s+apj_/);
  assert.ok(join.out.includes(fingerprint), join.out);

  const direct = await apctl(
    ['tokens', 'create', '--role', 'admin', '--name', 'break-glass', '--database-url', db.url],
    {
      APCTL_TOKEN: '',
    },
  );
  assert.equal(direct.code, 0, direct.err);
  assert.equal((await api('GET', '/api/v1/audit', direct.out.trim())).status, 200);

  const list = await apctl(['tokens', 'list', '--json']);
  const names = (JSON.parse(list.out) as { tokens: { name: string }[] }).tokens.map((t) => t.name);
  assert.ok(names.includes('cli-viewer') && names.includes('break-glass'));
  // Without the token the CLI gets the platform's code.
  const anon = await apctl(['tasks', 'list'], { APCTL_TOKEN: '' });
  assert.equal(anon.code, 1);
  assert.match(anon.err, /UNAUTHENTICATED/);
});

test('a revoked or expired join token enrolls nobody', async () => {
  const mk = async () =>
    (
      await api<{ token: string; token_id: string }>('POST', '/api/v1/join-tokens', TEST_ADMIN_TOKEN, {
        uses: 5,
      })
    ).body;
  const revoked = await mk();
  assert.equal(
    (await api('DELETE', `/api/v1/join-tokens/${revoked.token_id}`, TEST_ADMIN_TOKEN)).status,
    200,
  );
  const expired = await mk();
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  await c.query(`update join_tokens set expires_at = now() - interval '1 second' where token_id = $1`, [
    expired.token_id,
  ]);
  await c.end();
  for (const [name, t] of [
    ['revoked', revoked.token],
    ['expired', expired.token],
  ] as const) {
    const a = startAgent(name, ['--join-token', t, '--ca-fingerprint', fingerprint]);
    const exit = await a.exited;
    assert.notEqual(exit.code, 0);
    assert.match(a.log(), /INVALID_JOIN_TOKEN/);
  }
});
