/**
 * One load-generator process for `bench/fleet.ts`: many simulated agents, each
 * on its own gRPC connection (a local subchannel pool, so the platform sees one
 * TCP connection and one HTTP/2 stream per agent, as with real hosts), speaking
 * the real protocol: register, heartbeat at the interval the platform gives,
 * answer every TaskRequest with TaskStarted, one TaskLog and a TaskResult, no
 * spawning. It also creates tasks through the REST API for its own agents, so
 * task creation is spread over several client processes.
 *
 * Adapted from test/support/sim-agent.ts; it keeps counters instead of
 * per-task arrays (10,000 agents x thousands of tasks would be the bench's own
 * memory, not the platform's).
 *
 * Driven over the fork() IPC channel by bench/fleet.ts:
 *   parent -> { cmd: 'connect', address, count, capacity, label, concurrency }
 *          <- { ev: 'connected', ids, failed, ms }
 *   parent -> { cmd: 'create', http, tasks, concurrency }
 *          <- { ev: 'created', ok, errors, ms, firstError }
 *   parent -> { cmd: 'stats' }  <- { ev: 'stats', ...counters }
 *   parent -> { cmd: 'close' }  <- { ev: 'closed' }, then exit
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  AgentServiceClient,
  TaskStatus,
  type AgentMessage,
  type ServerMessage,
} from '@agent-platform/protocol';
import { AUTH_HEADERS } from '../test/support/security.js';

export type SimCommand =
  | { cmd: 'connect'; address: string; count: number; capacity: number; label: string; concurrency: number }
  | { cmd: 'create'; http: string; tasks: number; concurrency: number }
  | { cmd: 'stats' }
  | { cmd: 'close' };

export interface SimStats {
  ev: 'stats';
  agents: number;
  ready: number;
  requests: number;
  results: number;
  acks: number;
  heartbeats: number;
  heartbeatAcks: number;
  streamErrors: number;
  reconnects: number;
  rssBytes: number;
}

export type SimEvent =
  | { ev: 'connected'; ids: string[]; failed: number; ms: number }
  | { ev: 'created'; ok: number; errors: number; ms: number; firstError?: string }
  | SimStats
  | { ev: 'closed' };

const stats = {
  requests: 0,
  results: 0,
  acks: 0,
  heartbeats: 0,
  heartbeatAcks: 0,
  streamErrors: 0,
  reconnects: 0,
};

interface Sim {
  agentId: string;
  ready: boolean;
  close(): void;
}

const sims: Sim[] = [];
let closing = false;

/** Options of the real agent's channel (packages/agent/src/connection), plus a private subchannel pool. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.keepalive_time_ms': 20_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.enable_retries': 0,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
};

function result(taskId: string): AgentMessage {
  const now = new Date();
  return {
    message: {
      $case: 'taskResult',
      value: {
        taskId,
        exitCode: 0,
        stdout: 'hi\n',
        stderr: '',
        completedAt: now,
        status: TaskStatus.TASK_STATUS_SUCCEEDED,
        error: '',
        startedAt: now,
        stdoutBytes: 3,
        stderrBytes: 0,
        stdoutTruncated: false,
        stderrTruncated: false,
        limitsEnforced: [],
        signal: '',
      },
    },
  };
}

/** One simulated agent; resolves `ready` at its first RegisterResponse, reconnects after a stream error. */
function startSim(
  address: string,
  agentId: string,
  capacity: number,
  label: string,
): { sim: Sim; ready: Promise<void> } {
  let client: AgentServiceClient | undefined;
  let call: grpc.ClientDuplexStream<AgentMessage, ServerMessage> | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let firstBeat: NodeJS.Timeout | undefined;
  let retry: NodeJS.Timeout | undefined;
  let resolveReady: () => void = () => undefined;
  let rejectReady: (e: unknown) => void = () => undefined;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  let everReady = false;
  const sim: Sim = {
    agentId,
    ready: false,
    close() {
      clearInterval(heartbeat);
      clearTimeout(firstBeat);
      clearTimeout(retry);
      call?.removeAllListeners();
      call?.on('error', () => undefined);
      call?.cancel();
      client?.close();
    },
  };

  const open = () => {
    client = new AgentServiceClient(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    const c = client.connect();
    call = c;
    const send = (m: AgentMessage) => c.write(m);
    c.on('data', (msg: ServerMessage) => {
      const m = msg.message;
      switch (m?.$case) {
        case 'registerResponse': {
          sim.ready = true;
          everReady = true;
          resolveReady();
          const everyMs = (m.value.heartbeatInterval || 10) * 1000;
          const beat = () => {
            stats.heartbeats++;
            send({
              message: { $case: 'heartbeat', value: { agentId, timestamp: new Date(), runningTasks: 0 } },
            });
          };
          // A random phase: a fleet that has been up a while does not beat in step.
          firstBeat = setTimeout(() => {
            beat();
            heartbeat = setInterval(beat, everyMs);
          }, Math.random() * everyMs);
          return;
        }
        case 'heartbeatAck':
          stats.heartbeatAcks++;
          return;
        case 'taskRequest': {
          stats.requests++;
          const taskId = m.value.taskId;
          send({ message: { $case: 'taskStarted', value: { taskId, startedAt: new Date() } } });
          send({
            message: {
              $case: 'taskLog',
              value: { taskId, output: 'hi\n', isStderr: false, timestamp: new Date(), seq: 1 },
            },
          });
          send(result(taskId));
          stats.results++;
          return;
        }
        case 'resultAck':
          stats.acks++;
          return;
        default:
          return;
      }
    });
    const lost = (err?: unknown) => {
      if (closing) return;
      stats.streamErrors++;
      sim.ready = false;
      clearInterval(heartbeat);
      clearTimeout(firstBeat);
      c.removeAllListeners();
      c.on('error', () => undefined);
      c.cancel();
      client?.close();
      if (!everReady) {
        rejectReady(err ?? new Error('stream ended before registration'));
        return;
      }
      // Like the real agent: back off with jitter, then register again.
      retry = setTimeout(
        () => {
          stats.reconnects++;
          open();
        },
        500 + Math.random() * 1500,
      );
    };
    c.on('error', lost);
    c.on('end', () => lost());
    send({
      message: {
        $case: 'register',
        value: {
          agentId,
          hostname: `sim-${agentId.slice(0, 8)}`,
          os: 'linux',
          arch: 'x64',
          ipAddresses: ['127.0.0.1'],
          version: 'sim',
          labels: { bench: label },
          capacity,
          pendingTaskIds: [],
        },
      },
    });
  };
  open();
  return { sim, ready };
}

async function connect(c: Extract<SimCommand, { cmd: 'connect' }>): Promise<SimEvent> {
  const t0 = performance.now();
  const ids: string[] = [];
  let failed = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: c.concurrency }, async () => {
      while (next < c.count) {
        next++;
        const agentId = randomUUID();
        const { sim, ready } = startSim(c.address, agentId, c.capacity, c.label);
        sims.push(sim);
        try {
          await ready;
          ids.push(agentId);
        } catch {
          failed++;
        }
      }
    }),
  );
  return { ev: 'connected', ids, failed, ms: performance.now() - t0 };
}

