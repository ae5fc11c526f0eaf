/**
 * The promises of DESIGN.md, each tested by killing something: real platform
 * and agent processes, real scripts, real PostgreSQL, real signals.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import { ProcessGroup, platformHealthy, freePort, tempDir, waitFor, type Proc } from '../support/procs.js';
import { AUTH_HEADERS } from '../support/security.js';

const HEARTBEAT_S = 1;
const TERMINAL = ['succeeded', 'failed', 'timed_out', 'canceled', 'lost', 'expired'];
const procs = new ProcessGroup();
const work = tempDir('faults');
let db: TestDatabase;
let grpcPort: number;
let httpPort: number;
let platform: Proc;

interface TaskJson {
  task_id: string;
  agent_id: string;
  status: string;
  exit_code: number | null;
  stdout: string | null;
  error: string | null;
}
interface AgentJson {
  agent_id: string;
  status: string;
  labels: Record<string, string>;
  disconnect_reason: string | null;
}

function startPlatform(): Proc {
  return procs.startPlatform({ grpcPort, httpPort, databaseUrl: db.url, heartbeatSeconds: HEARTBEAT_S });
}

function startAgent(name: string, capacity = 5): Proc {
  return procs.start([
    'agent',
    '--server',
    `127.0.0.1:${grpcPort}`,
    '--state-dir',
    path.join(work, `state-${name}`),
    '--labels',
    `name=${name}`,
    '--capacity',
    String(capacity),
  ]);
}

const base = () => `http://127.0.0.1:${httpPort}`;

async function api<T>(method: string, p: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base()}${p}`, {
    method,
    headers: body === undefined ? AUTH_HEADERS : { ...AUTH_HEADERS, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

async function agentByName(name: string): Promise<AgentJson | undefined> {
  const { body } = await api<{ agents: AgentJson[] }>('GET', `/api/v1/agents?label=name=${name}`);
  return body.agents[0];
}

async function onlineAgent(name: string, timeoutMs = 20_000): Promise<AgentJson> {
  return waitFor(
    `agent ${name} online`,
    async () => {
      const a = await agentByName(name);
      return a?.status === 'online' ? a : undefined;
    },
    timeoutMs,
  );
}

const healthy = () => platformHealthy(base());

async function createTask(
  agentId: string,
  script: string,
  extra: Record<string, unknown> = {},
): Promise<TaskJson> {
  const r = await api<TaskJson>('POST', '/api/v1/tasks', {
    agent_id: agentId,
    type: 'shell',
    script,
    timeout: 120,
    ...extra,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

async function getTask(id: string): Promise<TaskJson> {
  return (await api<TaskJson>('GET', `/api/v1/tasks/${id}`)).body;
}

/** The task once it is in a terminal state. */
function terminalTask(id: string, what: string, timeoutMs: number, intervalMs?: number): Promise<TaskJson> {
  return waitFor(
    what,
    async () => {
      const t = await getTask(id);
      return TERMINAL.includes(t.status) ? t : undefined;
    },
    timeoutMs,
    intervalMs,
  );
}

/** SIGKILL of the platform; `downMs` later a new process on the same ports and database. */
async function killAndRestartPlatform(downMs: number): Promise<void> {
  process.kill(platform.pid, 'SIGKILL');
  await platform.exited;
  await new Promise((r) => setTimeout(r, downMs));
  platform = startPlatform();
  await waitFor('platform health after restart', healthy, 30_000);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  db = await createTestDatabase('ap_e2e_faults');
  grpcPort = await freePort();
  httpPort = await freePort();
  platform = startPlatform();
  await waitFor('platform health', healthy, 30_000);
});

after(async () => {
  await procs.killAll();
  await db.drop();
});

test('SIGKILL of the platform while 200 tasks run on 3 agents: all finish, results stored once, no script runs twice', async () => {
  const names = ['f1', 'f2', 'f3'];
  for (const n of names) startAgent(n);
  const agents = await Promise.all(names.map((n) => onlineAgent(n)));
  const ranFile = path.join(work, 'ran.log');
  const tokens = new Map<string, string>(); // task id -> token
  for (let i = 0; i < 200; i++) {
    const agent = agents[i % 3];
    assert.ok(agent);
    const token = `tok-${i}`;
    // Each run appends its token: a script that ran twice shows up twice.
    const t = await createTask(agent.agent_id, `echo ${token} >> ${ranFile}\nsleep 0.2\necho done-${token}`);
    tokens.set(t.task_id, token);
  }
  await waitFor(
    'some tasks finished',
    async () => {
      const { body } = await api<{ tasks: TaskJson[] }>('GET', '/api/v1/tasks?status=succeeded&limit=1000');
      return body.tasks.length >= 20;
    },
    30_000,
  );
  await killAndRestartPlatform(500);

  const all = await waitFor(
    'every task terminal',
    async () => {
      const out: TaskJson[] = [];
      for (const id of tokens.keys()) out.push(await getTask(id));
      return out.every((t) => TERMINAL.includes(t.status)) ? out : undefined;
    },
    90_000,
    500,
  );
  const bad = all.filter((t) => t.status !== 'succeeded');
  assert.deepEqual(
    bad.map((t) => [t.status, t.error]),
    [],
    'every task succeeded',
  );
  for (const t of all) assert.equal(t.stdout, `done-${tokens.get(t.task_id)}\n`);
  const ran = readFileSync(ranFile, 'utf8').trim().split('\n');
  const counts = new Map<string, number>();
  for (const tok of ran) counts.set(tok, (counts.get(tok) ?? 0) + 1);
  const twice = [...counts].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], 'no script ran twice');
  assert.equal(counts.size, 200, 'every script ran');
  // Each result is stored once: exactly one row per task id, and logs have unique seqs.
  const { body } = await api<{ tasks: TaskJson[] }>('GET', '/api/v1/tasks?status=succeeded&limit=1000');
  assert.equal(body.tasks.filter((t) => tokens.has(t.task_id)).length, 200);
});

