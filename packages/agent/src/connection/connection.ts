/**
 * The agent's one stream to the platform, kept up for as long as the agent runs.
 *
 *   IDLE ──start()──> CONNECTING ──register_response──> READY
 *                        ^   │                            │
 *                        │   └──── error / end / silence ─┤
 *                        └──────── BACKOFF <──────────────┘
 *   any ──stop()──> STOPPED
 *
 * Every failure (platform down, stream reset, registration refused, platform
 * silent for 3 heartbeat intervals) leads to BACKOFF: capped exponential delay
 * with full jitter, then the next server address in the list. A session that
 * reached READY resets the backoff.
 */
import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AgentServiceClient, type AgentMessage, type ServerMessage } from '@agent-platform/protocol';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import { hostIpAddresses } from '../identity.js';
import { AGENT_VERSION } from '../version.js';

export type ConnectionState = 'IDLE' | 'CONNECTING' | 'READY' | 'BACKOFF' | 'STOPPED';

/** What the task layer sees of a live session. */
export interface ServerLink {
  /** Queues a message on the stream; false when the session is gone. */
  send(msg: AgentMessage): boolean;
  /** Resolves when the stream can take more (backpressure). */
  drain(): Promise<void>;
}

export interface ConnectionHandlers {
  /** Task ids with unacknowledged results or unfinished runs, sent at registration. */
  pendingTaskIds?(): string[];
  /** Running task count, sent in heartbeats. */
  runningTasks?(): number;
  onReady?(link: ServerLink): void;
  onMessage?(msg: ServerMessage, link: ServerLink): void;
  onDisconnected?(): void;
}

export interface AgentConnectionOptions {
  /** HOST:PORT addresses, tried in turn. */
  servers: string[];
  agentId: string;
  labels: Record<string, string>;
  capacity: number;
  logger: Logger;
  /** Overrides the heartbeat interval the platform asks for, seconds. */
  heartbeatIntervalSeconds?: number;
  /** Milliseconds to wait for the registration answer; default 10,000. */
  registerTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Largest message accepted from the platform, bytes; default 16 MiB. */
  maxReceiveMessageBytes?: number;
  handlers?: ConnectionHandlers;
  /** Channel credentials (mutual TLS from enrollment); plaintext when absent. */
  credentials?: grpc.ChannelCredentials;
  /** Name to check the platform's certificate against instead of the dialled host. */
  tlsServerName?: string;
}

export interface AgentConnection {
  readonly state: ConnectionState;
  /** The platform address of the current or last session. */
  readonly server: string;
  start(): void;
  /** Ends the stream and stops reconnecting. */
  stop(): Promise<void>;
  setHandlers(h: ConnectionHandlers): void;
  /** Resolves at the next READY (for tests and start-up). */
  waitReady(timeoutMs?: number): Promise<void>;
}

class SessionEnded extends Error {}

