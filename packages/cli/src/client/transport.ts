/**
 * The CLI's HTTP transport: `node:http` / `node:https` with a kept-alive
 * agent, and a small response type of our own.
 *
 * Not the global `fetch`: Node 20 compiles its bundled undici on the first
 * `fetch()` (or the first touch of the `Response`, `Request`, `Headers` or
 * `FormData` globals), about 45 ms of CPU, a third of a short `apctl`
 * command. `node:http` is ~3 ms; `node:https` is loaded only for https URLs.
 * Nothing in the client may touch those globals.
 *
 * What it keeps of fetch: redirects are followed (as fetch does: 303, and
 * 301/302 after a POST, become a GET; the token is not sent to another
 * origin), a connection that cannot be made in 10 s fails, and so does one
 * that is silent for 5 minutes (a log follow gets a ping every 15 s). Every
 * failure below HTTP is a `NetworkError` whose `cause` is the socket's error
 * (`ECONNREFUSED`, a certificate error, ...), before the response and while
 * reading its body alike; an aborted request rejects with the signal's reason.
 */
import http from 'node:http';
import type { Agent, ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';

export interface TransportRequest {
  method: string;
  url: string;
  /** Names in lower case. */
  headers: Record<string, string>;
  body?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface TransportResponse {
  readonly status: number;
  readonly statusText: string;
  /** The URL that answered, after redirects. */
  readonly url: string;
  /** A response header (any case), repeated ones joined with `, `. */
  header(name: string): string | undefined;
  /** The whole body as UTF-8. Read the body once: by `text()` or by `body`. */
  text(): Promise<string>;
  /** The body as it arrives; leaving the loop early closes the connection. */
  readonly body: AsyncIterable<Buffer>;
  /** Discards the body (the connection is not reused). */
  cancel(): void;
}

export type Transport = (req: TransportRequest) => Promise<TransportResponse>;

export interface TransportOptions {
  /** PEM CA certificates to trust for https URLs instead of the system's. */
  ca?: string | Buffer | undefined;
  /** Default 10 s (fetch's). */
  connectTimeoutMs?: number;
  /** No byte for this long, waiting for the headers or within the body, fails the request. Default 5 min (fetch's). */
  idleTimeoutMs?: number;
}

/** A failure below HTTP: `cause` is the socket's error. */
export class NetworkError extends Error {
  override name = 'NetworkError';
}

const MAX_REDIRECTS = 20;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return Object.assign(new Error('This operation was aborted', { cause: reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}

function timeoutError(what: string, ms: number): Error {
  return Object.assign(new Error(`${what} timed out after ${ms / 1000} s`), { code: 'ETIMEDOUT' });
}

export function createTransport(options: TransportOptions = {}): Transport {
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
  const httpAgent = new http.Agent({ keepAlive: true });
  let https: Promise<{ request: typeof http.request; agent: Agent }> | undefined;
  const loadHttps = () =>
    (https ??= import('node:https').then((m) => ({
      request: m.request,
      agent: new m.Agent({ keepAlive: true, ...(options.ca !== undefined ? { ca: options.ca } : {}) }),
    })));

  /** One request, no redirects. */
  async function exchange(req: TransportRequest, url: URL): Promise<TransportResponse> {
    const { signal } = req;
    if (signal?.aborted) throw abortReason(signal);
    const { request, agent } =
      url.protocol === 'https:'
        ? await loadHttps()
        : url.protocol === 'http:'
          ? { request: http.request, agent: httpAgent }
          : { request: undefined, agent: undefined };
    if (!request) throw new NetworkError(`cannot fetch ${url.protocol} URLs`);
    if (signal?.aborted) throw abortReason(signal);

    return new Promise<TransportResponse>((resolve, reject) => {
      const headers: OutgoingHttpHeaders = { ...req.headers };
      if (req.body !== undefined) headers['content-length'] = Buffer.byteLength(req.body);
      let res: IncomingMessage | undefined;
      let connectTimer: NodeJS.Timeout | undefined;
      const r: ClientRequest = request(url, { method: req.method, headers, agent });

      const cleanup = () => {
        clearTimeout(connectTimer);
        signal?.removeEventListener('abort', onAbort);
      };
      // Before the response: reject. After: the body reader sees the error.
      const fail = (err: Error) => {
        if (res) {
          res.destroy(err);
        } else {
          cleanup();
          reject(err);
          r.destroy();
        }
      };
      const onAbort = () => fail(abortReason(signal as AbortSignal));
      signal?.addEventListener('abort', onAbort, { once: true });

      r.on('socket', (socket) => {
        if (!socket.connecting) return;
        connectTimer = setTimeout(
          () =>
            fail(new NetworkError('connect failed', { cause: timeoutError('connect', connectTimeoutMs) })),
          connectTimeoutMs,
        );
        socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () =>
          clearTimeout(connectTimer),
        );
      });
      r.setTimeout(idleTimeoutMs, () =>
        fail(
          new NetworkError(`no data from the platform for ${idleTimeoutMs / 1000} s`, {
            cause: timeoutError('read', idleTimeoutMs),
          }),
        ),
      );
      // Also after the response (a reset socket errors both): the body reader reports it then.
      r.on('error', (err) => {
        if (!res) fail(new NetworkError('request failed', { cause: err }));
      });
      r.on('response', (m) => {
        res = m;
        clearTimeout(connectTimer);
        // Errors surface to whoever reads the body; without a reader they must not crash us.
        m.on('error', () => undefined);
        m.once('close', cleanup);
        const empty = req.method === 'HEAD' || m.statusCode === 204 || m.statusCode === 304;
        if (empty) m.resume();
        resolve(respond(m, url, empty, signal));
      });
      r.end(req.body);
    });
  }

  return async (req) => {
    let url = new URL(req.url);
    let current = req;
    for (let hops = 0; ; hops++) {
      const res = await exchange(current, url);
      const location = REDIRECTS.has(res.status) ? res.header('location') : undefined;
      if (location === undefined) return res;
      res.cancel();
      if (hops >= MAX_REDIRECTS) throw new NetworkError('redirect count exceeded');
      let next: URL;
      try {
        next = new URL(location, url);
      } catch (err) {
        throw new NetworkError(`bad redirect location ${JSON.stringify(location)}`, { cause: err });
      }
      const headers = { ...current.headers };
      let { method, body } = current;
      if (
        (res.status === 303 && method !== 'HEAD') ||
        ((res.status === 301 || res.status === 302) && method === 'POST')
      ) {
        method = 'GET';
        body = undefined;
        delete headers['content-type'];
      }
      if (next.origin !== url.origin) delete headers.authorization;
      current = { ...current, method, headers, body };
      url = next;
    }
  };
}

function respond(
  m: IncomingMessage,
  url: URL,
  empty: boolean,
  signal: AbortSignal | undefined,
): TransportResponse {
  async function* chunks(): AsyncGenerator<Buffer> {
    if (empty) return;
    try {
      for await (const chunk of m) yield chunk as Buffer;
    } catch (err) {
      // Our own (timeout) or the abort reason, as is; the socket's, wrapped.
      if (err instanceof NetworkError || signal?.aborted) throw err;
      const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
      const why = typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
      throw new NetworkError(`the connection broke mid-response (${why})`, { cause: err });
    }
  }
  const body: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: chunks };
  return {
    status: m.statusCode ?? 0,
    statusText: m.statusMessage ?? '',
    url: url.toString(),
    header(name) {
      const v = m.headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(', ') : v;
    },
    async text() {
      const parts: Buffer[] = [];
      for await (const chunk of body) parts.push(chunk);
      return new TextDecoder().decode(Buffer.concat(parts));
    },
    body,
    cancel() {
      if (!m.complete) m.destroy();
      else m.resume();
    },
  };
}
