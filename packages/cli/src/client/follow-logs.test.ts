import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, CliError } from '../errors.js';
import { followTaskLogs } from './follow-logs.js';
import { createPlatformClient, type PlatformClient } from './platform-client.js';
import { startServer } from './test-server.js';
import { NetworkError } from './transport.js';
import type { LogEntry } from './types.js';

const log = (seq: number, stream: 'stdout' | 'stderr' = 'stdout') =>
  `event: log\ndata: ${JSON.stringify({ seq, stream, output: `line ${seq}\n`, timestamp: '2026-01-01T00:00:00Z' })}\n\n`;
const end = `event: end\ndata: {"task_id":"t","status":"succeeded","exit_code":0,"error":null}\n\n`;

/** A log stream body as the transport delivers it; `breakAfter`: the connection then breaks, as it reports that. */
async function* body(text: string, breakAfter = false): AsyncGenerator<Uint8Array> {
  yield new TextEncoder().encode(text);
  if (breakAfter) {
    const reset = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    throw new NetworkError('the connection broke mid-response', { cause: reset });
  }
}

/** A client whose log stream answers from `script`, one entry per connection. */
function fakeClient(script: (() => AsyncIterable<Uint8Array>)[]): {
  client: PlatformClient;
  since: number[];
} {
  const since: number[] = [];
  const client = {
    openLogStream: async (_id: string, sinceSeq: number) => {
      since.push(sinceSeq);
      const next = script.shift();
      if (!next) throw new Error('no more connections scripted');
      return next();
    },
  } as unknown as PlatformClient;
  return { client, since };
}

test('a stream that drops is reopened from the last seq, and replayed chunks are not written twice', async () => {
  const { client, since } = fakeClient([
    () => body(log(1) + log(2) + 'event: log\ndata: {"seq":3', true),
    () => {
      throw new CliError('PLATFORM_UNREACHABLE', 'refused');
    },
    // The platform replays from since_seq; a chunk it repeats is skipped.
    () => body(': ping\n\n' + log(2) + log(3, 'stderr') + log(4)),
    () => body(log(5) + end),
  ]);
  const got: LogEntry[] = [];
  const attempts: number[] = [];
  const result = await followTaskLogs({
    client,
    taskId: 't',
    onLog: (l) => void got.push(l),
    onReconnect: (n) => attempts.push(n),
    sleep: async () => undefined,
  });
  assert.deepEqual(
    got.map((l) => [l.seq, l.stream]),
    [
      [1, 'stdout'],
      [2, 'stdout'],
      [3, 'stderr'],
      [4, 'stdout'],
      [5, 'stdout'],
    ],
  );
  assert.deepEqual(since, [0, 2, 2, 4]);
  // Attempts count up while failing and start over once events flow again.
  assert.deepEqual(attempts, [1, 2, 1]);
  assert.equal(result.status, 'succeeded');
});

test('a 404 is not retried', async () => {
  const { client, since } = fakeClient([
    () => {
      throw new ApiError('TASK_NOT_FOUND', 'task t not found', 404);
    },
  ]);
  await assert.rejects(
    followTaskLogs({ client, taskId: 't', onLog: () => undefined, sleep: async () => undefined }),
    (err: unknown) => err instanceof ApiError && err.code === 'TASK_NOT_FOUND',
  );
  assert.deepEqual(since, [0]);
});

test('a 503 is retried', async () => {
  const { client } = fakeClient([
    () => {
      throw new ApiError('SHUTTING_DOWN', 'stopping', 503);
    },
    () => body(end),
  ]);
  const r = await followTaskLogs({
    client,
    taskId: 't',
    onLog: () => undefined,
    sleep: async () => undefined,
  });
  assert.equal(r.exit_code, 0);
});

test('seqs the platform never sends are reported as a gap', async () => {
  const { client } = fakeClient([() => body(log(1) + log(2) + log(5) + end)]);
  const gaps: [number, number][] = [];
  await followTaskLogs({
    client,
    taskId: 't',
    onLog: () => undefined,
    onGap: (from, to) => gaps.push([from, to]),
    sleep: async () => undefined,
  });
  assert.deepEqual(gaps, [[3, 4]]);
});

test('a failure to write a log (EPIPE on stdout) ends the follow instead of reconnecting', async () => {
  const { client, since } = fakeClient([() => body(log(1) + log(2) + end), () => body(end)]);
  const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
  await assert.rejects(
    followTaskLogs({
      client,
      taskId: 't',
      onLog: () => {
        throw epipe;
      },
      sleep: async () => undefined,
    }),
    (err: unknown) => err === epipe,
  );
  assert.deepEqual(since, [0]);
});

test('a stream that connects and drops without an event keeps backing off', async () => {
  const { client } = fakeClient([() => body(''), () => body(''), () => body(''), () => body(end)]);
  const attempts: number[] = [];
  await followTaskLogs({
    client,
    taskId: 't',
    onLog: () => undefined,
    onReconnect: (n) => attempts.push(n),
    sleep: async () => undefined,
  });
  assert.deepEqual(attempts, [1, 2, 3]);
});

test('over a real connection: a follow whose connection drops mid-event reconnects from the last seq', async (t) => {
  let connections = 0;
  const srv = await startServer((_req, res) => {
    connections += 1;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (connections === 1) {
      // Two whole events and half of the third, then the platform dies.
      res.write(log(1) + log(2) + 'event: log\ndata: {"seq":3');
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    // The replay from since_seq=2, with a repeat of 2 that must not be written twice.
    res.end(log(2) + log(3) + log(4) + end);
  });
  t.after(() => srv.close());
  const got: number[] = [];
  const reasons: unknown[] = [];
  const result = await followTaskLogs({
    client: createPlatformClient({ server: srv.url }),
    taskId: 't',
    onLog: (l) => void got.push(l.seq),
    onReconnect: (_n, reason) => reasons.push(reason),
    sleep: async () => undefined,
  });
  assert.deepEqual(got, [1, 2, 3, 4]);
  assert.deepEqual(
    srv.seen.map((r) => new URL(r.url, 'http://x').searchParams.get('since_seq')),
    ['0', '2'],
  );
  assert.equal(reasons.length, 1);
  assert.ok(reasons[0] instanceof NetworkError, String(reasons[0]));
  assert.equal(result.status, 'succeeded');
});

test('an aborted follow stops without reconnecting', async (t) => {
  const srv = await startServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(log(1));
  });
  t.after(() => srv.close());
  const ac = new AbortController();
  const reconnects: number[] = [];
  await assert.rejects(
    followTaskLogs({
      client: createPlatformClient({ server: srv.url }),
      taskId: 't',
      onLog: () => ac.abort(),
      onReconnect: (n) => reconnects.push(n),
      signal: ac.signal,
    }),
    { name: 'AbortError' },
  );
  assert.deepEqual(reconnects, []);
  assert.equal(srv.seen.length, 1);
});

test('an already open stream (create-and-follow) is read first; a drop then reconnects from its last seq', async () => {
  const { client, since } = fakeClient([() => body(log(3) + end)]);
  const { readSse } = await import('./sse.js');
  const got: number[] = [];
  const result = await followTaskLogs({
    client,
    taskId: 't',
    opened: readSse(body(log(1) + log(2), true)),
    onLog: (l) => void got.push(l.seq),
    sleep: async () => undefined,
  });
  assert.deepEqual(got, [1, 2, 3]);
  assert.deepEqual(since, [2], 'one GET, from the last seq the open stream gave');
  assert.equal(result.status, 'succeeded');
});
