/**
 * The platform's own certificate authority, kept in `<data-dir>/tls`:
 *
 *   ca.crt / ca.key          made on first start (RSA 2048, 20 years); agents pin ca.crt by
 *                            its SHA-256 fingerprint, printed with every join token
 *   server.crt / server.key  signed by the CA for localhost, this host's name and addresses
 *                            and --tls-san; or the files given with --tls-cert/--tls-key
 *
 * Enrollment signs each agent's own public key (the agent's private key never
 * leaves its host) into a client certificate with CN = agent id.
 *
 * X.509 is built with node-forge (pure JavaScript, no native code); key pairs
 * come from node:crypto. Everything is PEM on disk, keys mode 0600.
 */
import { X509Certificate, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import type { Logger } from 'pino';

export interface Pki {
  /** The CA certificate (PEM) agents trust. */
  readonly caCertPem: string;
  /** `AB:CD:...` SHA-256 of the CA certificate. */
  readonly caFingerprint: string;
  /** Server certificate chain (PEM: server certificate, then the CA unless given files). */
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  /** Signs an agent's public key (SPKI PEM, RSA) into a client certificate. */
  issueAgentCertificate(agentId: string, publicKeyPem: string): IssuedCertificate;
}

export interface IssuedCertificate {
  certPem: string;
  fingerprint: string;
  expiresAt: Date;
}

export interface PkiOptions {
  /** Where ca.* and server.* live. */
  dir: string;
  /** Extra DNS names or IP addresses for the generated server certificate. */
  sans?: string[];
  /** A server certificate chain and key to use instead of generating one. */
  certFile?: string;
  keyFile?: string;
  logger: Logger;
}

const AGENT_CERT_DAYS = 5 * 365;

/** Normalises a fingerprint given in any usual spelling (`sha256:`, colons, case). */
export function normalizeFingerprint(fp: string): string {
  const hex = fp
    .trim()
    .replace(/^sha256[:=]/i, '')
    .replace(/[:\s]/g, '')
    .toUpperCase();
  return hex.match(/.{2}/g)?.join(':') ?? hex;
}

export function certFingerprint(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f; // positive
  return b.toString('hex');
}

function rsaKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { privatePem: privateKey, publicPem: publicKey };
}

function validity(cert: forge.pki.Certificate, days: number): void {
  const now = Date.now();
  // Back-dated a little so a host whose clock is slightly behind accepts it at once.
  cert.validity.notBefore = new Date(now - 10 * 60 * 1000);
  cert.validity.notAfter = new Date(now + days * 86400 * 1000);
}

async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, file);
}

function makeCa(): { certPem: string; keyPem: string } {
  const keys = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicPem);
  cert.serialNumber = serial();
  validity(cert, 20 * 365);
  const name = [
    { name: 'commonName', value: `agent-platform CA ${randomBytes(4).toString('hex')}` },
    { name: 'organizationName', value: 'agent-platform' },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privatePem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privatePem };
}

function serverNames(extra: string[]): { dns: string[]; ips: string[] } {
  const names = new Set(['localhost', os.hostname(), ...extra]);
  for (const list of Object.values(os.networkInterfaces()))
    for (const a of list ?? []) names.add(a.address.split('%')[0] ?? a.address);
  names.add('127.0.0.1');
  names.add('::1');
  const dns: string[] = [];
  const ips: string[] = [];
  for (const n of names) {
    if (n === '') continue;
    if (isIP(n)) ips.push(n);
    else dns.push(n);
  }
  return { dns, ips };
}

function signLeaf(
  ca: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey },
  publicKey: forge.pki.PublicKey,
  subject: forge.pki.CertificateField[],
  extensions: object[],
  days: number,
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serial();
  validity(cert, days);
  cert.setSubject(subject);
  cert.setIssuer(ca.cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    ...extensions,
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.cert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(ca.key, forge.md.sha256.create());
  return cert;
}

/** Loads the CA and server certificate from `dir`, creating what is missing. */
export async function loadOrCreatePki(options: PkiOptions): Promise<Pki> {
  const { dir, logger } = options;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caCertFile = path.join(dir, 'ca.crt');
  const caKeyFile = path.join(dir, 'ca.key');
  if (!existsSync(caCertFile) || !existsSync(caKeyFile)) {
    const made = makeCa();
    await writeAtomic(caKeyFile, made.keyPem, 0o600);
    await writeAtomic(caCertFile, made.certPem, 0o644);
    logger.warn({ ca: caCertFile, fingerprint: certFingerprint(made.certPem) }, 'created the platform CA');
  }
  const caCertPem = await readFile(caCertFile, 'utf8');
  const caKeyPem = await readFile(caKeyFile, 'utf8');
  const ca = { cert: forge.pki.certificateFromPem(caCertPem), key: forge.pki.privateKeyFromPem(caKeyPem) };
  const caFingerprint = certFingerprint(caCertPem);

  let serverCertPem: string;
  let serverKeyPem: string;
  if (options.certFile || options.keyFile) {
    if (!options.certFile || !options.keyFile) throw new Error('--tls-cert and --tls-key go together');
    serverCertPem = await readFile(options.certFile, 'utf8');
    serverKeyPem = await readFile(options.keyFile, 'utf8');
  } else {
    const certFile = path.join(dir, 'server.crt');
    const keyFile = path.join(dir, 'server.key');
    if (!existsSync(certFile) || !existsSync(keyFile)) {
      const keys = rsaKeyPair();
      const { dns, ips } = serverNames(options.sans ?? []);
      const cert = signLeaf(
        ca,
        forge.pki.publicKeyFromPem(keys.publicPem),
        [
          { name: 'commonName', value: 'agent-platform' },
          { name: 'organizationName', value: 'agent-platform' },
        ],
        [
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
          { name: 'extKeyUsage', serverAuth: true },
          {
            name: 'subjectAltName',
            altNames: [...dns.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))],
          },
        ],
        5 * 365,
      );
      await writeAtomic(keyFile, keys.privatePem, 0o600);
      await writeAtomic(certFile, forge.pki.certificateToPem(cert) + caCertPem, 0o644);
      logger.info({ cert: certFile, dns, ips }, 'created the server certificate');
    }
    serverCertPem = await readFile(certFile, 'utf8');
    serverKeyPem = await readFile(keyFile, 'utf8');
  }

  return {
    caCertPem,
    caFingerprint,
    serverCertPem,
    serverKeyPem,
    issueAgentCertificate(agentId, publicKeyPem) {
      const key = createPublicKey(publicKeyPem);
      if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
        throw new Error('the public key must be RSA, 2048 bits or more');
      }
      const pem = key.export({ type: 'spki', format: 'pem' }).toString();
      const cert = signLeaf(
        ca,
        forge.pki.publicKeyFromPem(pem),
        [
          { name: 'commonName', value: agentId },
          { name: 'organizationName', value: 'agent-platform agent' },
        ],
        [
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
          { name: 'extKeyUsage', clientAuth: true },
        ],
        AGENT_CERT_DAYS,
      );
      const certPem = forge.pki.certificateToPem(cert);
      return { certPem, fingerprint: certFingerprint(certPem), expiresAt: cert.validity.notAfter };
    },
  };
}
