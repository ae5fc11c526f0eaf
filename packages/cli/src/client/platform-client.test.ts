import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, CliError, describeError } from '../errors.js';
import { createPlatformClient } from './platform-client.js';

interface Seen {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** A fetch that records the request and answers with `answer()`. */
function fakeFetch(answer: () => Response | Promise<Response>): { fetch: typeof fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  const f = (async (input: string | URL | Request, init?: RequestInit) => {
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
    seen.push({
      url: input instanceof Request ? input.url : input.toString(),
      method: init?.method ?? 'GET',
      headers,
      body: typeof init?.body === 'string' ? init.body : undefined,
    });
    return answer();
  }) as typeof fetch;
  return { fetch: f, seen };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

test('requests carry the token, the idempotency key and a JSON body; the raw text is kept for --json', async () => {
  const raw = '{"task_id":"t1","status":"pending"}';
  const { fetch, seen } = fakeFetch(() => new Response(raw, { status: 201 }));
  const client = createPlatformClient({ server: 'http://p:1/', token: 'apt_x', fetch });
  const r = await client.createTask({ agent_id: 'a', type: 'shell', script: 'true' }, 'key-1');
  assert.equal(r.raw, raw);
  assert.equal(r.data.task_id, 't1');
  assert.equal(seen[0]?.url, 'http://p:1/api/v1/tasks');
  assert.equal(seen[0]?.method, 'POST');
  assert.equal(seen[0]?.headers.authorization, 'Bearer apt_x');
  assert.equal(seen[0]?.headers['idempotency-key'], 'key-1');
  assert.equal(seen[0]?.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(seen[0]?.body ?? ''), { agent_id: 'a', type: 'shell', script: 'true' });
});

test('query parameters are encoded and repeated labels become repeated parameters', async () => {
  const { fetch, seen } = fakeFetch(() => json(200, { agents: [], next_cursor: null }));
  const client = createPlatformClient({ server: 'http://p:1', fetch });
  await client.listAgents({ status: 'online', label: ['role=web', 'env=prod & test'] });
  const u = new URL(seen[0]?.url ?? '');
  assert.equal(u.pathname, '/api/v1/agents');
  assert.deepEqual(u.searchParams.getAll('label'), ['role=web', 'env=prod & test']);
  assert.equal(u.searchParams.get('status'), 'online');
  assert.equal(u.searchParams.has('limit'), false, 'unset filters are not sent');
  await client.getTask('a/b');
  assert.equal(new URL(seen[1]?.url ?? '').pathname, '/api/v1/tasks/a%2Fb');
});

test('an error envelope becomes an ApiError with the platform’s code', async () => {
  const { fetch } = fakeFetch(() =>
    json(404, { error: { code: 'AGENT_NOT_FOUND', message: 'agent x not found' } }),
  );
  const client = createPlatformClient({ server: 'http://p:1', fetch });
  const err = await client.getAgent('x').catch((e: unknown) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.code, 'AGENT_NOT_FOUND');
  assert.equal(err.httpStatus, 404);
  assert.equal(err.retryable, false);
  assert.deepEqual(describeError(err), { line: 'apctl: AGENT_NOT_FOUND: agent x not found', exitCode: 1 });
});

test('an HTTP error without the envelope is HTTP_<status>, and a 5xx is retryable', async () => {
  const { fetch } = fakeFetch(() => new Response('<html>Bad Gateway</html>', { status: 502 }));
  const err = await createPlatformClient({ server: 'http://p:1', fetch })
    .listTasks({})
    .catch((e: unknown) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.code, 'HTTP_502');
  assert.equal(err.retryable, true);
});

test('a refused connection names the URL; an untrusted certificate points at --ca-cert', async () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  const { fetch } = fakeFetch(() => {
    throw new TypeError('fetch failed', { cause: refused });
  });
  const err = await createPlatformClient({ server: 'http://127.0.0.1:1', fetch })
    .listTasks({})
    .catch((e: unknown) => e);
  assert.ok(err instanceof CliError);
  assert.equal(err.code, 'PLATFORM_UNREACHABLE');
  assert.match(err.message, /^cannot reach the platform at http:\/\/127\.0\.0\.1:1 \(connect ECONNREFUSED/);

  const selfSigned = Object.assign(new Error('self-signed certificate in certificate chain'), {
    code: 'SELF_SIGNED_CERT_IN_CHAIN',
  });
  const tls = fakeFetch(() => {
    throw new TypeError('fetch failed', { cause: selfSigned });
  });
  const err2 = await createPlatformClient({ server: 'https://p:1', fetch: tls.fetch })
    .listTasks({})
    .catch((e: unknown) => e);
  assert.ok(err2 instanceof CliError);
  assert.equal(err2.code, 'PLATFORM_UNTRUSTED');
  assert.match(err2.message, /--ca-cert/);
});

test('a 200 that is not JSON is BAD_RESPONSE, and log follow insists on an event stream', async () => {
  const { fetch } = fakeFetch(
    () => new Response('not json', { status: 200, headers: { 'content-type': 'text/plain' } }),
  );
  const client = createPlatformClient({ server: 'http://p:1', fetch });
  const err = await client.getTask('t').catch((e: unknown) => e);
  assert.ok(err instanceof CliError && err.code === 'BAD_RESPONSE');
  const err2 = await client.openLogStream('t', 0).catch((e: unknown) => e);
  assert.ok(err2 instanceof CliError && err2.code === 'BAD_RESPONSE');
});