test('SIGKILL of the platform while a task prints: after the restart its log has every line once, in order', async () => {
  startAgent('printer');
  const agent = await onlineAgent('printer');
  const lines = 40;
  const t = await createTask(
    agent.agent_id,
    `i=1; while [ $i -le ${lines} ]; do echo line-$i; i=$((i+1)); sleep 0.1; done`,
  );
  await waitFor(
    'first lines stored',
    async () => {
      const { body } = await api<{ logs: unknown[] }>('GET', `/api/v1/tasks/${t.task_id}/logs`);
      return body.logs.length >= 3;
    },
    30_000,
  );
  // Lines printed from here until the agent is connected to the new process, and any
  // the old one had received but not stored, exist only in the agent's memory.
  await killAndRestartPlatform(1000);
  const done = await terminalTask(t.task_id, 'task terminal', 60_000, 200);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  const { body } = await api<{ logs: { seq: number; output: string }[] }>(
    'GET',
    `/api/v1/tasks/${t.task_id}/logs?limit=1000`,
  );
  const seqs = body.logs.map((l) => l.seq);
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => i + 1),
    'seqs 1..n, none missing',
  );
  const expected = Array.from({ length: lines }, (_, i) => `line-${i + 1}\n`).join('');
  assert.equal(body.logs.map((l) => l.output).join(''), expected);
});

test('SIGKILL of an agent mid-task: restarted, the running task is lost with a reason, its process and directory are gone; a finished result is delivered', async () => {
  const agentProc = startAgent('k1');
  const agent = await onlineAgent('k1');
  const pidFile = path.join(work, 'long.pid');
  const cwdFile = path.join(work, 'long.cwd');
  const long = await createTask(agent.agent_id, `pwd > ${cwdFile}\necho $$ > ${pidFile}\nexec sleep 300`);
  const quick = await createTask(agent.agent_id, 'sleep 1.5; echo quick-done');
  await waitFor(
    'long task running',
    async () => (await getTask(long.task_id)).status === 'running' && existsSync(pidFile),
  );
  const longPid = Number(readFileSync(pidFile, 'utf8').trim());
  assert.ok(pidAlive(longPid));
  const longDir = readFileSync(cwdFile, 'utf8').trim();
  assert.ok(existsSync(path.join(longDir, 'script.sh')), longDir);
  // Freeze the platform so the quick result cannot be acknowledged, let the quick
  // task finish on the agent, then kill the agent: the result exists only in its journal.
  process.kill(platform.pid, 'SIGSTOP');
  await new Promise((r) => setTimeout(r, 2500));
  process.kill(agentProc.pid, 'SIGKILL');
  await agentProc.exited;
  process.kill(platform.pid, 'SIGCONT');
  startAgent('k1');
  const lost = await terminalTask(long.task_id, 'long task lost', 30_000);
  assert.equal(lost.status, 'lost');
  assert.match(lost.error ?? '', /restart/);
  // Removed by the restarted agent before it registered, so before the task showed lost.
  assert.equal(existsSync(longDir), false, `${longDir} is left`);
  const q = await terminalTask(quick.task_id, 'quick task delivered', 30_000);
  assert.equal(q.status, 'succeeded');
  assert.equal(q.stdout, 'quick-done\n');
  await waitFor('the lost task process is gone', async () => !pidAlive(longPid), 10_000);
});

test('SIGSTOP of an agent past 3 heartbeats: offline, then online after SIGCONT, and its running task completes', async () => {
  const proc = startAgent('s1');
  const agent = await onlineAgent('s1');
  const t = await createTask(agent.agent_id, 'sleep 4; echo survived');
  await waitFor('running', async () => (await getTask(t.task_id)).status === 'running');
  process.kill(proc.pid, 'SIGSTOP');
  const off = await waitFor(
    'offline',
    async () => {
      const a = await agentByName('s1');
      return a?.status === 'offline' ? a : undefined;
    },
    15_000,
  );
  assert.equal(off.disconnect_reason, 'heartbeat_timeout');
  process.kill(proc.pid, 'SIGCONT');
  await onlineAgent('s1', 30_000);
  const done = await terminalTask(t.task_id, 'task finished', 30_000);
  assert.equal(done.status, 'succeeded');
  assert.equal(done.stdout, 'survived\n');
});