export function createAgentConnection(options: AgentConnectionOptions): AgentConnection {
  const { logger } = options;
  if (options.servers.length === 0) throw new Error('at least one server address is required');
  let handlers: ConnectionHandlers = options.handlers ?? {};
  let state: ConnectionState = 'IDLE';
  // Start at a random address so a fleet given the same list spreads over the platform processes.
  let serverIndex = Math.floor(Math.random() * options.servers.length);
  let stopped = false;
  let loop: Promise<void> | undefined;
  let abortCurrent: (() => void) | undefined;
  let wakeBackoff: (() => void) | undefined;
  const readyWaiters = new Set<() => void>();

  const setState = (s: ConnectionState, fields: Record<string, unknown> = {}) => {
    if (s === state) return;
    state = s;
    logger.info({ state: s, ...fields }, 'connection state');
    if (s === 'READY') {
      for (const w of readyWaiters) w();
      readyWaiters.clear();
    }
  };

  /** Runs one session to its end. Resolves true if it reached READY. */
  function runSession(address: string): Promise<boolean> {
    return new Promise((resolve) => {
      const client = new AgentServiceClient(
        address,
        options.credentials ?? grpc.credentials.createInsecure(),
        {
          ...(options.tlsServerName ? { 'grpc.ssl_target_name_override': options.tlsServerName } : {}),
          'grpc.keepalive_time_ms': 20_000,
          'grpc.keepalive_timeout_ms': 10_000,
          'grpc.keepalive_permit_without_calls': 1,
          'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? 16 * 1024 * 1024,
          'grpc.enable_retries': 0,
          // Our own loop does backoff; the channel must not add its own on top.
          'grpc.initial_reconnect_backoff_ms': 100,
          'grpc.max_reconnect_backoff_ms': 1000,
        },
      );
      const call = client.connect();
      let ready = false;
      let done = false;
      let heartbeatTimer: NodeJS.Timeout | undefined;
      let silenceTimer: NodeJS.Timeout | undefined;
      let lastHeard = Date.now();
      let intervalMs = 10_000;
      /** Writers waiting for the stream to drain; released on drain and when the session ends. */
      const drainWaiters = new Set<() => void>();
      const releaseDrains = () => {
        for (const r of drainWaiters) r();
        drainWaiters.clear();
      };

      const finish = (why: string, err?: unknown) => {
        if (done) return;
        done = true;
        clearInterval(heartbeatTimer);
        clearInterval(silenceTimer);
        clearTimeout(registerTimer);
        abortCurrent = undefined;
        const e = err as (grpc.ServiceError & { metadata?: grpc.Metadata }) | undefined;
        const code = e?.metadata?.get?.('error-code')[0];
        const fields = { server: address, why, grpc_code: e?.code, error_code: code, details: e?.details };
        if (ready) logger.warn(fields, 'session ended');
        else logger.warn(fields, 'could not open session');
        releaseDrains();
        call.removeAllListeners();
        call.on('error', () => undefined);
        call.cancel();
        client.close();
        if (ready) handlers.onDisconnected?.();
        resolve(ready);
      };
      abortCurrent = () => finish('stopped');

      const link: ServerLink = {
        send(msg) {
          if (done) return false;
          return call.write(msg) || true;
        },
        drain() {
          if (done || !call.writableNeedDrain) return Promise.resolve();
          return new Promise((r) => {
            drainWaiters.add(r);
            call.once('drain', releaseDrains);
          });
        },
      };

      const registerTimer = setTimeout(
        () => finish('no registration answer in time'),
        options.registerTimeoutMs ?? 10_000,
      );

      call.on('data', (msg: ServerMessage) => {
        lastHeard = Date.now();
        const m = msg.message;
        if (!ready) {
          if (m?.$case !== 'registerResponse') return;
          if (!m.value.success) {
            finish(`registration refused: ${m.value.message}`);
            return;
          }
          clearTimeout(registerTimer);
          ready = true;
          intervalMs = (options.heartbeatIntervalSeconds ?? (m.value.heartbeatInterval || 10)) * 1000;
          setState('READY', {
            server: address,
            agent_id: options.agentId,
            heartbeat_interval_s: intervalMs / 1000,
          });
          heartbeatTimer = setInterval(() => {
            link.send({
              message: {
                $case: 'heartbeat',
                value: {
                  agentId: options.agentId,
                  timestamp: new Date(),
                  runningTasks: handlers.runningTasks?.() ?? 0,
                },
              },
            });
          }, intervalMs);
          // A platform that stops answering (SIGSTOP, partition) is as good as gone.
          silenceTimer = setInterval(
            () => {
              if (Date.now() - lastHeard > intervalMs * 3)
                finish('platform silent for 3 heartbeat intervals');
            },
            Math.max(250, intervalMs / 2),
          );
          handlers.onReady?.(link);
          return;
        }
        if (m?.$case === 'heartbeatAck') return;
        handlers.onMessage?.(msg, link);
      });
      call.on('error', (err) => finish('stream error', err));
      call.on('end', () => finish('stream ended by platform'));

      call.write({
        message: {
          $case: 'register',
          value: {
            agentId: options.agentId,
            hostname: os.hostname(),
            os: os.platform(),
            arch: os.arch(),
            ipAddresses: hostIpAddresses(),
            version: AGENT_VERSION,
            labels: options.labels,
            capacity: options.capacity,
            pendingTaskIds: handlers.pendingTaskIds?.() ?? [],
          },
        },
      });
    });
  }

  async function run(): Promise<void> {
    let attempt = 0;
    while (!stopped) {
      const address = options.servers[serverIndex % options.servers.length] ?? '';
      setState('CONNECTING', { server: address });
      const wasReady = await runSession(address);
      if (stopped) break;
      if (wasReady) attempt = 0;
      serverIndex++;
      const delay = backoffDelay(attempt++, options.backoff);
      setState('BACKOFF', { delay_ms: delay });
      await new Promise<void>((r) => {
        const t = setTimeout(r, delay);
        wakeBackoff = () => {
          clearTimeout(t);
          r();
        };
      });
      wakeBackoff = undefined;
    }
  }

  return {
    get state() {
      return state;
    },
    get server() {
      return options.servers[serverIndex % options.servers.length] ?? '';
    },
    start() {
      if (loop) return;
      loop = run().catch((err: unknown) => {
        logger.fatal({ err }, 'connection loop failed');
        throw new SessionEnded('connection loop failed');
      });
    },
    async stop() {
      stopped = true;
      abortCurrent?.();
      wakeBackoff?.();
      await loop?.catch(() => undefined);
      setState('STOPPED');
    },
    setHandlers(h) {
      handlers = h;
    },
    waitReady(timeoutMs = 30_000) {
      if (state === 'READY') return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          readyWaiters.delete(done);
          reject(new Error(`not connected within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(t);
          resolve();
        };
        readyWaiters.add(done);
      });
    },
  };
}
