import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closedPort, reply, startServer } from './test-server.js';
import { NetworkError, createTransport } from './transport.js';

const get = (url: string, signal?: AbortSignal) => ({ method: 'GET', url, headers: {}, signal });

test('status, headers and a UTF-8 body; requests share one kept-alive connection', async (t) => {
  const srv = await startServer((req, res) => {
    res.setHeader('x-seen', [req.method, req.headers['content-length'] ?? '-']);
    reply(res, req.url === '/missing' ? 404 : 201, { body: req.body, text: 'héllo ✓' });
  });
  t.after(() => srv.close());
  const transport = createTransport();
  const a = await transport({
    method: 'POST',
    url: `${srv.url}/x`,
    headers: { 'content-type': 'application/json' },
    body: '{"é":1}',
  });
  assert.equal(a.status, 201);
  assert.equal(a.header('Content-Type'), 'application/json');
  assert.equal(a.header('x-seen'), 'POST, 8');
  assert.equal(a.header('x-none'), undefined);
  assert.deepEqual(JSON.parse(await a.text()), { body: '{"é":1}', text: 'héllo ✓' });
  const b = await transport(get(`${srv.url}/missing`));
  assert.equal(b.status, 404);
  assert.equal(b.statusText, 'Not Found');
  await b.text();
  assert.equal(srv.seen.length, 2);
  assert.equal(srv.seen[0]?.remotePort, srv.seen[1]?.remotePort, 'the second request reused the connection');
});

test('a refused connection is a NetworkError whose cause is the socket error', async () => {
  const port = await closedPort();
  const err = await createTransport()(get(`http://127.0.0.1:${port}/`)).catch((e: unknown) => e);
  assert.ok(err instanceof NetworkError);
  assert.equal((err.cause as { code?: string }).code, 'ECONNREFUSED');
});

test('a connection that breaks mid-body fails the body read with a NetworkError', async (t) => {
  const srv = await startServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('part one\n');
    setTimeout(() => res.socket?.destroy(), 50);
  });
  t.after(() => srv.close());
  const res = await createTransport()(get(srv.url));
  const got: string[] = [];
  const err = await (async () => {
    for await (const chunk of res.body) got.push(chunk.toString());
  })().catch((e: unknown) => e);
  assert.deepEqual(got, ['part one\n']);
  assert.ok(err instanceof NetworkError, String(err));
  assert.equal((err.cause as { code?: string }).code, 'ECONNRESET');
});

test('abort: before the response it rejects with the reason; during the body the read fails', async (t) => {
  const srv = await startServer((req, res) => {
    if (req.url === '/never') return;
    res.writeHead(200);
    res.write('first');
  });
  t.after(() => srv.close());
  const transport = createTransport();
  const early = new AbortController();
  const pending = transport(get(`${srv.url}/never`, early.signal));
  setTimeout(() => early.abort(), 50);
  await assert.rejects(pending, (e: unknown) => e instanceof Error && e.name === 'AbortError');
  await assert.rejects(transport(get(srv.url, early.signal)), { name: 'AbortError' }, 'already aborted');

  const late = new AbortController();
  const res = await transport(get(srv.url, late.signal));
  const it = res.body[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done ? undefined : first.value.toString(), 'first');
  late.abort(new Error('stop'));
  await assert.rejects(it.next(), { message: 'stop' });
});

test('leaving the body early closes the connection', async (t) => {
  let closed: Promise<unknown> = Promise.resolve();
  const srv = await startServer((_req, res, raw) => {
    closed = once(raw.socket, 'close');
    res.writeHead(200);
    res.write('a');
  });
  t.after(() => srv.close());
  const res = await createTransport()(get(srv.url));
  for await (const chunk of res.body) {
    assert.equal(chunk.toString(), 'a');
    break;
  }
  await closed;
});

test('a silent server fails the request after the idle timeout', async (t) => {
  const srv = await startServer(() => undefined);
  t.after(() => srv.close());
  const err = await createTransport({ idleTimeoutMs: 100 })(get(srv.url)).catch((e: unknown) => e);
  assert.ok(err instanceof NetworkError);
  assert.equal((err.cause as { code?: string }).code, 'ETIMEDOUT');
});

test('redirects are followed as fetch does; the token does not go to another origin', async (t) => {
  const other = await startServer((req, res) =>
    reply(res, 200, { at: 'other', auth: req.headers.authorization ?? null }),
  );
  t.after(() => other.close());
  const srv = await startServer((req, res) => {
    const to = (status: number, location: string) => {
      res.writeHead(status, { location });
      res.end();
    };
    if (req.url === '/see-other') return to(303, '/target');
    if (req.url === '/temporary') return to(307, '/target');
    if (req.url === '/away') return to(302, `${other.url}/there`);
    if (req.url === '/loop') return to(301, '/loop');
    reply(res, 200, { method: req.method, body: req.body, auth: req.headers.authorization ?? null });
  });
  t.after(() => srv.close());
  const transport = createTransport();
  const post = (path: string) =>
    transport({
      method: 'POST',
      url: srv.url + path,
      headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
      body: '{"a":1}',
    }).then(async (r) => ({ url: r.url, body: JSON.parse(await r.text()) as unknown }));

  assert.deepEqual(await post('/see-other'), {
    url: `${srv.url}/target`,
    body: { method: 'GET', body: '', auth: 'Bearer t' },
  });
  assert.deepEqual((await post('/temporary')).body, { method: 'POST', body: '{"a":1}', auth: 'Bearer t' });
  assert.deepEqual((await post('/away')).body, { at: 'other', auth: null });
  await assert.rejects(
    post('/loop'),
    (e: unknown) => e instanceof NetworkError && /redirect/.test(e.message),
  );
});
