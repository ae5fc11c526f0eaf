/**
 * The platform's REST API over our own `node:http` transport (not `fetch`:
 * see transport.ts). Every method returns the parsed body and the raw text
 * (what `--json` prints); every failure is an `ApiError` (the platform's
 * error envelope) or a `CliError` (`PLATFORM_UNREACHABLE`,
 * `PLATFORM_UNTRUSTED`, `BAD_RESPONSE`); an aborted request rejects with the
 * signal's reason.
 */
import { ApiError, CliError, usageError } from '../errors.js';
import { createTransport, type Transport, type TransportResponse } from './transport.js';
import type {
  AgentJson,
  AgentListJson,
  CreateTaskBody,
  TaskJson,
  TaskListJson,
  TaskLogsJson,
} from './types.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

export interface PlatformClientOptions {
  /** Base URL of the REST API, e.g. `http://127.0.0.1:8080`. */
  server: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string | undefined;
  /** PEM CA certificates to trust for an https server (`--ca-cert`). */
  ca?: string | Buffer | undefined;
  /** Injected in unit tests; `createTransport({ ca })` otherwise. */
  transport?: Transport | undefined;
}

export interface ApiResult<T> {
  data: T;
  /** The response body as received, for `--json`. */
  raw: string;
}

type Query = Record<string, string | number | string[] | undefined>;

export interface PlatformClient {
  readonly server: string;
  createTask(body: CreateTaskBody, idempotencyKey?: string): Promise<ApiResult<TaskJson>>;
  /**
   * Creates and follows in one call (`POST /api/v1/tasks?follow=1`): an event stream
   * of `task` (the task), then `log`... and `end`. A platform without it answers the
   * task as JSON: `{ task }`, to be followed with openLogStream.
   */
  createTaskFollow(
    body: CreateTaskBody,
    idempotencyKey?: string,
  ): Promise<{ stream: AsyncIterable<Uint8Array> } | { task: TaskJson }>;
  /**
   * Creates one task per agent and follows them all in one call
   * (`POST /api/v1/tasks/batch?follow=1`): an event stream of `tasks`, then `log`
   * and `end` events with task ids, then `done`. A platform without it answers JSON.
   */
  createBatchFollow(
    body: Record<string, unknown>,
    idempotencyKey?: string,
  ): Promise<{ stream: AsyncIterable<Uint8Array> } | { json: unknown }>;
  getTask(taskId: string): Promise<ApiResult<TaskJson>>;
  listTasks(q: {
    agent_id?: string;
    status?: string;
    limit?: number;
    cursor?: string;
  }): Promise<ApiResult<TaskListJson>>;
  cancelTask(taskId: string, reason?: string): Promise<ApiResult<TaskJson>>;
  getLogs(taskId: string, sinceSeq: number, limit?: number): Promise<ApiResult<TaskLogsJson>>;
  /** Opens `logs?follow=1`: the caller reads the event stream (see `readSse`). */
  openLogStream(taskId: string, sinceSeq: number, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
  listAgents(q: {
    status?: string;
    label?: string[];
    limit?: number;
    cursor?: string;
  }): Promise<ApiResult<AgentListJson>>;
  getAgent(agentId: string): Promise<ApiResult<AgentJson>>;
  /** Any other JSON route (tokens, audit, ...), with the same auth and errors. */
  call<T>(
    method: string,
    path: string,
    body?: unknown,
    query?: Query,
    headers?: Record<string, string>,
  ): Promise<ApiResult<T>>;
}

/** `--server`, else `APCTL_SERVER`, else the default; checked to be an http(s) URL. */
export function resolveServer(flag: string | undefined, env = process.env): string {
  const raw = flag ?? env.APCTL_SERVER ?? DEFAULT_SERVER;
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    throw usageError(`--server must be a URL like ${DEFAULT_SERVER}, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usageError(`--server must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  }
  return url.toString().replace(/\/+$/, '');
}

/** What went wrong below HTTP, from the transport's `NetworkError` (its `cause` is the socket's error). */
function networkReason(err: unknown): string {
  let cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  // Every address of a name failed (IPv4 and IPv6 of localhost, say): the first says why.
  if (cause instanceof AggregateError && !cause.message && cause.errors[0] instanceof Error) {
    cause = cause.errors[0];
  }
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' && !cause.message.includes(code)
      ? `${code}: ${cause.message}`
      : cause.message;
  }
  return String(cause);
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');
}

