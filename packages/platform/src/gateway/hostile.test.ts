/**
 * Hostile input on the agent stream: random AgentMessages (valid protobuf,
 * random field values, in random order), random bytes, and random Enroll
 * calls. Always a clean stream status (never our INTERNAL, never a crash), and
 * nothing written for anyone else's task.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { AgentServiceClient, type AgentMessage } from '@agent-platform/protocol';
import { startPlatform, type Platform } from '../index.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/db.js';
import { startSimAgent, type SimAgent } from '../../../../test/support/sim-agent.js';
import { waitFor } from '../../../../test/support/procs.js';
import { AUTH_HEADERS, TEST_ADMIN_TOKEN, TEST_PLATFORM_OPTIONS } from '../../../../test/support/security.js';

const logger = pino({ level: 'silent' });
let db: TestDatabase;
let plain: Platform;
let secure: Platform;
let tlsDir: string;
let owner: SimAgent;
let taskId: string;

before(async () => {
  db = await createTestDatabase();
  tlsDir = await mkdtemp(path.join(os.tmpdir(), 'ap-hostile-'));
  const common = { databaseUrl: db.url, grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', logger };
  plain = await startPlatform({ ...common, ...TEST_PLATFORM_OPTIONS });
  secure = await startPlatform({ ...common, dataDir: tlsDir, bootstrapToken: TEST_ADMIN_TOKEN });
  owner = startSimAgent({ address: `127.0.0.1:${plain.grpcPort}`, respond: false });
  await owner.ready;
  const res = await plain.api.inject({
    method: 'POST',
    url: '/api/v1/tasks',
    headers: AUTH_HEADERS,
    payload: { agent_id: owner.agentId, type: 'shell', script: 'echo owner' },
  });
  taskId = res.json<{ task_id: string }>().task_id;
  await waitFor('dispatched', async () => owner.received.some((t) => t.taskId === taskId));
});
after(async () => {
  owner.close();
  await plain.stop();
  await secure.stop();
  await db.drop();
  await rm(tlsDir, { recursive: true, force: true });
});

const nasty = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('', '\u0000', 'a'.repeat(300), '../../x', "'; drop table tasks; --"),
);
const anyTaskId = fc.oneof(fc.constant('__task__'), fc.uuid(), nasty);
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const int64ish = fc.oneof(int32, fc.constantFrom(0, -1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER));
const time = fc.option(fc.date({ min: new Date(0), max: new Date(4102444800000), noInvalidDate: true }), {
  nil: undefined,
});

const register = fc.record({
  agentId: fc.oneof(fc.uuid(), nasty),
  hostname: nasty,
  os: fc.oneof(fc.constant('linux'), nasty),
  arch: fc.oneof(fc.constant('x64'), nasty),
  ipAddresses: fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), nasty), { maxLength: 3 }),
  version: fc.oneof(fc.constant('1'), nasty),
  labels: fc.dictionary(nasty, nasty, { maxKeys: 4 }),
  capacity: int32,
  pendingTaskIds: fc.array(anyTaskId, { maxLength: 3 }),
});
const validRegister = fc.uuid().map((agentId) => ({
  agentId,
  hostname: 'hostile',
  os: 'linux',
  arch: 'x64',
  ipAddresses: [],
  version: '1',
  labels: {},
  capacity: 2,
  pendingTaskIds: [],
}));

const message: fc.Arbitrary<AgentMessage> = fc.oneof(
  register.map((value) => ({ message: { $case: 'register' as const, value } })),
  fc
    .record({ agentId: nasty, timestamp: time, runningTasks: int32 })
    .map((value) => ({ message: { $case: 'heartbeat' as const, value } })),
  fc
    .record({ taskId: anyTaskId, startedAt: time })
    .map((value) => ({ message: { $case: 'taskStarted' as const, value } })),
  fc
    .record({
      taskId: anyTaskId,
      output: fc.oneof(nasty, fc.string({ maxLength: 5000 })),
      isStderr: fc.boolean(),
      timestamp: time,
      seq: int64ish,
    })
    .map((value) => ({ message: { $case: 'taskLog' as const, value } })),
  fc
    .record({
      taskId: anyTaskId,
      exitCode: int32,
      stdout: nasty,
      stderr: nasty,
      completedAt: time,
      status: fc.integer({ min: -3, max: 20 }),
      error: nasty,
      startedAt: time,
      stdoutBytes: int64ish,
      stderrBytes: int64ish,
      stdoutTruncated: fc.boolean(),
      stderrTruncated: fc.boolean(),
      limitsEnforced: fc.array(fc.record({ name: nasty, mechanism: nasty, value: int64ish }), {
        maxLength: 3,
      }),
      signal: nasty,
    })
    .map((value) => ({ message: { $case: 'taskResult' as const, value } })),
  fc.constant<AgentMessage>({ message: undefined }),
);

/** How a stream ended: gRPC code and our error code (metadata), or 'timeout'. */
interface Ending {
  code: number | 'timeout';
  errorCode?: string;
}

function waitEnd<I, O>(call: grpc.ClientDuplexStream<I, O>, ms = 3000): Promise<Ending> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      call.cancel();
      resolve({ code: 'timeout' });
    }, ms);
    call.on('data', () => undefined);
    call.on('error', () => undefined);
    call.on('status', (s: grpc.StatusObject) => {
      clearTimeout(t);
      const ec = s.metadata.get('error-code')[0];
      resolve({ code: s.code, errorCode: typeof ec === 'string' ? ec : undefined });
    });
  });
}

