/**
 * The agent's credential: a client certificate signed by the platform CA,
 * kept in `<stateDir>/identity/` and reused across restarts.
 *
 *   identity files present ──> use them (agent id = the certificate's CN)
 *   absent, --join-token   ──> pin the CA (--ca-file, or --ca-fingerprint checked against
 *                              the chain the platform presents), make an RSA key here,
 *                              Enroll(join token, public key) over TLS, save key + cert + CA
 *   absent, no join token  ──> refuse to start
 *
 * The private key never leaves this host. Files are written to a temporary
 * name and renamed, the key with mode 0600.
 */
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isIP } from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AgentServiceClient, type EnrollResponse } from '@agent-platform/protocol';

export interface AgentIdentity {
  agentId: string;
  keyPem: string;
  certPem: string;
  caPem: string;
}

export interface EnrollOptions {
  stateDir: string;
  /** Platform gRPC addresses, HOST:PORT, tried in turn. */
  servers: string[];
  joinToken?: string;
  /** SHA-256 fingerprint of the platform CA (as printed with the join token). */
  caFingerprint?: string;
  /** The platform CA certificate (PEM file); pinned as is. */
  caFile?: string;
  /** Name to check the platform's certificate against instead of the dialled host. */
  tlsServerName?: string;
  logger: Logger;
  /** Milliseconds per enrollment attempt; default 15,000. */
  timeoutMs?: number;
}

export class EnrollmentError extends Error {
  constructor(
    readonly code: 'NO_IDENTITY' | 'CA_NOT_PINNED' | 'CA_MISMATCH' | 'ENROLL_FAILED',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EnrollmentError';
  }
}

/** `sha256:ab:cd...`, `ABCD...` → `AB:CD:...`. */
export function normalizeFingerprint(fp: string): string {
  const hex = fp
    .trim()
    .replace(/^sha256[:=]/i, '')
    .replace(/[:\s]/g, '')
    .toUpperCase();
  return hex.match(/.{2}/g)?.join(':') ?? hex;
}

const serverName = (host: string) => (isIP(host) ? undefined : host);

function splitAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!m) throw new EnrollmentError('ENROLL_FAILED', `server address must be HOST:PORT, got ${address}`);
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

const files = (stateDir: string) => {
  const dir = path.join(stateDir, 'identity');
  return {
    dir,
    key: path.join(dir, 'agent.key'),
    cert: path.join(dir, 'agent.crt'),
    ca: path.join(dir, 'ca.crt'),
    agentId: path.join(stateDir, 'agent-id'),
  };
};

async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, file);
}

/**
 * Fetches the CA certificate from the chain the platform presents and keeps it
 * only if its fingerprint is the pinned one. Nothing is sent over this connection.
 */