/** Creates `tasks` tasks through REST, round-robin over this process's agents, `concurrency` at once. */
async function create(c: Extract<SimCommand, { cmd: 'create' }>): Promise<SimEvent> {
  const ids = sims.map((s) => s.agentId);
  const t0 = performance.now();
  let next = 0;
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  await Promise.all(
    Array.from({ length: c.concurrency }, async () => {
      while (next < c.tasks) {
        const i = next++;
        try {
          const res = await fetch(`${c.http}/api/v1/tasks`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...AUTH_HEADERS },
            body: JSON.stringify({
              agent_id: ids[i % ids.length],
              type: 'shell',
              script: 'echo hi',
              timeout: 60,
            }),
          });
          const text = await res.text();
          if (res.ok) ok++;
          else {
            errors++;
            firstError ??= `${res.status} ${text.slice(0, 200)}`;
          }
        } catch (err) {
          errors++;
          firstError ??= String(err);
        }
      }
    }),
  );
  return { ev: 'created', ok, errors, ms: performance.now() - t0, firstError };
}

function reply(e: SimEvent): void {
  process.send?.(e);
}

process.on('message', (m: SimCommand) => {
  switch (m.cmd) {
    case 'connect':
      void connect(m).then(reply);
      return;
    case 'create':
      void create(m).then(reply);
      return;
    case 'stats':
      reply({
        ev: 'stats',
        agents: sims.length,
        ready: sims.filter((s) => s.ready).length,
        ...stats,
        rssBytes: process.memoryUsage.rss(),
      });
      return;
    case 'close':
      closing = true;
      for (const s of sims) s.close();
      reply({ ev: 'closed' });
      setTimeout(() => process.exit(0), 200);
      return;
  }
});
// The parent went away: do not linger.
process.on('disconnect', () => process.exit(0));
