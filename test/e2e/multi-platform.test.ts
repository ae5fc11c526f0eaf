/**
 * Several platform processes on one PostgreSQL: agents spread over them, a
 * task created through any process reaches an agent held by any other, and
 * SIGKILL of one process moves its agents to the others with no task lost or
 * run twice. Real processes, real scripts, real signals.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { ProcessGroup, freePort, tempDir, waitFor, type Proc } from '../support/procs.js';
import { AUTH_HEADERS } from '../support/security.js';

const PLATFORMS = 3;
// Each agent starts at a random address of its list: with 10 agents the chance that
// all pick one process is 3 x (1/3)^10 = 5e-5 (with 6 it was 1 in 243, seen once).
const AGENTS = 10;
const TERMINAL = ['succeeded', 'failed', 'timed_out', 'canceled', 'lost', 'expired'];
const procs = new ProcessGroup();
const work = tempDir('multi');
let db: TestDatabase;
const grpcPorts: number[] = [];
const httpPorts: number[] = [];
const platforms: Proc[] = [];

interface AgentJson {
  agent_id: string;
  status: string;
  platform_node: string | null;
  labels: Record<string, string>;
}
interface TaskJson {
  task_id: string;
  status: string;
  stdout: string | null;
  error: string | null;
}

const http = (i: number) => `http://127.0.0.1:${httpPorts[i] ?? 0}`;

async function api<T>(i: number, method: string, p: string, body?: unknown): Promise<T> {
  const res = await fetch(`${http(i)}${p}`, {
    method,
    headers: body === undefined ? AUTH_HEADERS : { ...AUTH_HEADERS, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await res.json()) as T;
}

async function agents(via: number): Promise<AgentJson[]> {
  return (await api<{ agents: AgentJson[] }>(via, 'GET', '/api/v1/agents?label=suite=multi')).agents;
}

before(async () => {
  db = await createTestDatabase('ap_e2e_multi');
  for (let i = 0; i < PLATFORMS; i++) {
    grpcPorts.push(await freePort());
    httpPorts.push(await freePort());
  }
  // All three start at once on one empty database: migrations take turns under the advisory lock.
  for (let i = 0; i < PLATFORMS; i++) {
    platforms.push(
      procs.start(
        [
          'server',
          '--grpc-listen',
          `127.0.0.1:${grpcPorts[i]}`,
          '--http-listen',
          `127.0.0.1:${httpPorts[i]}`,
          '--heartbeat-interval',
          '1',
        ],
        { DATABASE_URL: db.url },
      ),
    );
  }
  for (let i = 0; i < PLATFORMS; i++) {
    await waitFor(
      `platform ${i}`,
      async () => (await fetch(`${http(i)}/healthz`).catch(() => undefined))?.ok,
      30_000,
    );
  }
  for (let a = 0; a < AGENTS; a++) {
    // Every agent knows every platform; the list is rotated so the first choice differs.
    const servers = Array.from(
      { length: PLATFORMS },
      (_, k) => `127.0.0.1:${grpcPorts[(a + k) % PLATFORMS]}`,
    );
    procs.start([
      'agent',
      '--server',
      servers.join(','),
      '--state-dir',
      path.join(work, `a${a}`),
      '--labels',
      `suite=multi,n=${a}`,
    ]);
  }
});

after(async () => {
  await procs.killAll();
  await db.drop();
});

test('agents spread over the platform processes and each process sees them all', async () => {
  const list = await waitFor(
    'all agents online',
    async () => {
      const l = await agents(0);
      return l.length === AGENTS && l.every((a) => a.status === 'online') ? l : undefined;
    },
    30_000,
  );
  const nodes = new Set(list.map((a) => a.platform_node));
  assert.ok(nodes.size >= 2, `agents on ${nodes.size} process(es)`);
  assert.equal((await agents(2)).length, AGENTS);
});

test('tasks created through any process run exactly once, also when a process is SIGKILLed', async () => {
  const list = await agents(0);
  const ranFile = path.join(work, 'ran.log');
  const tokens = new Map<string, string>();
  for (let i = 0; i < 150; i++) {
    const agent = list[i % list.length];
    assert.ok(agent);
    const token = `m-${i}`;
    const t = await api<TaskJson>(i % PLATFORMS, 'POST', '/api/v1/tasks', {
      agent_id: agent.agent_id,
      type: 'shell',
      script: `echo ${token} >> ${ranFile}\nsleep 0.3\necho out-${token}`,
    });
    tokens.set(t.task_id, token);
  }
  // Kill the process that holds the most agents, while tasks are running.
  await waitFor(
    'some done',
    async () => {
      const l = await api<{ tasks: unknown[] }>(0, 'GET', '/api/v1/tasks?status=succeeded&limit=1000');
      return l.tasks.length >= 15;
    },
    30_000,
  );
  const held = new Map<string, number>();
  for (const a of await agents(0))
    if (a.platform_node) held.set(a.platform_node, (held.get(a.platform_node) ?? 0) + 1);
  const [victimNode] = [...held].sort((x, y) => y[1] - x[1])[0] ?? [];
  const victim = platforms.findIndex((p) => victimNode?.includes(`-${p.pid}-`));
  assert.ok(victim >= 0, `node ${victimNode} is one of ours`);
  const v = platforms[victim];
  assert.ok(v);
  process.kill(v.pid, 'SIGKILL');
  await v.exited;
  const survivor = (victim + 1) % PLATFORMS;

  // Its agents reconnect to the other processes by themselves.
  await waitFor(
    'agents moved',
    async () => {
      const l = await agents(survivor);
      return l.length === AGENTS && l.every((a) => a.status === 'online' && a.platform_node !== victimNode);
    },
    30_000,
  );

  const all = await waitFor(
    'every task terminal',
    async () => {
      const out: TaskJson[] = [];
      for (const id of tokens.keys()) out.push(await api<TaskJson>(survivor, 'GET', `/api/v1/tasks/${id}`));
      return out.every((t) => TERMINAL.includes(t.status)) ? out : undefined;
    },
    90_000,
    500,
  );
  assert.deepEqual(
    all.filter((t) => t.status !== 'succeeded').map((t) => [t.status, t.error]),
    [],
  );
  for (const t of all) assert.equal(t.stdout, `out-${tokens.get(t.task_id)}\n`);
  const ran = readFileSync(ranFile, 'utf8').trim().split('\n');
  assert.equal(ran.length, 150, 'each script ran once: no more, no fewer');
  assert.equal(new Set(ran).size, 150);
});
