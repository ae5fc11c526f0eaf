/**
 * The agent daemon: identity from the state directory, the task journal, the
 * executor, and one connection to the platform whose messages the task runner
 * handles.
 *
 *   startAgent: identity ──> journal (LOST for tasks of a dead predecessor) ──> executor
 *               ──> runner ──> connection (registers with the unacknowledged task ids)
 *   stop():     runner.close (cancel tasks, journal their results, wait briefly for acks)
 *               ──> executor.close ──> connection.stop ──> journal.close
 */
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { createAgentConnection, type AgentConnection } from './connection/index.js';
import { createTaskExecutor, type TaskExecutor, type TaskExecutorOptions } from './executor/index.js';
import { snapshotEnv } from './executor/task-command.js';
import { loadOrCreateAgentId } from './identity.js';
import { identityCredentials, loadOrEnroll } from './enrollment/index.js';
import { createTaskJournal, type TaskJournal, type TaskJournalOptions } from './journal/index.js';
import { createTaskRunner, type TaskRunner } from './runner/index.js';

export interface AgentOptions {
  /** Platform gRPC addresses, HOST:PORT, tried in turn. */
  servers: string[];
  /** Where the agent keeps its id and journal (`<stateDir>/journal`); default ./agent-state. */
  stateDir?: string;
  labels?: Record<string, string>;
  /** Tasks run at once (the executor's maxConcurrent); default 5. */
  capacity?: number;
  /** Overrides the platform's heartbeat interval, seconds. */
  heartbeatIntervalSeconds?: number;
  /** Executor settings other than concurrency (timeouts, output budgets, work dir). */
  executor?: Omit<TaskExecutorOptions, 'maxConcurrent' | 'logger'>;
  /** Journal settings other than its directory (tombstone ttl and count). */
  journal?: Omit<TaskJournalOptions, 'dir' | 'logger'>;
  /**
   * How long stop() waits for the platform to acknowledge the results of the
   * tasks it canceled, ms; default 2,000. Unacknowledged ones are re-sent at the next start.
   */
  stopAckTimeoutMs?: number;
  logger?: Logger;
  /**
   * Called for every task request the platform sends, before it is handled
   * (`apctl agent` keeps the task path compiled while tasks keep coming).
   */
  onTaskRequest?: () => void;
  /**
   * Plaintext, no identity: the agent registers with the id in its state
   * directory and the platform must run with --insecure. Default false.
   */
  insecure?: boolean;
  /** Join token for the first start (enrollment); ignored once enrolled. */
  joinToken?: string;
  /** SHA-256 fingerprint of the platform CA, pinned at enrollment. */
  caFingerprint?: string;
  /** The platform CA certificate file, pinned at enrollment. */
  caFile?: string;
  /** Name to check the platform's certificate against instead of the dialled host. */
  tlsServerName?: string;
}

export interface Agent {
  readonly agentId: string;
  readonly connection: AgentConnection;
  readonly journal: TaskJournal;
  readonly executor: TaskExecutor;
  readonly runner: TaskRunner;
  /**
   * Stops the agent and waits until no task process is left: running tasks are
   * canceled (SIGTERM, SIGKILL after their kill grace, 5 s by default), their
   * CANCELED results journaled and sent if connected; then the connection ends.
   * Idempotent.
   */
  stop(): Promise<void>;
}

/** Starts the agent; resolves once the journal is recovered and the connection is dialling. */
export async function startAgent(options: AgentOptions): Promise<Agent> {
  const logger = options.logger ?? pino({ base: { service: 'agent' } });
  const stateDir = path.resolve(options.stateDir ?? './agent-state');
  const capacity = options.capacity ?? 5;
  const identity = options.insecure
    ? undefined
    : await loadOrEnroll({
        stateDir,
        servers: options.servers,
        joinToken: options.joinToken,
        caFingerprint: options.caFingerprint,
        caFile: options.caFile,
        tlsServerName: options.tlsServerName,
        logger: logger.child({ scope: 'enrollment' }),
      });
  const agentId = identity?.agentId ?? (await loadOrCreateAgentId(stateDir));
  const log = logger.child({ agent_id: agentId });
  // Recovery (LOST results, killing leftovers of a dead predecessor) happens
  // here, before the agent registers and can be sent anything.
  const journal = await createTaskJournal({
    ...options.journal,
    dir: path.join(stateDir, 'journal'),
    logger: log.child({ scope: 'journal' }),
  });
  const executor = createTaskExecutor({
    // Tasks inherit the agent's environment as it was at its start.
    baseEnv: snapshotEnv(),
    ...options.executor,
    maxConcurrent: capacity,
    logger: log.child({ scope: 'executor' }),
  });
  // Their directories hold at least the script, in memory where the work directory is a tmpfs.
  await executor.removeLeftovers(journal.lost);
  const runner = createTaskRunner({
    executor,
    journal,
    logger: log.child({ scope: 'runner' }),
    closeAckTimeoutMs: options.stopAckTimeoutMs,
    onTaskRequest: options.onTaskRequest,
  });
  const connection = createAgentConnection({
    servers: options.servers,
    agentId,
    labels: options.labels ?? {},
    capacity,
    heartbeatIntervalSeconds: options.heartbeatIntervalSeconds,
    logger: log.child({ scope: 'connection' }),
    handlers: runner,
    credentials: identity ? identityCredentials(identity) : undefined,
    tlsServerName: options.tlsServerName,
  });
  connection.start();
  log.info({ state_dir: stateDir, servers: options.servers, capacity }, 'agent started');

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    log.info({ running: executor.running, queued: executor.queued }, 'agent stopping');
    // The connection stays up while tasks wind down, so their results can go out now.
    await runner.close();
    await executor.close();
    await connection.stop();
    await journal.close();
    log.info('agent stopped');
  };
  return {
    agentId,
    connection,
    journal,
    executor,
    runner,
    stop() {
      stopping ??= stop();
      return stopping;
    },
  };
}
