/**
 * Follows a task's logs over SSE until its `end` event, reconnecting with
 * `since_seq` = the last seq seen whenever the stream drops before the end
 * (platform restart, proxy timeout, network blip). The platform replays from
 * `since_seq`, so no chunk is lost; chunks with a seq already seen are
 * skipped, so none is written twice.
 */
import { CliError, errorText, isRetryable } from '../errors.js';
import type { PlatformClient } from './platform-client.js';
import { readSse, type SseEvent } from './sse.js';
import { NetworkError } from './transport.js';
import type { LogEntry, TaskEnd } from './types.js';

export interface FollowLogsOptions {
  client: PlatformClient;
  taskId: string;
  /** Deliver logs with a seq above this one. Default 0: everything. */
  sinceSeq?: number;
  /** Called once per log, in seq order; awaited (backpressure on stdout). */
  onLog: (log: LogEntry) => void | Promise<void>;
  /**
   * Called when seqs between two delivered logs never arrive (`from`..`to`
   * inclusive): the platform does not have them, e.g. written while it was down.
   */
  onGap?: (from: number, to: number) => void;
  /** Called before each reconnect attempt with the attempt number (1 = first after a drop). */
  onReconnect?: (attempt: number, reason: unknown) => void;
  signal?: AbortSignal;
  /** Delay before reconnect attempt `n` (from 1), in ms. Default 200 ms doubling to 5 s. */
  reconnectDelay?: (attempt: number) => number;
  /** Injected in unit tests. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Events of a stream already open for this task (the rest of a create-and-follow
   * answer), read before any `logs?follow=1` request; a drop reconnects as usual.
   */
  opened?: AsyncIterable<SseEvent>;
}

export const defaultReconnectDelay = (attempt: number): number => Math.min(5000, 200 * 2 ** (attempt - 1));

/** Thrown for a stream that ended without an `end` event: a drop, so retry. */
class StreamDropped extends Error {
  readonly retryable = true;
}

/** Wraps a failure of `onLog` (EPIPE on our stdout, say): the caller's, never retried. */
class ConsumerFailed extends Error {}

function parseJson<T>(data: string, what: string): T {
  try {
    return JSON.parse(data) as T;
  } catch {
    throw new Error(`the platform sent a ${what} event that is not JSON: ${data.slice(0, 200)}`);
  }
}

/** Resolves with the `end` event's data. Rejects on a 4xx (e.g. TASK_NOT_FOUND) or abort. */
export async function followTaskLogs(opts: FollowLogsOptions): Promise<TaskEnd> {
  const delay = opts.reconnectDelay ?? defaultReconnectDelay;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let lastSeq = opts.sinceSeq ?? 0;
  let attempt = 0;
  let opened = opts.opened;
  for (;;) {
    try {
      const events = opened ?? readSse(await opts.client.openLogStream(opts.taskId, lastSeq, opts.signal));
      opened = undefined;
      for await (const ev of events) {
        // Reset on an event, not on connect: a stream that opens and drops at once still backs off.
        attempt = 0;
        if (ev.event === 'log') {
          const log = parseJson<LogEntry>(ev.data, 'log');
          if (log.seq <= lastSeq) continue;
          if (log.seq > lastSeq + 1) opts.onGap?.(lastSeq + 1, log.seq - 1);
          try {
            await opts.onLog(log);
          } catch (err) {
            throw new ConsumerFailed('onLog failed', { cause: err });
          }
          lastSeq = log.seq;
        } else if (ev.event === 'end') {
          return parseJson<TaskEnd>(ev.data, 'end');
        }
      }
      throw new StreamDropped(`log stream ended before the task did (last seq ${lastSeq})`);
    } catch (err) {
      if (err instanceof ConsumerFailed) throw err.cause;
      if (opts.signal?.aborted) throw err;
      // A body that breaks mid-read surfaces as the transport's NetworkError.
      const dropped = err instanceof StreamDropped || isRetryable(err) || isStreamBreak(err);
      if (!dropped) throw err;
      attempt += 1;
      opts.onReconnect?.(attempt, err);
      await sleep(delay(attempt));
    }
  }
}

/** A connection lost while reading a body (or a socket error that escaped the transport's wrapping). */
function isStreamBreak(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'AbortError') return false;
  if (err instanceof NetworkError) return true;
  const code = (err as { code?: unknown }).code ?? (err.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('ECONN') || code === 'EPIPE' || code === 'ETIMEDOUT');
}

/**
 * Makes a create-and-follow call (`open`, which sends the same Idempotency-Key each
 * time) and reads its first event, which names what was created. A call that fails
 * below HTTP, or whose answer breaks before that event, is made again (3 attempts):
 * at most one task is created either way. Returns the first event's value and the
 * events after it; a platform without follow=1 answers JSON (`answer`), and then
 * there are no events.
 */
export async function openFollowed<T>(
  open: () => Promise<{ stream: AsyncIterable<Uint8Array> } | { answer: T }>,
  first: { event: string; parse: (data: string) => T | undefined },
): Promise<{ value: T; events?: AsyncGenerator<SseEvent> }> {
  return retryUnreachable(async () => {
    const r = await open();
    if ('answer' in r) return { value: r.answer };
    const events = readSse(r.stream);
    let head: IteratorResult<SseEvent>;
    try {
      head = await events.next();
    } catch (err) {
      throw new CliError('PLATFORM_UNREACHABLE', `the answer broke off: ${errorText(err)}`, { cause: err });
    }
    if (head.done)
      throw new CliError('PLATFORM_UNREACHABLE', `the answer ended before its \`${first.event}\` event`);
    let value: T | undefined;
    try {
      value = head.value.event === first.event ? first.parse(head.value.data) : undefined;
    } catch {
      value = undefined;
    }
    if (value === undefined)
      throw new CliError(
        'BAD_RESPONSE',
        `the platform's first event was ${head.value.event}, not a valid ${first.event}`,
      );
    return { value, events };
  });
}

/**
 * Runs a request that sends an Idempotency-Key again when it failed below HTTP
 * (PLATFORM_UNREACHABLE: it may or may not have reached the platform): 3
 * attempts, 300 and 600 ms apart. Any other error is thrown at once.
 */
export async function retryUnreachable<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof CliError && err.code === 'PLATFORM_UNREACHABLE') || attempt >= 3) throw err;
      await new Promise((r) => setTimeout(r, 300 * attempt));
    }
  }
}
