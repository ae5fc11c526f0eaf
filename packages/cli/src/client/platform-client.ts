/**
 * The platform's REST API over global `fetch`. Every method returns the
 * parsed body and the raw text (what `--json` prints); every failure is an
 * `ApiError` (the platform's error envelope) or a `CliError`
 * (`PLATFORM_UNREACHABLE`, `BAD_RESPONSE`).
 */
import { ApiError, CliError, usageError } from '../errors.js';
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
  /** Injected in unit tests; the global `fetch` otherwise. */
  fetch?: typeof fetch;
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
  openLogStream(taskId: string, sinceSeq: number, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>>;
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

/** What went wrong below HTTP, from undici's `TypeError('fetch failed', {cause})`. */
function networkReason(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
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
  const doFetch = options.fetch ?? fetch;

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
  ): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await doFetch(url(path, init.query), {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: init.signal,
      });
    } catch (err) {
      if (isAbort(err)) throw err;
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
          (server.startsWith('http:') && /other side closed|ECONNRESET/.test(reason)
            ? 'if it serves HTTPS (the default), use an https:// URL with --ca-cert'
            : 'set --server or APCTL_SERVER'),
        { cause: err },
      );
    }
    if (!res.ok) throw await errorFrom(res);
    return res;
  }

  async function errorFrom(res: Response): Promise<ApiError> {
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

  async function json<T>(
    method: string,
    path: string,
    init?: Parameters<typeof send>[2],
  ): Promise<ApiResult<T>> {
    const res = await send(method, path, init);
    let raw: string;
    try {
      raw = await res.text();
    } catch (err) {
      throw new CliError(
        'PLATFORM_UNREACHABLE',
        `connection to ${server} broke mid-response (${networkReason(err)})`,
        { cause: err },
      );
    }
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

  return {
    server,
    createTask: (body, idempotencyKey) =>
      json('POST', '/api/v1/tasks', {
        body,
        headers: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
      }),
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
      const type = res.headers.get('content-type') ?? '';
      if (!type.startsWith('text/event-stream') || !res.body) {
        await res.body?.cancel();
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
