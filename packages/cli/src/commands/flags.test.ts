import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError } from '../errors.js';
import { resolveServer } from '../client/platform-client.js';
import { parseBytes, parseEnv, parseInteger } from './flags.js';

const usage = (err: unknown) => err instanceof CliError && err.code === 'USAGE' && err.exitCode === 2;

test('--env splits at the first = and keeps the rest of the value', () => {
  assert.deepEqual(parseEnv(['A=1', 'B=x=y', 'C=']), { A: '1', B: 'x=y', C: '' });
  assert.throws(() => parseEnv(['NOEQUALS']), usage);
  assert.throws(() => parseEnv(['=v']), usage);
});

test('integers must be whole and at least the minimum', () => {
  assert.equal(parseInteger('--timeout', '30'), 30);
  assert.equal(parseInteger('--since-seq', '0', 0), 0);
  for (const bad of ['0', '-1', '1.5', 'abc', '', '1e3'])
    assert.throws(() => parseInteger('--timeout', bad), usage);
});

test('sizes take binary suffixes', () => {
  assert.equal(parseBytes('--memory', '1048576'), 1048576);
  assert.equal(parseBytes('--memory', '512K'), 512 * 1024);
  assert.equal(parseBytes('--memory', '256Mi'), 256 * 1024 ** 2);
  assert.equal(parseBytes('--memory', '1GB'), 1024 ** 3);
  assert.equal(parseBytes('--memory', '1.5g'), 1.5 * 1024 ** 3);
  for (const bad of ['0', 'M', '12X', '-5M']) assert.throws(() => parseBytes('--memory', bad), usage);
});

test('the server comes from --server, else APCTL_SERVER, else the loopback default', () => {
  assert.equal(resolveServer('http://p:1/', {}), 'http://p:1');
  assert.equal(resolveServer(undefined, { APCTL_SERVER: 'https://ap.example' }), 'https://ap.example');
  assert.equal(resolveServer(undefined, {}), 'http://127.0.0.1:8080');
  assert.equal(resolveServer('10.0.0.5:8080', {}), 'http://10.0.0.5:8080');
  assert.throws(() => resolveServer('ftp://x', {}), usage);
});
