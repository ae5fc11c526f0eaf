/**
 * `apctl` as operators use it: the built bundle as a child process, against a
 * real platform process, a real agent process and real PostgreSQL. Checks
 * which file descriptor each byte lands on, exit codes, and real signals.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/db.js';
import {
  APCTL,
  ProcessGroup,
  ROOT,
  platformHealthy,
  freePort,
  tempDir,
  waitFor,
  type Proc,
} from '../support/procs.js';
import { TEST_ADMIN_TOKEN } from '../support/security.js';

const procs = new ProcessGroup();
const work = tempDir('cli');
/** `apctl` client processes this file started, killed by pid in `after`. */
const clients = new Set<ChildProcess>();
let db: TestDatabase;
let grpcPort: number;
let httpPort: number;
let platform: Proc;
let agentId: string;

const server = () => `http://127.0.0.1:${httpPort}`;

interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts `apctl ARGS` pointed at the test platform; `input` goes to its stdin. */
function apctl(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): CliRun {
  const child = spawn(process.execPath, [APCTL, ...args], {
    cwd: ROOT,
    env: { ...process.env, APCTL_TOKEN: TEST_ADMIN_TOKEN, APCTL_SERVER: server(), ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  clients.add(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdin?.end(opts.input ?? '');
  const done = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>((resolve) =>
    child.on('close', (code, signal) => {
      clients.delete(child);
      resolve({ code, signal, stdout: out, stderr: err });
    }),
  );
  return { child, stdout: () => out, stderr: () => err, done };
}

const run = (args: string[], opts?: { input?: string; env?: Record<string, string> }) =>
  apctl(args, opts).done;

function startPlatform(): Proc {
  return procs.startPlatform({ grpcPort, httpPort, databaseUrl: db.url });
}

const healthy = () => platformHealthy(server());

async function taskStatus(taskId: string): Promise<string> {
  const r = await run(['tasks', 'get', taskId, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { status: string }).status;
}

before(async () => {
  db = await createTestDatabase('ap_e2e_cli');
  grpcPort = await freePort();
  httpPort = await freePort();
  platform = startPlatform();
  await waitFor('platform health', healthy, 30_000);
  procs.start([
    'agent',
    '--server',
    `127.0.0.1:${grpcPort}`,
    '--state-dir',
    path.join(work, 'agent'),
    '--labels',
    'suite=cli',
  ]);
  agentId = await waitFor('the agent online, seen through apctl', async () => {
    const r = await run(['agents', 'list', '--label', 'suite=cli', '--status', 'online', '--json']);
    const agents = (JSON.parse(r.stdout) as { agents: { agent_id: string }[] }).agents;
    return agents[0]?.agent_id;
  });
});

after(async () => {
  for (const c of clients) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
  await procs.killAll();
  await db.drop();
});

test('run writes stdout and stderr to their own descriptors as they arrive and exits with the script’s code', async () => {
  const r = apctl(['run', '--agent', agentId, '--', 'echo out1; echo err1 >&2; sleep 2; echo out2; exit 3']);
  // The first line is on our stdout while the script still sleeps: streamed, not collected at the end.
  await waitFor('first line on stdout', async () => r.stdout() === 'out1\n' && r.stderr() === 'err1\n');
  assert.equal(r.child.exitCode, null, 'apctl exited before the script finished');
  const { code, stdout, stderr } = await r.done;
  assert.equal(stdout, 'out1\nout2\n');
  assert.equal(stderr, 'err1\n');
  assert.equal(code, 3);
});

test('run passes env and args, runs Python, and reads the script from stdin with -f -', async () => {
  const { code, stdout, stderr } = await run(
    ['run', '--agent', agentId, '--python', '--env', 'GREETING=hello', '--arg', 'a b', '-f', '-'],
    { input: 'import os, sys\nprint(os.environ["GREETING"], sys.argv[1:])\n' },
  );
  assert.equal(stderr, '');
  assert.equal(stdout, "hello ['a b']\n");
  assert.equal(code, 0);
});

test('run --timeout 1 of sleep 10 exits 124, as timeout(1) does', async () => {
  const started = Date.now();
  const { code, stderr } = await run(['run', '--agent', agentId, '--timeout', '1', '--', 'sleep 10']);
  assert.equal(code, 124, stderr);
  assert.match(stderr, /^apctl: task [0-9a-f-]{36} timed.out/m);
  assert.ok(Date.now() - started < 9000, 'the script was not stopped at its timeout');
});

test('SIGINT to run cancels the task, waits for it to end, and exits 130', async () => {
  const r = apctl(['run', '--agent', agentId, '--', 'echo started; sleep 30; echo never']);
  await waitFor('script started', async () => r.stdout() === 'started\n');
  const interruptedAt = Date.now();
  r.child.kill('SIGINT');
  const { code, stdout, stderr } = await r.done;
  assert.equal(code, 130, stderr);
  assert.equal(stdout, 'started\n');
  assert.ok(Date.now() - interruptedAt < 15_000, 'apctl waited for the script instead of canceling it');
  const taskId = /canceling task ([0-9a-f-]{36})/.exec(stderr)?.[1];
  assert.ok(taskId, stderr);
  // apctl returned only after the end event, so the task is already terminal.
  assert.equal(await taskStatus(taskId), 'canceled');
});

test('tasks list, get, logs and cancel show a detached task', async () => {
  const detached = await run(['run', '--agent', agentId, '--detach', '--', 'echo detached; echo oops >&2']);
  assert.equal(detached.code, 0, detached.stderr);
  const taskId = detached.stdout.trim();
  assert.match(taskId, /^[0-9a-f-]{36}$/);

  const logs = await run(['tasks', 'logs', taskId, '-f']);
  assert.deepEqual([logs.code, logs.stdout, logs.stderr], [0, 'detached\n', 'oops\n']);

  const list = await run(['tasks', 'list', '--agent', agentId, '--json']);
  assert.equal(list.code, 0, list.stderr);
  const body = JSON.parse(list.stdout) as {
    tasks: { task_id: string; status: string }[];
    next_cursor: unknown;
  };
  assert.equal(body.tasks.find((t) => t.task_id === taskId)?.status, 'succeeded');
  assert.ok('next_cursor' in body, 'the JSON is the API response as-is');

  const table = await run(['tasks', 'list', '--agent', agentId, '--status', 'succeeded']);
  assert.match(table.stdout, /^TASK_ID\s+AGENT\s+TYPE\s+STATUS\s+EXIT\s+CREATED\s+DURATION$/m);
  assert.match(table.stdout, new RegExp(`^${taskId}\\s+${agentId}\\s+shell\\s+succeeded\\s+0\\s`, 'm'));

  const get = await run(['tasks', 'get', taskId]);
  assert.equal(get.code, 0, get.stderr);
  assert.match(get.stdout, /^status\s+succeeded$/m);
  assert.match(get.stdout, /^stdout:\n {2}detached$/m);

  const stored = await run(['tasks', 'logs', taskId]);
  assert.deepEqual([stored.stdout, stored.stderr], ['detached\n', 'oops\n']);

  const cancel = await run(['tasks', 'cancel', taskId]);
  assert.equal(cancel.code, 1);
  assert.match(cancel.stderr, /^apctl: TASK_ALREADY_FINISHED: /);
});

test('agents list and get show the agent', async () => {
  const list = await run(['agents', 'list', '--label', 'suite=cli']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`^${agentId}\\s+\\S+\\s+online\\s`, 'm'));
  const get = await run(['agents', 'get', agentId, '--json']);
  assert.equal((JSON.parse(get.stdout) as { agent_id: string }).agent_id, agentId);
});

test('run --label fans out to every matching agent, prefixes whole lines with the host, and exits with the worst code', async () => {
  procs.start([
    'agent',
    '--server',
    `127.0.0.1:${grpcPort}`,
    '--state-dir',
    path.join(work, 'agent-2'),
    '--labels',
    'suite=cli',
  ]);
  const ids = await waitFor('two agents online', async () => {
    const r = await run(['agents', 'list', '--label', 'suite=cli', '--status', 'online', '--json']);
    const agents = (JSON.parse(r.stdout) as { agents: { agent_id: string }[] }).agents.map((a) => a.agent_id);
    return agents.length === 2 ? agents : undefined;
  });
  const ok = await run(['run', '--label', 'suite=cli', '--', 'printf "one\\ntwo"; echo e >&2']);
  assert.equal(ok.code, 0, ok.stderr);
  const lines = ok.stdout.trim().split('\n');
  assert.equal(lines.length, 4, ok.stdout);
  for (const id of ids) {
    // Two agents on one host are told apart by the start of their id.
    const mine = lines.filter((l) => l.includes(`/${id.slice(0, 8)}`));
    assert.deepEqual(
      mine.map((l) => l.split('| ')[1]),
      ['one', 'two'],
      ok.stdout,
    );
  }
  assert.match(ok.stderr, /2\/2 succeeded/);
  // A script large enough to be stored once for the batch (decision 0008), from stdin:
  // each real agent runs all of it.
  const big = `# ${'p'.repeat(8 * 1024)}\necho "tail $(wc -c < "$0")"\n`;
  const shared = await run(['run', '--label', 'suite=cli', '-f', '-'], { input: big });
  assert.equal(shared.code, 0, shared.stderr);
  const tails = shared.stdout
    .trim()
    .split('\n')
    .map((l) => l.split('| ')[1]);
  assert.deepEqual(
    tails,
    [`tail ${Buffer.byteLength(big)}`, `tail ${Buffer.byteLength(big)}`],
    shared.stdout,
  );
  const bad = await run([
    'run',
    '--agent',
    ids[0] ?? '',
    '--agent',
    ids[1] ?? '',
    '--',
    `[ "$AGENT_PLATFORM_TASK_ID" ] && exit 3`,
  ]);
  assert.equal(bad.code, 3, bad.stderr);
  assert.match(bad.stderr, /0\/2 succeeded/);
});

test('an unknown agent or task exits 1 with the API’s error code', async () => {
  const r = await run(['run', '--agent', 'no-such-agent', '--', 'true']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^apctl: AGENT_NOT_FOUND: .+$/m);
  const t = await run(['tasks', 'get', '00000000-0000-4000-8000-000000000000']);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /^apctl: TASK_NOT_FOUND: /);
});

test('usage errors exit 2 and a platform that is not there is named', async () => {
  const bad = await run(['run', '--agent', agentId, '--env', 'NOEQUALS', '--', 'true']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--env takes KEY=VALUE/);
  const missing = await run(['run', '--', 'true']);
  assert.equal(missing.code, 2);
  const nowhere = `http://127.0.0.1:${await freePort()}`;
  const down = await run(['tasks', 'list', '--server', nowhere]);
  assert.equal(down.code, 1);
  assert.ok(
    down.stderr.startsWith(`apctl: PLATFORM_UNREACHABLE: cannot reach the platform at ${nowhere}`),
    down.stderr,
  );
});

test('run for an offline agent says it is waiting, then exits 1 when the task expires', async () => {
  const gone = procs.start([
    'agent',
    '--server',
    `127.0.0.1:${grpcPort}`,
    '--state-dir',
    path.join(work, 'agent-gone'),
    '--labels',
    'suite=cli-gone',
  ]);
  const goneId = await waitFor('second agent online', async () => {
    const r = await run(['agents', 'list', '--label', 'suite=cli-gone', '--status', 'online', '--json']);
    return (JSON.parse(r.stdout) as { agents: { agent_id: string }[] }).agents[0]?.agent_id;
  });
  process.kill(gone.pid, 'SIGKILL');
  await waitFor('second agent offline', async () => {
    const r = await run(['agents', 'get', goneId, '--json']);
    return (JSON.parse(r.stdout) as { status: string }).status === 'offline';
  });
  const { code, stdout, stderr } = await run([
    'run',
    '--agent',
    goneId,
    '--delivery-timeout',
    '5',
    '--',
    'echo never',
  ]);
  assert.equal(stdout, '');
  assert.match(stderr, new RegExp(`^apctl: task \\S+ is waiting for agent ${goneId} \\(offline\\)`, 'm'));
  assert.match(stderr, /^apctl: task \S+ expired/m);
  assert.equal(code, 1);
});

test('over HTTPS, apctl trusts the platform CA given with --ca-cert and refuses it otherwise', async () => {
  // A second platform process on the same database, with TLS (its own CA in its data dir).
  const dataDir = path.join(work, 'tls-platform');
  const tlsPort = await freePort();
  procs.start(
    [
      'server',
      '--data-dir',
      dataDir,
      '--grpc-listen',
      `127.0.0.1:${await freePort()}`,
      '--http-listen',
      `127.0.0.1:${tlsPort}`,
    ],
    { DATABASE_URL: db.url, AP_INSECURE: '' },
  );
  const url = `https://127.0.0.1:${tlsPort}`;
  const ca = path.join(dataDir, 'tls', 'ca.crt');
  await waitFor(
    'TLS platform up',
    async () => (await run(['agents', 'list', '--server', url, '--ca-cert', ca])).code === 0,
    30_000,
  );

  const untrusted = await run(['agents', 'list', '--server', url]);
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /^apctl: PLATFORM_UNTRUSTED: .*--ca-cert/);

  // The agent is connected to the other process; the task reaches it through the database,
  // and its output comes back over the TLS event stream.
  const r = await run(['run', '--agent', agentId, '--', 'echo over tls; echo e >&2; exit 4'], {
    env: { APCTL_SERVER: url, APCTL_CA_CERT: ca },
  });
  assert.deepEqual([r.code, r.stdout, r.stderr], [4, 'over tls\n', 'e\n']);
});

test('run survives a platform SIGKILL: it reconnects, misses nothing it already had, repeats nothing', async () => {
  // The script prints its second line only once its agent is connected again, so that
  // the line reaches apctl over its reconnected follow. (Output printed while the agent
  // has no platform is kept and sent later too, docs/decisions/0006; task-faults tests that.)
  const go = path.join(work, 'sigkill-go');
  const r = apctl([
    'run',
    '--agent',
    agentId,
    '--',
    `echo before; while [ ! -e ${go} ]; do sleep 0.05; done; echo after; exit 7`,
  ]);
  await waitFor('first line', async () => r.stdout() === 'before\n');
  const connectedAt = async () =>
    (
      JSON.parse((await run(['agents', 'get', agentId, '--json'])).stdout || '{}') as {
        connected_at?: string;
      }
    ).connected_at;
  const firstSession = await connectedAt();
  process.kill(platform.pid, 'SIGKILL');
  await platform.exited;
  platform = startPlatform();
  await waitFor('platform health after restart', healthy, 30_000);
  await waitFor(
    'the agent connected to the new process',
    async () => {
      const c = await connectedAt().catch(() => undefined);
      return c !== undefined && c !== firstSession;
    },
    30_000,
  );
  writeFileSync(go, '');
  const { code, stdout, stderr } = await r.done;
  assert.equal(stdout, 'before\nafter\n', stderr);
  assert.match(stderr, /log stream interrupted .*reconnecting/);
  assert.equal(code, 7, stderr);
});