export function fetchPinnedCa(address: string, fingerprint: string, timeoutMs = 10_000): Promise<string> {
  const want = normalizeFingerprint(fingerprint);
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      // Verified below by fingerprint; this connection carries no data.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      servername: serverName(host),
    });
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS answer from ${address}`)), timeoutMs);
    socket.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(new EnrollmentError('ENROLL_FAILED', `cannot reach ${address}: ${err.message}`, { cause: err }));
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      const seen = new Set<string>();
      let found: Buffer | undefined;
      while (cert?.raw && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256);
        if (cert.fingerprint256 === want) found = cert.raw;
        cert = cert.issuerCertificate;
      }
      socket.destroy();
      if (!found) {
        reject(
          new EnrollmentError(
            'CA_MISMATCH',
            `the platform at ${address} does not present the CA with fingerprint ${want}`,
          ),
        );
        return;
      }
      resolve(new X509Certificate(found).toString());
    });
  });
}

function callEnroll(
  address: string,
  caPem: string,
  request: { joinToken: string; publicKeyPem: string; hostname: string },
  o: EnrollOptions,
): Promise<EnrollResponse> {
  const client = new AgentServiceClient(
    address,
    grpc.credentials.createSsl(Buffer.from(caPem)),
    o.tlsServerName ? { 'grpc.ssl_target_name_override': o.tlsServerName } : {},
  );
  return new Promise<EnrollResponse>((resolve, reject) => {
    client.enroll(
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + (o.timeoutMs ?? 15_000) },
      (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res);
      },
    );
  });
}

/** Loads the saved identity, or enrolls with the join token and saves it. */
export async function loadOrEnroll(o: EnrollOptions): Promise<AgentIdentity> {
  const f = files(o.stateDir);
  if (existsSync(f.key) && existsSync(f.cert) && existsSync(f.ca)) {
    const [keyPem, certPem, caPem] = await Promise.all([
      readFile(f.key, 'utf8'),
      readFile(f.cert, 'utf8'),
      readFile(f.ca, 'utf8'),
    ]);
    const agentId = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(certPem).subject)?.[1] ?? '';
    if (o.joinToken) o.logger.info({ agent_id: agentId }, 'already enrolled; the join token is not used');
    await writeAtomic(f.agentId, `${agentId}\n`, 0o600);
    return { agentId, keyPem, certPem, caPem };
  }
  if (!o.joinToken) {
    throw new EnrollmentError(
      'NO_IDENTITY',
      'this agent has no identity yet: start it once with --join-token and --ca-fingerprint (or --ca-file), or use --insecure',
    );
  }
  let pinnedCa: string | undefined;
  if (o.caFile) {
    pinnedCa = await readFile(o.caFile, 'utf8');
    const fp = new X509Certificate(pinnedCa).fingerprint256;
    if (o.caFingerprint && normalizeFingerprint(o.caFingerprint) !== fp) {
      throw new EnrollmentError('CA_MISMATCH', `--ca-file has fingerprint ${fp}, not ${o.caFingerprint}`);
    }
  } else if (!o.caFingerprint) {
    throw new EnrollmentError(
      'CA_NOT_PINNED',
      '--join-token needs --ca-fingerprint (printed with the join token) or --ca-file',
    );
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  let lastErr: unknown;
  for (const address of o.servers) {
    try {
      const caPem = pinnedCa ?? (await fetchPinnedCa(address, o.caFingerprint ?? ''));
      const res = await callEnroll(
        address,
        caPem,
        { joinToken: o.joinToken, publicKeyPem: publicKey, hostname: os.hostname() },
        o,
      );
      if (
        new X509Certificate(res.caCertificatePem).fingerprint256 !== new X509Certificate(caPem).fingerprint256
      ) {
        throw new EnrollmentError('CA_MISMATCH', 'the platform answered with a different CA');
      }
      await mkdir(f.dir, { recursive: true, mode: 0o700 });
      await writeAtomic(f.key, privateKey, 0o600);
      await writeAtomic(f.ca, caPem, 0o644);
      await writeAtomic(f.cert, res.certificatePem, 0o644);
      await writeAtomic(f.agentId, `${res.agentId}\n`, 0o600);
      o.logger.info({ agent_id: res.agentId, server: address }, 'enrolled');
      return { agentId: res.agentId, keyPem: privateKey, certPem: res.certificatePem, caPem };
    } catch (err) {
      if (err instanceof EnrollmentError && err.code === 'CA_MISMATCH') throw err;
      lastErr = err;
      const e = err as { details?: string; message?: string };
      o.logger.warn({ server: address, reason: e.details ?? e.message }, 'enrollment failed');
    }
  }
  const e = lastErr as { details?: string; message?: string } | undefined;
  throw new EnrollmentError(
    'ENROLL_FAILED',
    `enrollment failed: ${e?.details ?? e?.message ?? 'no server'}`,
    {
      cause: lastErr,
    },
  );
}

/** gRPC credentials for mutual TLS with a saved identity. */
export function identityCredentials(id: AgentIdentity): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(id.caPem), Buffer.from(id.keyPem), Buffer.from(id.certPem));
}
