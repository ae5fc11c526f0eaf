/**
 * The agent gateway: one gRPC bidirectional stream per agent.
 *
 *   stream opened ──AgentRegister (valid, within registrationTimeout)──> REGISTERED
 *        │                                                                │
 *        └── bad/absent registration ──> ended with INVALID_REGISTRATION   ├── heartbeat / any message: last seen = now (server clock)
 *            or REGISTRATION_TIMEOUT, no row written                      ├── silent for 3 intervals ──> ended, offline (heartbeat_timeout)
 *                                                                          ├── stream closed / errored ──> offline (stream_closed)
 *                                                                          └── same agent registers again ──> old stream ended (SESSION_REPLACED)
 *
 * With TLS (the default), a stream must come with a client certificate issued
 * at enrollment (see Enroll below); the certificate's row in agent_credentials
 * must be unrevoked and name the agent id being registered (IDENTITY_MISMATCH
 * otherwise). Without TLS (--insecure) agents are whoever they say they are.
 *
 * Liveness uses only this process's clock and the database's now(); the
 * agent's own timestamps are informational. Heartbeats are written in batches
 * (one UPDATE per flush for every agent), not one commit each.
 */
import { createPublicKey, randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  AgentServiceService,
  type AgentMessage,
  type AgentServiceServer,
  type EnrollRequest,
  type EnrollResponse,
  type ServerMessage,
} from '@agent-platform/protocol';
import { PlatformError, toPlatformError } from '../errors.js';
import type { AgentRegistration, HeartbeatMark, Store } from '../store/index.js';
import { hashToken, plausibleToken } from '../security/tokens.js';
import type { Pki } from '../security/pki.js';
import { validateRegistration } from './validate.js';

export interface AgentSession {
  readonly agentId: string;
  readonly sessionId: string;
  readonly capacity: number;
  readonly labels: Record<string, string>;
  readonly peer: string;
  /** Sends a message; false when the stream is closed. */
  send(msg: ServerMessage): boolean;
  /** Ends the stream with an error status (the agent reconnects); `reason` goes on the agent row. */
  end(err: PlatformError, reason?: string): void;
}

/** What the task layer plugs into the gateway. All methods may be async; failures are logged. */
export interface SessionHandlers {
  onRegistered?(session: AgentSession, pendingTaskIds: string[]): Promise<void> | void;
  onMessage?(session: AgentSession, msg: AgentMessage): Promise<void> | void;
  onClosed?(session: AgentSession, reason: string): Promise<void> | void;
}

export interface AgentGatewayOptions {
  store: Store;
  logger: Logger;
  /** Identifies this platform process on agent rows. */
  platformNode: string;
  /** Seconds between heartbeats agents are told to keep; default 10. Silence for 3 intervals means offline. */
  heartbeatIntervalSeconds?: number;
  /** Milliseconds a new stream has to send AgentRegister; default 10,000. */
  registrationTimeoutMs?: number;
  /** Largest message accepted from an agent, bytes; default 8 MiB. */
  maxReceiveMessageBytes?: number;
  /** Milliseconds between heartbeat flushes to the database; default 1,000. */
  flushIntervalMs?: number;
  /** PlatformConfig.outboundBudgetBytes; default 32 MiB. */
  outboundBudgetBytes?: number;
  handlers?: SessionHandlers;
  /**
   * TLS material; agents then need a certificate from enrollment. Absent =
   * plaintext, agents identify themselves by the id they send (--insecure).
   */
  pki?: Pki;
}

export interface AgentGateway {
  /** Binds the gRPC server; returns the bound port. */
  listen(host: string, port: number): Promise<number>;
  /** Ends every stream (agents reconnect elsewhere), marks their agents offline and stops the server. */
  close(): Promise<void>;
  session(agentId: string): AgentSession | undefined;
  /** Agents whose streams this process holds. */
  sessionAgentIds(): string[];
  readonly sessionCount: number;
  /** Sets handlers after construction (the task layer is created after the gateway). */
  setHandlers(handlers: SessionHandlers): void;
  /** Ends the agent's stream, if this process holds it, with AGENT_REVOKED. */
  revoke(agentId: string): void;
  /** Large-message bytes written and not yet on their sockets, and messages waiting behind the budget. */
  outbound(): { bytes: number; queued: number };
}