export function createPlatformClient(options: PlatformClientOptions): PlatformClient {
  const server = options.server.replace(/\/+$/, '');
  const transport = options.transport ?? createTransport({ ca: options.ca });

  function url(path: string, query: Query = {}): string {
    const u = new URL(server + path);
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined) continue;
      for (const item of Array.isArray(v) ? v : [v]) u.searchParams.append(k, String(item));
    }
    return u.toString();
  }

  async function send(
    method: string,
    path: string,
    init: { query?: Query; body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<TransportResponse> {
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'apctl' };
    for (const [k, v] of Object.entries(init.headers ?? {})) headers[k.toLowerCase()] = v;
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let res: TransportResponse;
    try {
      res = await transport({
        method,
        url: url(path, init.query),
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: init.signal,
      });
    } catch (err) {
      if (isAbort(err) || init.signal?.aborted) throw err;
      const reason = networkReason(err);
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(reason)) {
        throw new CliError(
          'PLATFORM_UNTRUSTED',
          `the certificate of ${server} is not trusted (${reason}); pass --ca-cert with the platform's CA ` +
            '(tls/ca.crt in its data directory) or set APCTL_CA_CERT',
          { cause: err },
        );
      }
      throw new CliError(
        'PLATFORM_UNREACHABLE',
        `cannot reach the platform at ${server} (${reason}); ` +
          (server.startsWith('http:') && /ECONNRESET/.test(reason)
            ? 'if it serves HTTPS (the default), use an https:// URL with --ca-cert'
            : 'set --server or APCTL_SERVER'),
        { cause: err },
      );
    }
    if (res.status < 200 || res.status > 299) throw await errorFrom(res);
    return res;
  }

  async function errorFrom(res: TransportResponse): Promise<ApiError> {
    const text = await res.text().catch(() => '');
    try {
      const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      if (typeof body.error?.code === 'string') {
        const message = typeof body.error.message === 'string' ? body.error.message : '';
        return new ApiError(body.error.code, message, res.status);
      }
    } catch {
      // not the envelope: a proxy's error page, say
    }
    const snippet = text.trim().slice(0, 200) || res.statusText;
    return new ApiError(`HTTP_${res.status}`, `${snippet} (from ${server})`, res.status);
  }

  /** The whole body; a connection that breaks while it is read is PLATFORM_UNREACHABLE. */
  async function readText(res: TransportResponse): Promise<string> {
    try {
      return await res.text();
    } catch (err) {
      throw new CliError(
        'PLATFORM_UNREACHABLE',
        `connection to ${server} broke mid-response (${networkReason(err)})`,
        { cause: err },
      );
    }
  }

  async function json<T>(
    method: string,
    path: string,
    init?: Parameters<typeof send>[2],
  ): Promise<ApiResult<T>> {
    const res = await send(method, path, init);
    const raw = await readText(res);
    try {
      return { data: JSON.parse(raw) as T, raw };
    } catch {
      throw new CliError(
        'BAD_RESPONSE',
        `${method} ${path} answered ${res.status} with a body that is not JSON`,
      );
    }
  }

  const id = (s: string) => encodeURIComponent(s);

  /** POST with follow=1: the event stream, or (a platform without follow) the JSON answer. */
  async function postFollow(
    path: string,
    body: unknown,
    idempotencyKey: string | undefined,
  ): Promise<{ stream: AsyncIterable<Uint8Array> } | { json: unknown }> {
    const res = await send('POST', path, {
      query: { follow: 1 },
      body,
      headers: {
        accept: 'text/event-stream, application/json',
        ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
      },
    });
    if ((res.header('content-type') ?? '').startsWith('text/event-stream')) return { stream: res.body };
    const raw = await readText(res);
    try {
      return { json: JSON.parse(raw) as unknown };
    } catch {
      throw new CliError('BAD_RESPONSE', `POST ${path} answered ${res.status} with neither JSON nor events`);
    }
  }

  return {
    server,
    createTask: (body, idempotencyKey) =>
      json('POST', '/api/v1/tasks', {
        body,
        headers: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
      }),
    async createBatchFollow(body, idempotencyKey) {
      const r = await postFollow('/api/v1/tasks/batch', body, idempotencyKey);
      return 'stream' in r ? r : { json: r.json };
    },
    async createTaskFollow(body, idempotencyKey) {
      const r = await postFollow('/api/v1/tasks', body, idempotencyKey);
      return 'stream' in r ? r : { task: r.json as TaskJson };
    },
    getTask: (taskId) => json('GET', `/api/v1/tasks/${id(taskId)}`),
    listTasks: (q) => json('GET', '/api/v1/tasks', { query: q }),
    cancelTask: (taskId, reason) =>
      json('POST', `/api/v1/tasks/${id(taskId)}/cancel`, { body: reason === undefined ? {} : { reason } }),
    getLogs: (taskId, sinceSeq, limit) =>
      json('GET', `/api/v1/tasks/${id(taskId)}/logs`, { query: { since_seq: sinceSeq, limit } }),
    async openLogStream(taskId, sinceSeq, signal) {
      const res = await send('GET', `/api/v1/tasks/${id(taskId)}/logs`, {
        query: { follow: 1, since_seq: sinceSeq },
        headers: { accept: 'text/event-stream' },
        signal,
      });
      const type = res.header('content-type') ?? '';
      if (!type.startsWith('text/event-stream')) {
        res.cancel();
        throw new CliError(
          'BAD_RESPONSE',
          `log follow answered ${type || 'no content type'}, not an event stream`,
        );
      }
      return res.body;
    },
    listAgents: (q) => json('GET', '/api/v1/agents', { query: q }),
    getAgent: (agentId) => json('GET', `/api/v1/agents/${id(agentId)}`),
    call: (method, path, body, query, headers) => json(method, path, { body, query, headers: headers ?? {} }),
  };
}
