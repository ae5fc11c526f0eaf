import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApiError, CliError, describeError } from '../errors.js';
import { createPlatformClient } from './platform-client.js';
import { readSse } from './sse.js';
import { closedPort, reply, startServer } from './test-server.js';

test('requests carry the token, the idempotency key and a JSON body; the raw text is kept for --json', async (t) => {
  const raw = '{"task_id":"t1","status":"pending"}';
  const srv = await startServer((_req, res) => reply(res, 201, raw));
  t.after(() => srv.close());
  const client = createPlatformClient({ server: `${srv.url}/`, token: 'apt_x' });
  const r = await client.createTask({ agent_id: 'a', type: 'shell', script: 'true' }, 'key-1');
  assert.equal(r.raw, raw);
  assert.equal(r.data.task_id, 't1');
  const seen = srv.seen[0];
  assert.equal(seen?.url, '/api/v1/tasks');
  assert.equal(seen?.method, 'POST');
  assert.equal(seen?.headers.authorization, 'Bearer apt_x');
  assert.equal(seen?.headers['idempotency-key'], 'key-1');
  assert.equal(seen?.headers['content-type'], 'application/json');
  assert.equal(seen?.headers.accept, 'application/json');
  assert.deepEqual(JSON.parse(seen?.body ?? ''), { agent_id: 'a', type: 'shell', script: 'true' });
});

test('query parameters are encoded and repeated labels become repeated parameters', async (t) => {
  const srv = await startServer((_req, res) => reply(res, 200, { agents: [], next_cursor: null }));
  t.after(() => srv.close());
  const client = createPlatformClient({ server: srv.url });
  await client.listAgents({ status: 'online', label: ['role=web', 'env=prod & test'] });
  const u = new URL(srv.seen[0]?.url ?? '', srv.url);
  assert.equal(u.pathname, '/api/v1/agents');
  assert.deepEqual(u.searchParams.getAll('label'), ['role=web', 'env=prod & test']);
  assert.equal(u.searchParams.get('status'), 'online');
  assert.equal(u.searchParams.has('limit'), false, 'unset filters are not sent');
  assert.equal(srv.seen[0]?.headers.authorization, undefined, 'no token, no header');
  await client.getTask('a/b');
  assert.equal(new URL(srv.seen[1]?.url ?? '', srv.url).pathname, '/api/v1/tasks/a%2Fb');
});

test('an error envelope becomes an ApiError with the platform’s code', async (t) => {
  const srv = await startServer((_req, res) =>
    reply(res, 404, { error: { code: 'AGENT_NOT_FOUND', message: 'agent x not found' } }),
  );
  t.after(() => srv.close());
  const err = await createPlatformClient({ server: srv.url })
    .getAgent('x')
    .catch((e: unknown) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.code, 'AGENT_NOT_FOUND');
  assert.equal(err.httpStatus, 404);
  assert.equal(err.retryable, false);
  assert.deepEqual(describeError(err), { line: 'apctl: AGENT_NOT_FOUND: agent x not found', exitCode: 1 });
});

test('an HTTP error without the envelope is HTTP_<status>, and a 5xx is retryable', async (t) => {
  const srv = await startServer((req, res) =>
    req.url.includes('empty')
      ? reply(res, 503, '', 'text/plain')
      : reply(res, 502, '<html>Bad Gateway</html>', 'text/html'),
  );
  t.after(() => srv.close());
  const client = createPlatformClient({ server: srv.url });
  const err = await client.listTasks({}).catch((e: unknown) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.code, 'HTTP_502');
  assert.equal(err.retryable, true);
  assert.equal(err.message, `<html>Bad Gateway</html> (from ${srv.url})`);
  const empty = await client.getTask('empty').catch((e: unknown) => e);
  assert.ok(empty instanceof ApiError);
  assert.equal(
    empty.message,
    `Service Unavailable (from ${srv.url})`,
    'the status text when there is no body',
  );
});

test('a refused connection is PLATFORM_UNREACHABLE and names the URL', async () => {
  const server = `http://127.0.0.1:${await closedPort()}`;
  const err = await createPlatformClient({ server })
    .listTasks({})
    .catch((e: unknown) => e);
  assert.ok(err instanceof CliError);
  assert.equal(err.code, 'PLATFORM_UNREACHABLE');
  assert.equal(err.retryable, true);
  assert.ok(
    err.message.startsWith(`cannot reach the platform at ${server} (connect ECONNREFUSED 127.0.0.1:`),
    err.message,
  );
});

test('a connection that breaks mid-response is PLATFORM_UNREACHABLE', async (t) => {
  const srv = await startServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 100 });
    res.write('{"task_id":');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  t.after(() => srv.close());
  const err = await createPlatformClient({ server: srv.url })
    .getTask('t')
    .catch((e: unknown) => e);
  assert.ok(err instanceof CliError);
  assert.equal(err.code, 'PLATFORM_UNREACHABLE');
  assert.match(err.message, /broke mid-response/);
});

