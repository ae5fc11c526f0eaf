/**
 * A simulated agent speaking the real protocol over a real gRPC stream, with
 * no process spawning: it answers each TaskRequest with TaskStarted, one
 * TaskLog per configured line and a TaskResult. Used where the platform is
 * under test (dispatch, multi-process, load), never as a stand-in for the
 * agent's own behaviour.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  AgentServiceClient,
  TaskStatus,
  type AgentMessage,
  type ServerMessage,
  type TaskRequest,
} from '@agent-platform/protocol';

export interface SimAgentOptions {
  address: string;
  agentId?: string;
  labels?: Record<string, string>;
  capacity?: number;
  /** Lines of stdout sent per task; default 1. */
  lines?: number;
  /** Delay before the result, ms (0 = answer at once). */
  runMs?: number;
  /** When false, the agent never answers task requests (to test cancel and capacity). */
  respond?: boolean;
  pendingTaskIds?: string[];
  /**
   * Like a real agent for a task that ends within its start-report delay: no
   * TaskStarted, and the result says the task ran `ranMs`; the agent's clock is
   * `skewMs` off the platform's.
   */
  foldStarted?: { ranMs: number; skewMs: number };
  /** The result says which seq its last chunk had, as a real agent's does; default true. */
  reportLastSeq?: boolean;
}

export interface SimAgent {
  readonly agentId: string;
  /** Every TaskRequest received, in order (duplicates included). */
  readonly received: TaskRequest[];
  readonly cancels: string[];
  readonly acks: string[];
  /** Messages in the order they arrived: `request <id>`, `cancel <id>`, `ack <id>`, `heartbeat-ack`. */
  readonly order: string[];
  ready: Promise<void>;
  /** Resolves with the status the stream ended with (error or not). */
  ended: Promise<{ code: number; details: string }>;
  send(msg: AgentMessage): void;
  /** Sends a result for a task (used when respond=false). */
  finish(taskId: string, exitCode?: number): void;
  /** Stops reading the stream (HTTP/2 flow control then holds the platform's writes), until resume. */
  pause(): void;
  resume(): void;
  close(): void;
}

export function startSimAgent(o: SimAgentOptions): SimAgent {
  const agentId = o.agentId ?? randomUUID();
  const client = new AgentServiceClient(o.address, grpc.credentials.createInsecure());
  const call = client.connect();
  const received: TaskRequest[] = [];
  const cancels: string[] = [];
  const acks: string[] = [];
  const order: string[] = [];
  let seqs = new Map<string, number>();
  const send = (msg: AgentMessage) => {
    call.write(msg);
  };
  const finish = (taskId: string, exitCode = 0) => {
    const now = new Date(Date.now() + (o.foldStarted?.skewMs ?? 0));
    send({
      message: {
        $case: 'taskResult',
        value: {
          taskId,
          exitCode,
          stdout: 'ok\n',
          stderr: '',
          completedAt: now,
          status: exitCode === 0 ? TaskStatus.TASK_STATUS_SUCCEEDED : TaskStatus.TASK_STATUS_FAILED,
          error: '',
          startedAt: new Date(now.getTime() - (o.foldStarted?.ranMs ?? 0)),
          stdoutBytes: 3,
          stderrBytes: 0,
          stdoutTruncated: false,
          stderrTruncated: false,
          limitsEnforced: [],
          signal: '',
          lastSeq: o.reportLastSeq === false ? undefined : (seqs.get(taskId) ?? 0),
        },
      },
    });
  };
  const ready = new Promise<void>((resolve, reject) => {
    call.on('data', (msg: ServerMessage) => {
      const m = msg.message;
      if (m?.$case === 'registerResponse') resolve();
      else if (m?.$case === 'taskRequest') {
        const t = m.value;
        received.push(t);
        order.push(`request ${t.taskId}`);
        if (o.respond === false) return;
        const run = () => {
          if (!o.foldStarted)
            send({ message: { $case: 'taskStarted', value: { taskId: t.taskId, startedAt: new Date() } } });
          for (let i = 0; i < (o.lines ?? 1); i++) {
            const seq = (seqs.get(t.taskId) ?? 0) + 1;
            seqs.set(t.taskId, seq);
            send({
              message: {
                $case: 'taskLog',
                value: {
                  taskId: t.taskId,
                  output: `line ${i}\n`,
                  isStderr: i % 2 === 1,
                  timestamp: new Date(),
                  seq,
                },
              },
            });
          }
          finish(t.taskId);
        };
        if (o.runMs) setTimeout(run, o.runMs);
        else run();
      } else if (m?.$case === 'taskCancel') {
        cancels.push(m.value.taskId);
        order.push(`cancel ${m.value.taskId}`);
      } else if (m?.$case === 'heartbeatAck') {
        order.push('heartbeat-ack');
      } else if (m?.$case === 'resultAck') {
        acks.push(m.value.taskId);
        order.push(`ack ${m.value.taskId}`);
        seqs.delete(m.value.taskId);
      }
    });
    call.on('error', reject);
  });
  ready.catch(() => undefined);
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    call.on('error', (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details }));
    call.on('status', (st: grpc.StatusObject) => resolve({ code: st.code, details: st.details }));
  });
  send({
    message: {
      $case: 'register',
      value: {
        agentId,
        hostname: 'sim',
        os: 'linux',
        arch: 'x64',
        ipAddresses: ['127.0.0.1'],
        version: 'sim',
        labels: o.labels ?? {},
        capacity: o.capacity ?? 5,
        pendingTaskIds: o.pendingTaskIds ?? [],
      },
    },
  });
  return {
    agentId,
    received,
    cancels,
    acks,
    order,
    ready,
    ended,
    send,
    finish,
    pause: () => call.pause(),
    resume: () => call.resume(),
    close() {
      seqs = new Map();
      call.cancel();
      client.close();
    },
  };
}
