/**
 * A `fetch` for an HTTPS platform whose certificate comes from its own CA
 * (`<data-dir>/tls/ca.crt`). Node 20's global fetch cannot be given a CA
 * without the undici package (its `Agent` is not exposed), and
 * NODE_EXTRA_CA_CERTS is read only at process start, so requests to https
 * URLs go through `node:https` with `ca` and come back as a WHATWG Response;
 * the rest of the client cannot tell the difference. Plain http URLs still use
 * the global fetch.
 */
import https from 'node:https';
import { Readable } from 'node:stream';

export function createCaFetch(ca: string | Buffer): typeof fetch {
  const agent = new https.Agent({ ca, keepAlive: true });
  return (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.protocol !== 'https:') return fetch(input, init);
    return new Promise<Response>((resolve, reject) => {
      const method = init?.method ?? 'GET';
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
      const req = https.request(url, { method, headers, agent, signal: init?.signal ?? undefined }, (res) => {
        const status = res.statusCode ?? 502;
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v === undefined) continue;
          for (const item of Array.isArray(v) ? v : [v]) h.append(k, item);
        }
        const empty = method === 'HEAD' || status === 204 || status === 304;
        if (empty) res.resume();
        resolve(
          new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
            status,
            statusText: res.statusMessage,
            headers: h,
          }),
        );
      });
      // The shape fetch uses, so callers normalise both transports alike.
      req.on('error', (err) =>
        reject(err.name === 'AbortError' ? err : new TypeError('fetch failed', { cause: err })),
      );
      const body = init?.body;
      if (body === undefined || body === null) req.end();
      else if (typeof body === 'string') req.end(body);
      else reject(new TypeError('createCaFetch sends string bodies only'));
    });
  };
}