/** A task request at least this large waits for the outbound budget; smaller messages never do. */
export const LARGE_MESSAGE_BYTES = 64 * 1024;

/**
 * What a message adds to the outbound budget: about a task request's size on
 * the wire (characters of its script, args and env: exact for ASCII, a third
 * of the bytes at worst, and no scan of a 1 MiB script); else 0.
 */
function outboundSize(msg: ServerMessage): number {
  const m = msg.message;
  if (m?.$case !== 'taskRequest') return 0;
  const r = m.value;
  let n = r.script.length + 256;
  for (const a of r.args) n += a.length + 2;
  for (const k in r.env) n += k.length + (r.env[k]?.length ?? 0) + 4;
  return n;
}

/** Messages about tasks reach an agent in the order they were sent; the others are never held. */
const ORDERED = new Set(['taskRequest', 'taskCancel', 'resultAck']);

type Call = grpc.ServerDuplexStream<AgentMessage, ServerMessage>;

/** A certificate provider that never changes: grpc-js's way to request, but not require, client certificates. */
function staticProvider(pki: Pki): grpc.experimental.CertificateProvider {
  const ca = { caCertificate: Buffer.from(pki.caCertPem) };
  const identity = { certificate: Buffer.from(pki.serverCertPem), privateKey: Buffer.from(pki.serverKeyPem) };
  return {
    // Asynchronously: grpc-js registers its watcher only after adding these listeners.
    addCaCertificateListener: (l) => queueMicrotask(() => l(ca)),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: (l) => queueMicrotask(() => l(identity)),
    removeIdentityCertificateListener: () => undefined,
  };
}

function grpcError(err: PlatformError): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set('error-code', err.code);
  return { code: err.grpc, details: `${err.code}: ${err.message}`, metadata };
}

/** Bounds on an EnrollRequest, checked before the join token is spent. */
const ENROLL_LIMITS = { publicKeyPemMax: 16_384, hostnameMax: 255 } as const;

function endCall(call: Call, err: PlatformError): void {
  const metadata = new grpc.Metadata();
  metadata.set('error-code', err.code);
  const status: Partial<grpc.StatusObject> = {
    code: err.grpc,
    details: `${err.code}: ${err.message}`,
    metadata,
  };
  call.emit('error', status);
}

