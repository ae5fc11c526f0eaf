import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadOrCreatePki, normalizeFingerprint } from './pki.js';
import { generateToken, hashToken, plausibleToken, roleAllows } from './tokens.js';
import { resolveConfig } from '../config.js';

test('roles are ordered viewer < operator < admin', () => {
  assert.ok(
    roleAllows('admin', 'operator') && roleAllows('operator', 'viewer') && roleAllows('viewer', 'viewer'),
  );
  assert.ok(!roleAllows('viewer', 'operator') && !roleAllows('operator', 'admin'));
});

test('tokens are 256 random bits with a prefix; only their SHA-256 is kept', () => {
  const a = generateToken('apt_');
  assert.match(a, /^apt_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, generateToken('apt_'));
  assert.equal(hashToken(a).length, 32);
  assert.ok(plausibleToken(a) && !plausibleToken('short') && !plausibleToken(`${a} x`));
});

test('fingerprints compare in any usual spelling', () => {
  const fp = 'AB:CD:EF';
  assert.equal(normalizeFingerprint('sha256:ab:cd:ef'), fp);
  assert.equal(normalizeFingerprint('abcdef'), fp);
  assert.equal(normalizeFingerprint(' AB CD EF '), fp);
});

test('the CA is made once and reused; agent certificates chain to it and carry the agent id', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ap-pki-'));
  try {
    const logger = pino({ level: 'silent' });
    const a = await loadOrCreatePki({ dir, logger, sans: ['platform.example', '10.1.2.3'] });
    const b = await loadOrCreatePki({ dir, logger });
    assert.equal(a.caFingerprint, b.caFingerprint);
    assert.equal((await stat(path.join(dir, 'ca.key'))).mode & 0o777, 0o600);
    const ca = new X509Certificate(a.caCertPem);
    const server = new X509Certificate(a.serverCertPem);
    assert.ok(server.verify(ca.publicKey));
    assert.ok(
      server.checkHost('platform.example') && server.checkIP('10.1.2.3') && server.checkIP('127.0.0.1'),
    );
    assert.equal(await readFile(path.join(dir, 'ca.crt'), 'utf8'), a.caCertPem);

    const pub = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    const issued = a.issueAgentCertificate('agent-1', String(pub));
    const cert = new X509Certificate(issued.certPem);
    assert.ok(cert.verify(ca.publicKey));
    assert.match(cert.subject, /CN=agent-1/);
    assert.equal(cert.fingerprint256, issued.fingerprint);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    assert.throws(() => a.issueAgentCertificate('agent-2', String(ec)), /RSA/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('TLS is the default; AP_INSECURE turns it off; a weak bootstrap token is refused', () => {
  assert.equal(resolveConfig({}, {}).insecure, false);
  assert.equal(resolveConfig({}, { AP_INSECURE: '1' }).insecure, true);
  assert.equal(resolveConfig({}, { AP_INSECURE: '0' }).insecure, false);
  assert.deepEqual(resolveConfig({}, { AP_TLS_SAN: 'a.example, 10.0.0.1' }).tlsSans, [
    'a.example',
    '10.0.0.1',
  ]);
  assert.throws(() => resolveConfig({}, { AP_BOOTSTRAP_TOKEN: 'short' }), /bootstrap token/);
});