test('a 200 that is not JSON is BAD_RESPONSE, and log follow insists on an event stream', async (t) => {
  const srv = await startServer((_req, res) => reply(res, 200, 'not json', 'text/plain'));
  t.after(() => srv.close());
  const client = createPlatformClient({ server: srv.url });
  const err = await client.getTask('t').catch((e: unknown) => e);
  assert.ok(err instanceof CliError && err.code === 'BAD_RESPONSE');
  const err2 = await client.openLogStream('t', 0).catch((e: unknown) => e);
  assert.ok(err2 instanceof CliError && err2.code === 'BAD_RESPONSE');
});

test('log follow asks for an event stream from since_seq and yields its events', async (t) => {
  const srv = await startServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(': ping\n\nevent: log\ndata: {"seq":4}\n\nevent: end\ndata: {}\n\n');
  });
  t.after(() => srv.close());
  const body = await createPlatformClient({ server: srv.url, token: 'apt_x' }).openLogStream('t/1', 3);
  const events = [];
  for await (const ev of readSse(body)) events.push([ev.event, ev.data]);
  assert.deepEqual(events, [
    ['log', '{"seq":4}'],
    ['end', '{}'],
  ]);
  const seen = srv.seen[0];
  assert.equal(seen?.url, '/api/v1/tasks/t%2F1/logs?follow=1&since_seq=3');
  assert.equal(seen?.headers.accept, 'text/event-stream');
  assert.equal(seen?.headers.authorization, 'Bearer apt_x');
});

test('create-and-follow POSTs follow=1 asking for events; an event stream is returned as a stream, JSON as the task', async (t) => {
  let mode: 'events' | 'json' = 'events';
  const srv = await startServer((_req, res) => {
    if (mode === 'json') return reply(res, 201, { task_id: 't9', status: 'pending' });
    res.writeHead(201, { 'content-type': 'text/event-stream; charset=utf-8' });
    res.end('event: task\ndata: {"task_id":"t8"}\n\nevent: end\ndata: {}\n\n');
  });
  t.after(() => srv.close());
  const client = createPlatformClient({ server: srv.url, token: 'apt_x' });
  const body = { agent_id: 'a', type: 'shell' as const, script: 'true' };
  const r = await client.createTaskFollow(body, 'key-2');
  assert.ok('stream' in r);
  const events = [];
  for await (const ev of readSse(r.stream)) events.push(ev.event);
  assert.deepEqual(events, ['task', 'end']);
  const seen = srv.seen[0];
  assert.equal(seen?.url, '/api/v1/tasks?follow=1');
  assert.equal(seen?.method, 'POST');
  assert.equal(seen?.headers['idempotency-key'], 'key-2');
  assert.match(seen?.headers.accept ?? '', /text\/event-stream/);
  assert.deepEqual(JSON.parse(seen?.body ?? ''), body);
  // A platform that does not know follow=1 answers the task as JSON.
  mode = 'json';
  const j = await client.createTaskFollow(body, 'key-3');
  assert.ok('task' in j && j.task.task_id === 't9');
});

test('an aborted request rejects with the abort, not as unreachable', async (t) => {
  const srv = await startServer(() => undefined);
  t.after(() => srv.close());
  const ac = new AbortController();
  const pending = createPlatformClient({ server: srv.url }).openLogStream('t', 0, ac.signal);
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(pending, { name: 'AbortError' });
});

/** A CA and a certificate for 127.0.0.1 signed by it, made with openssl (the test is skipped without it). */
function makeCertificates(): { ca: Buffer; cert: Buffer; key: Buffer } | undefined {
  const dir = mkdtempSync(path.join(tmpdir(), 'apctl-tls-'));
  const f = (name: string) => path.join(dir, name);
  try {
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=apctl test CA',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.crt'),
    );
    ssl(
      'req',
      '-new',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      f('server.key'),
      '-out',
      f('server.csr'),
    );
    const ext = f('ext.cnf');
    writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\n');
    ssl(
      'x509',
      '-req',
      '-in',
      f('server.csr'),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      ext,
      '-out',
      f('server.crt'),
    );
    return {
      ca: readFileSync(f('ca.crt')),
      cert: readFileSync(f('server.crt')),
      key: readFileSync(f('server.key')),
    };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('over https: the given CA is trusted, and without it the certificate is PLATFORM_UNTRUSTED', async (t) => {
  const certs = makeCertificates();
  if (!certs) return t.skip('no openssl to make certificates');
  const server = https.createServer({ cert: certs.cert, key: certs.key }, (req, res) =>
    reply(res, 200, { agents: [], next_cursor: null, auth: req.headers.authorization }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const trusted = await createPlatformClient({ server: url, token: 'apt_x', ca: certs.ca }).listAgents({});
  assert.deepEqual(trusted.data, { agents: [], next_cursor: null, auth: 'Bearer apt_x' });

  const err = await createPlatformClient({ server: url })
    .listAgents({})
    .catch((e: unknown) => e);
  assert.ok(err instanceof CliError, String(err));
  assert.equal(err.code, 'PLATFORM_UNTRUSTED');
  assert.match(err.message, /--ca-cert/);

  // Plain http to a TLS port: the hint says to use https.
  const plain = await createPlatformClient({ server: url.replace('https:', 'http:') })
    .listAgents({})
    .catch((e: unknown) => e);
  assert.ok(plain instanceof CliError, String(plain));
  assert.equal(plain.code, 'PLATFORM_UNREACHABLE');
  assert.match(plain.message, /use an https:\/\/ URL with --ca-cert/);
});