export function createAgentGateway(options: AgentGatewayOptions): AgentGateway {
  const { store, logger, platformNode } = options;
  const intervalS = options.heartbeatIntervalSeconds ?? 10;
  const silenceMs = intervalS * 3 * 1000;
  const registrationTimeoutMs = options.registrationTimeoutMs ?? 10_000;
  const flushIntervalMs = options.flushIntervalMs ?? 1000;
  let handlers: SessionHandlers = options.handlers ?? {};

  interface LiveSession extends AgentSession {
    /** Task ids sent to this agent (or it reported at registration) and not yet acknowledged. */
    tasks: Set<string>;
    /** Messages about tasks outside `tasks`, for rate-limited logging. */
    foreign: number;
    lastSeen: number;
    runningTasks: number;
    closed: boolean;
    call: Call;
    /** Messages that wait for the outbound budget, in order; later messages of this session wait behind them. */
    outbox: { msg: ServerMessage; bytes: number }[];
    /** The bytes of this session's large message in flight (its share of `outboundBytes`), or 0. */
    heldBytes: number;
  }
  const sessions = new Map<string, LiveSession>();

  /*
   * The outbound budget. grpc-js serializes a message into a buffer of its own
   * when it is written, and that buffer lives until the stream's socket takes
   * it: a batch of one 1 MiB script on 1,000 agents held ~1.2 GB in this
   * process (`npm run bench:fleet`, phase 4). So a large task request (64 KiB
   * and more) is written only while its session has no other large message in
   * flight (its stream sends one at a time anyway) and the large bytes in flight
   * on all streams stay under the budget (one always may, whatever its size);
   * a write's callback gives its bytes back. The rest wait in their session's
   * outbox, and the session's later messages about tasks wait behind them, so
   * an agent gets those in the order they were sent (a cancel never overtakes
   * its request). Small messages never wait for the budget, and a register
   * answer or heartbeat ack never waits at all. Sessions waiting for
   * the budget are served first come, first served; one waiting only for its
   * own stream holds up no other.
   */
  const outboundBudget = options.outboundBudgetBytes ?? 32 * 1024 * 1024;
  let outboundBytes = 0;
  /** Sessions with a non-empty outbox, in the order they began to wait. */
  const waiting = new Set<LiveSession>();

  function writeOut(s: LiveSession, msg: ServerMessage, bytes: number): void {
    if (bytes < LARGE_MESSAGE_BYTES) {
      s.call.write(msg);
      return;
    }
    outboundBytes += bytes;
    s.heldBytes = bytes;
    // grpc-js drops the callback of a write to a cancelled call: a closed session
    // gives back what it holds in releaseOutbound instead.
    s.call.write(msg, () => {
      if (s.closed) return;
      s.heldBytes = 0;
      outboundBytes -= bytes;
      pumpOutbound();
    });
  }

  /** Whether a message may be written now: 'yes', or what it waits for. */
  function mayWrite(s: LiveSession, bytes: number): 'yes' | 'stream' | 'budget' {
    if (bytes < LARGE_MESSAGE_BYTES) return 'yes';
    if (s.heldBytes > 0) return 'stream';
    return outboundBytes === 0 || outboundBytes + bytes <= outboundBudget ? 'yes' : 'budget';
  }

  /** Writes waiting messages as far as their sessions' streams and the budget allow. */
  function pumpOutbound(): void {
    for (const s of waiting) {
      let blocked: 'stream' | 'budget' | undefined;
      while (s.outbox.length > 0) {
        const next = s.outbox[0];
        if (!next) break;
        const may = mayWrite(s, next.bytes);
        if (may !== 'yes') {
          blocked = may;
          break;
        }
        s.outbox.shift();
        writeOut(s, next.msg, next.bytes);
      }
      if (s.outbox.length === 0) waiting.delete(s);
      // First come, first served: later sessions wait for the budget too.
      if (blocked === 'budget') return;
    }
  }

  /**
   * A session that closed: its written bytes go back, and its waiting messages are
   * dropped. A dropped task request never reached the agent, which is what
   * reconciliation at its next registration finds (tasks.reconcile: back to pending).
   */
  function releaseOutbound(s: LiveSession): void {
    outboundBytes -= s.heldBytes;
    s.heldBytes = 0;
    s.outbox = [];
    waiting.delete(s);
    pumpOutbound();
  }
  const calls = new Set<Call>();
  let pendingMarks = new Map<string, HeartbeatMark>();
  let shuttingDown = false;

  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? 8 * 1024 * 1024,
    // Server-side keepalive finds dead TCP peers (a host that vanished) between heartbeats.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });

  async function flushHeartbeats(): Promise<void> {
    if (pendingMarks.size === 0) return;
    const marks = [...pendingMarks.values()];
    pendingMarks = new Map();
    try {
      await store.agents.touch(marks);
    } catch (err) {
      logger.warn({ err, count: marks.length }, 'heartbeat flush failed');
    }
  }

  async function sweep(): Promise<void> {
    const now = Date.now();
    for (const s of sessions.values()) {
      if (now - s.lastSeen > silenceMs) s.end(new PlatformError('HEARTBEAT_TIMEOUT'), 'heartbeat_timeout');
    }
    // An agent revoked through another platform process loses its stream here too.
    try {
      for (const id of await store.credentials.revokedAmong([...sessions.keys()]))
        sessions.get(id)?.end(new PlatformError('AGENT_REVOKED'), 'revoked');
    } catch (err) {
      logger.warn({ err }, 'revocation sweep failed');
    }
    // Agents whose platform process died (SIGKILL) keep an "online" row nobody
    // updates; any live process marks them offline once they are silent too long.
    try {
      const ids = await store.agents.markSilentOffline(intervalS * 3 + Math.ceil(flushIntervalMs / 1000));
      if (ids.length > 0)
        logger.info({ agent_ids: ids.slice(0, 20), count: ids.length }, 'silent agents marked offline');
    } catch (err) {
      logger.warn({ err }, 'offline sweep failed');
    }
  }

  const flushTimer = setInterval(() => void flushHeartbeats(), flushIntervalMs);
  const sweepTimer = setInterval(() => void sweep(), Math.max(250, (intervalS * 1000) / 2));
  flushTimer.unref();
  sweepTimer.unref();

  /** Handler work still running; close() waits for it before the store goes away. */
  const inflight = new Set<Promise<void>>();

  function runHandler(what: string, session: AgentSession, fn: () => Promise<void> | void): void {
    try {
      const r = fn();
      if (r instanceof Promise) {
        const p = r.catch((err: unknown) =>
          logger.error({ err, agent_id: session.agentId }, `${what} handler failed`),
        );
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
    } catch (err) {
      logger.error({ err, agent_id: session.agentId }, `${what} handler failed`);
    }
  }

  /**
   * Who may register as `reg.agentId`: with TLS, only the holder of an
   * unrevoked certificate issued to that id; labels from its join token win
   * over the agent's own. Throws UNAUTHENTICATED, AGENT_REVOKED or IDENTITY_MISMATCH.
   */
  async function authorize(call: Call, reg: AgentRegistration): Promise<AgentRegistration> {
    if (!options.pki) {
      if ((await store.credentials.revokedAmong([reg.agentId])).length > 0)
        throw new PlatformError('AGENT_REVOKED');
      return reg;
    }
    const cert = call.getAuthContext().sslPeerCertificate;
    if (!cert) {
      throw new PlatformError(
        'UNAUTHENTICATED',
        'a client certificate from enrollment is required (--join-token)',
      );
    }
    const cred = await store.credentials.byFingerprint(cert.fingerprint256);
    if (!cred) throw new PlatformError('UNAUTHENTICATED', 'this certificate was not issued to an agent');
    if (cred.revoked_at) throw new PlatformError('AGENT_REVOKED');
    if (cred.agent_id !== reg.agentId) {
      throw new PlatformError(
        'IDENTITY_MISMATCH',
        `the certificate belongs to agent ${cred.agent_id}, not ${reg.agentId.slice(0, 128)}`,
      );
    }
    return { ...reg, labels: { ...reg.labels, ...cred.labels } };
  }

  async function enroll(req: EnrollRequest, peer: string): Promise<EnrollResponse> {
    const pki = options.pki;
    if (!pki) throw new PlatformError('ENROLLMENT_UNAVAILABLE');
    if (!plausibleToken(req.joinToken)) throw new PlatformError('INVALID_JOIN_TOKEN');
    if (
      req.publicKeyPem.length > ENROLL_LIMITS.publicKeyPemMax ||
      req.hostname.length > ENROLL_LIMITS.hostnameMax
    ) {
      throw new PlatformError('VALIDATION_FAILED', 'public_key_pem or hostname is too long');
    }
    try {
      const key = createPublicKey(req.publicKeyPem);
      if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
        throw new Error();
    } catch {
      throw new PlatformError(
        'VALIDATION_FAILED',
        'public_key_pem must be an RSA public key of 2048 bits or more',
      );
    }
    const join = await store.tokens.consumeJoin(hashToken(req.joinToken));
    if (!join) throw new PlatformError('INVALID_JOIN_TOKEN');
    const agentId = randomUUID();
    const issued = pki.issueAgentCertificate(agentId, req.publicKeyPem);
    await store.credentials.insert({
      fingerprint: issued.fingerprint,
      agentId,
      joinTokenId: join.token_id,
      labels: join.labels,
      expiresAt: issued.expiresAt,
    });
    logger.info(
      { agent_id: agentId, join_token_id: join.token_id, hostname: req.hostname.slice(0, 255), peer },
      'agent enrolled',
    );
    return { agentId, certificatePem: issued.certPem, caCertificatePem: pki.caCertPem };
  }

  function connect(call: Call): void {
    if (shuttingDown) {
      endCall(call, new PlatformError('SHUTTING_DOWN'));
      return;
    }
    calls.add(call);
    const peer = call.getPeer();
    let session: LiveSession | undefined;
    let registering = false;
    const registerTimer = setTimeout(() => {
      if (!session) endCall(call, new PlatformError('REGISTRATION_TIMEOUT'));
    }, registrationTimeoutMs);

    const finish = (reason: string) => {
      clearTimeout(registerTimer);
      calls.delete(call);
      const s = session;
      if (!s || s.closed) return;
      s.closed = true;
      releaseOutbound(s);
      if (sessions.get(s.agentId) === s) sessions.delete(s.agentId);
      pendingMarks.delete(s.agentId);
      logger.info({ agent_id: s.agentId, session_id: s.sessionId, reason }, 'agent disconnected');
      runHandler('close', s, async () => {
        await store.agents.markOffline(s.agentId, s.sessionId, reason);
        await handlers.onClosed?.(s, reason);
      });
    };

    call.on('data', (msg: AgentMessage) => {
      const m = msg.message;
      if (!session) {
        if (registering) return; // messages before the answer are dropped; the agent waits for it
        if (m?.$case !== 'register') {
          endCall(call, new PlatformError('PROTOCOL_VIOLATION', 'the first message must be register'));
          return;
        }
        let reg: AgentRegistration;
        try {
          reg = validateRegistration(m.value);
        } catch (err) {
          const e = toPlatformError(err);
          logger.warn({ peer, code: e.code, reason: e.message }, 'registration refused');
          endCall(call, e);
          return;
        }
        registering = true;
        const sessionId = randomUUID();
        const pendingTaskIds = m.value.pendingTaskIds;
        let authorized = false;
        authorize(call, reg)
          .then((r) => {
            authorized = true;
            reg = r;
            return store.agents.register(r, sessionId, platformNode);
          })
          .then(
            () => {
              clearTimeout(registerTimer);
              if (call.destroyed || call.cancelled) {
                // The stream went away while we wrote the row: mark it offline again.
                void store.agents.markOffline(reg.agentId, sessionId, 'stream_closed').catch(() => undefined);
                return;
              }
              const s: LiveSession = {
                agentId: reg.agentId,
                sessionId,
                capacity: reg.capacity,
                labels: reg.labels,
                peer,
                tasks: new Set(pendingTaskIds.slice(0, 100_000)),
                foreign: 0,
                lastSeen: Date.now(),
                runningTasks: 0,
                closed: false,
                call,
                outbox: [],
                heldBytes: 0,
                send(out) {
                  if (s.closed || call.destroyed) return false;
                  const o = out.message;
                  if (o?.$case === 'taskRequest') s.tasks.add(o.value.taskId);
                  else if (o?.$case === 'resultAck') s.tasks.delete(o.value.taskId);
                  const bytes = outboundSize(out);
                  const held = s.outbox.length > 0 && ORDERED.has(o?.$case ?? '');
                  if (held || mayWrite(s, bytes) !== 'yes') {
                    s.outbox.push({ msg: out, bytes });
                    waiting.add(s);
                  } else writeOut(s, out, bytes);
                  return true;
                },
                end(err, reason) {
                  if (s.closed) return;
                  // finish first: ending the call emits 'error', whose handler would record 'stream_closed'.
                  finish(reason ?? err.code.toLowerCase());
                  endCall(call, err);
                },
              };
              const previous = sessions.get(reg.agentId);
              sessions.set(reg.agentId, s);
              session = s;
              if (previous && !previous.closed) {
                // Mark the old session closed without touching the row: it already belongs to `s`.
                previous.closed = true;
                releaseOutbound(previous);
                endCall(previous.call, new PlatformError('SESSION_REPLACED'));
              }
              s.send({
                message: {
                  $case: 'registerResponse',
                  value: {
                    success: true,
                    message: 'registered',
                    agentId: reg.agentId,
                    heartbeatInterval: intervalS,
                    serverTime: new Date(),
                  },
                },
              });
              logger.info(
                {
                  agent_id: reg.agentId,
                  session_id: sessionId,
                  hostname: reg.hostname,
                  peer,
                  version: reg.version,
                },
                'agent registered',
              );
              runHandler('register', s, () => handlers.onRegistered?.(s, pendingTaskIds));
            },
            (err: unknown) => {
              if (!authorized && err instanceof PlatformError) {
                logger.warn(
                  { peer, agent_id: reg.agentId, code: err.code, reason: err.message },
                  'registration refused',
                );
                endCall(call, err);
                return;
              }
              logger.error({ err, agent_id: reg.agentId }, 'registration failed');
              endCall(call, new PlatformError('INTERNAL', 'registration could not be stored'));
            },
          );
        return;
      }
      session.lastSeen = Date.now();
      if (m?.$case === 'register') {
        session.end(new PlatformError('PROTOCOL_VIOLATION', 'already registered on this stream'));
        return;
      }
      if (m?.$case === 'heartbeat') {
        session.runningTasks = m.value.runningTasks;
        pendingMarks.set(session.agentId, {
          agentId: session.agentId,
          sessionId: session.sessionId,
          runningTasks: m.value.runningTasks,
        });
        session.send({ message: { $case: 'heartbeatAck', value: { success: true, message: '', code: '' } } });
        return;
      }
      const s = session;
      if (m?.$case === 'taskStarted' || m?.$case === 'taskLog' || m?.$case === 'taskResult') {
        // The store only applies a message to a task of this agent (SQL checks tasks.agent_id);
        // here one about a task never sent to it is logged, as an agent's bug or an attack.
        if (!s.tasks.has(m.value.taskId) && (s.foreign++ < 10 || s.foreign % 1000 === 0)) {
          logger.warn(
            { agent_id: s.agentId, task_id: m.value.taskId.slice(0, 64), kind: m.$case, count: s.foreign },
            'message for a task not sent to this agent',
          );
        }
      }
      runHandler('message', s, () => handlers.onMessage?.(s, msg));
    });
    call.on('end', () => {
      finish('stream_closed');
      if (!call.writableEnded) call.end();
    });
    call.on('error', (err) => {
      logger.debug({ err, peer }, 'agent stream error');
      finish('stream_closed');
    });
    call.on('cancelled', () => finish('stream_closed'));
    call.on('close', () => finish('stream_closed'));
  }

  const impl: AgentServiceServer = {
    connect,
    enroll(call, callback) {
      const peer = call.getPeer();
      enroll(call.request, peer).then(
        (res) => callback(null, res),
        (err: unknown) => {
          const e = toPlatformError(err);
          if (e.code === 'INTERNAL') logger.error({ err, peer }, 'enrollment failed');
          else logger.warn({ peer, code: e.code, reason: e.message }, 'enrollment refused');
          callback(grpcError(e), null);
        },
      );
    },
  };
  server.addService(AgentServiceService, impl);

  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        const addr = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
        const creds = options.pki
          ? // Client certificates are requested but not required: Enroll is called without one.
            // Register checks for a verified one (getAuthContext is empty unless it chains to the CA).
            grpc.experimental.createCertificateProviderServerCredentials(
              staticProvider(options.pki),
              staticProvider(options.pki),
              false,
            )
          : grpc.ServerCredentials.createInsecure();
        server.bindAsync(addr, creds, (err, bound) => {
          if (err) reject(err);
          else resolve(bound);
        });
      });
    },
    async close() {
      shuttingDown = true;
      clearInterval(flushTimer);
      clearInterval(sweepTimer);
      await flushHeartbeats();
      for (const s of [...sessions.values()]) s.end(new PlatformError('SHUTTING_DOWN'), 'platform_shutdown');
      for (const call of calls) endCall(call, new PlatformError('SHUTTING_DOWN'));
      await Promise.all(inflight);
      await store.agents.markNodeOffline(platformNode, 'platform_shutdown').catch((err: unknown) => {
        logger.warn({ err }, 'could not mark agents offline at shutdown');
      });
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
    session: (agentId) => sessions.get(agentId),
    sessionAgentIds: () => [...sessions.keys()],
    get sessionCount() {
      return sessions.size;
    },
    setHandlers(h) {
      handlers = h;
    },
    revoke(agentId) {
      sessions.get(agentId)?.end(new PlatformError('AGENT_REVOKED'), 'revoked');
    },
    outbound() {
      let queued = 0;
      for (const s of waiting) queued += s.outbox.length;
      return { bytes: outboundBytes, queued };
    },
  };
}
