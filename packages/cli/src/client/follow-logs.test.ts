import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, CliError } from '../errors.js';
import { followTaskLogs } from './follow-logs.js';
import type { PlatformClient } from './platform-client.js';
import type { LogEntry } from './types.js';

const log = (seq: number, stream: 'stdout' | 'stderr' = 'stdout') =>
  `event: log\ndata: ${JSON.stringify({ seq, stream, output: `line ${seq}\n`, timestamp: '2026-01-01T00:00:00Z' })}\n\n`;
const end = `event: end\ndata: {"task_id":"t","status":"succeeded","exit_code":0,"error":null}\n\n`;

function body(text: string, breakAfter = false): ReadableStream<Uint8Array> {
  let pulls = 0;
  return new ReadableStream({
    // Pull-based so the text is read before the error: `error()` drops queued chunks.
    pull(c) {
      if (pulls++ === 0) c.enqueue(new TextEncoder().encode(text));
      else if (breakAfter) c.error(new TypeError('terminated'));
      else c.close();
    },
  });
}

/** A client whose log stream answers from `script`, one entry per connection. */
function fakeClient(script: (() => ReadableStream<Uint8Array>)[]): {
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