function fixTask(m: AgentMessage): AgentMessage {
  const v = m.message?.value as { taskId?: string; pendingTaskIds?: string[] } | undefined;
  if (v?.taskId === '__task__') v.taskId = taskId;
  if (v?.pendingTaskIds) v.pendingTaskIds = v.pendingTaskIds.map((x) => (x === '__task__' ? taskId : x));
  return m;
}

test('random AgentMessages on the stream: a clean status, nothing written for another agent', async () => {
  const client = new AgentServiceClient(`127.0.0.1:${plain.grpcPort}`, grpc.credentials.createInsecure());
  const endings = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(
      fc.option(validRegister, { freq: 2, nil: undefined }),
      fc.array(message, { maxLength: 8 }),
      async (first, rest) => {
        const call = client.connect();
        const ended = waitEnd(call);
        const msgs = [...(first ? [{ message: { $case: 'register' as const, value: first } }] : []), ...rest];
        for (const m of msgs) {
          try {
            call.write(fixTask(m));
          } catch {
            // a value the encoder refuses (out-of-range date) never reaches the platform
          }
        }
        call.end();
        const e = await ended;
        const key = `${e.code}/${e.errorCode ?? '-'}`;
        endings.set(key, (endings.get(key) ?? 0) + 1);
        assert.notEqual(e.errorCode, 'INTERNAL', JSON.stringify(msgs).slice(0, 500));
        assert.notEqual(e.code, grpc.status.UNKNOWN);
        assert.notEqual(e.code, 'timeout');
      },
    ),
    { numRuns: 300, interruptAfterTimeLimit: 15_000, markInterruptAsFailure: false },
  );
  client.close();
  assert.ok(endings.size > 1, JSON.stringify([...endings]));

  // The platform is alive and the owner's task is as the owner left it.
  assert.equal((await plain.api.inject({ url: '/healthz' })).statusCode, 200);
  const t = (await plain.api.inject({ url: `/api/v1/tasks/${taskId}`, headers: AUTH_HEADERS })).json<{
    status: string;
    stdout: string | null;
    log_bytes: number;
  }>();
  assert.deepEqual([t.status, t.stdout, t.log_bytes], ['dispatched', null, 0]);
  const count = await plain.store.pool.query<{ n: string }>('select count(*) as n from tasks');
  assert.equal(Number(count.rows[0]?.n), 1);
  // Every agent row that exists came from a registration that passed validation.
  const bad = await plain.store.pool.query(
    `select agent_id from agents where hostname = '' or capacity < 1 or capacity > 10000 or version = ''`,
  );
  assert.deepEqual(bad.rows, []);
});

test('random bytes on the stream: a clean status, the platform keeps serving', async () => {
  const client = new grpc.Client(`127.0.0.1:${plain.grpcPort}`, grpc.credentials.createInsecure());
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uint8Array({ maxLength: 2000 }), { minLength: 1, maxLength: 3 }),
      async (frames) => {
        const call = client.makeBidiStreamRequest(
          '/agentplatform.v1.AgentService/Connect',
          (b: Buffer) => b,
          (b: Buffer) => b,
        );
        const ended = waitEnd(call);
        for (const f of frames) call.write(Buffer.from(f));
        call.end();
        const e = await ended;
        assert.notEqual(e.errorCode, 'INTERNAL');
        assert.notEqual(e.code, 'timeout');
      },
    ),
    { numRuns: 200, interruptAfterTimeLimit: 10_000, markInterruptAsFailure: false },
  );
  client.close();
  assert.equal((await plain.api.inject({ url: '/healthz' })).statusCode, 200);
});

test('random Enroll calls are refused cleanly and issue nothing', async () => {
  const ca = Buffer.from(secure.caCertPem ?? '');
  const client = new AgentServiceClient(`127.0.0.1:${secure.grpcPort}`, grpc.credentials.createSsl(ca));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({
    type: 'spki',
    format: 'pem',
  });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
    type: 'spki',
    format: 'pem',
  });
  const codes = new Map<grpc.status, number>();
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        joinToken: fc.oneof(
          nasty,
          fc.base64String({ maxLength: 50 }).map((s) => `apj_${s}`),
        ),
        publicKeyPem: fc.oneof(
          nasty,
          fc.constantFrom(String(rsa), String(ec), String(rsa).slice(0, 200), 'a'.repeat(20_000)),
        ),
        hostname: nasty,
      }),
      async (req) => {
        const code = await new Promise<grpc.status>((resolve) => {
          client.enroll(req, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) =>
            resolve(err ? err.code : grpc.status.OK),
          );
        });
        codes.set(code, (codes.get(code) ?? 0) + 1);
        assert.ok(
          code === grpc.status.UNAUTHENTICATED || code === grpc.status.INVALID_ARGUMENT,
          `code ${code} for ${JSON.stringify(req).slice(0, 200)}`,
        );
      },
    ),
    { numRuns: 200, interruptAfterTimeLimit: 10_000, markInterruptAsFailure: false },
  );
  client.close();
  const issued = await secure.store.pool.query('select 1 from agent_credentials');
  assert.equal(issued.rowCount, 0);
  assert.ok(codes.size >= 1);
});
