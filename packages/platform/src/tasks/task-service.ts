/**
 * Task lifecycle: create, dispatch, apply what agents report, cancel, reap.
 *
 *   pending ──dispatch──> dispatched ──TaskStarted──> running ──> succeeded | failed | timed_out | canceled
 *      │                      │                          └── agent offline past grace ──> lost
 *      ├── cancel ──> canceled └── agent restarted without a record of it: dispatched -> pending, running -> lost
 *      └── not delivered before its delivery deadline ──> expired
 *
 * Terminal states never change (every UPDATE is conditional on the current
 * status). Dispatch is a database claim (FOR UPDATE SKIP LOCKED) run by the
 * process that holds the agent's stream, woken by LISTEN/NOTIFY (a trigger on
 * tasks) and, as the guarantee, by a poll every second.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from 'pino';
import {
  TaskStatus,
  taskStatusToName,
  taskTypeFromName,
  type AgentMessage,
  type TaskRequest,
  type TaskResult,
  trace,
} from '@agent-platform/protocol';
import { PlatformError } from '../errors.js';
import type { AgentGateway, AgentSession, SessionHandlers } from '../gateway/index.js';
import type {
  CancelOutcome,
  CreateOptions,
  FollowPage,
  ResultRecord,
  Store,
  TaskListQuery,
  TaskRow,
  TaskSpec,
  TaskSummaryRow,
} from '../store/index.js';
import { createEventWriter, type EventWriter } from './event-writer.js';
import { TASK_LIMITS, validateNewTask, type CreateTaskInput } from './validate.js';

export interface TaskServiceOptions {
  store: Store;
  gateway: AgentGateway;
  logger: Logger;
  platformNode: string;
  /** URL for the LISTEN connection (the pool's URL). */
  databaseUrl: string;
  /** Milliseconds between dispatch polls (the guarantee behind NOTIFY); default 1,000. */
  pollIntervalMs?: number;
  /** Milliseconds between expiry / lost sweeps; default 1,000. */
  reapIntervalMs?: number;
  /** Seconds an agent may stay offline before its in-flight tasks are lost; default 300. */
  lostGraceSeconds?: number;
  /** Bytes of task logs kept per task; default 32 MiB. */
  logBudgetBytes?: number;
  /** PlatformConfig.taskRetentionDays; default 0 (keep every task). */
  taskRetentionDays?: number;
  /** Milliseconds between purges; default 10 minutes. */
  purgeIntervalMs?: number;
}

export interface TaskService {
  /** With `audit`, the new task's audit row is committed with it. */
  create(
    input: CreateTaskInput,
    idempotencyKey?: string,
    audit?: CreateOptions['audit'],
  ): Promise<{ task: TaskRow; created: boolean }>;
  /**
   * One script on many agents: one task per agent, inserted in one statement. With an
   * idempotency key, each agent's task gets `<key>/<agent_id>` and a repeat returns the same tasks.
   */
  createBatch(
    input: Omit<CreateTaskInput, 'agent_id'>,
    target: { agentIds?: string[]; labels?: { key: string; value: string | null }[] },
    idempotencyKey?: string,
    /** Committed with the tasks (one row for the batch) when any is created. */
    audit?: CreateOptions['audit'],
  ): Promise<{ task_id: string; agent_id: string; hostname: string; created: boolean }[]>;
  get(taskId: string): Promise<TaskRow>;
  list(q: TaskListQuery): Promise<TaskSummaryRow[]>;
  cancel(taskId: string, reason: string): Promise<TaskRow>;
  /** followRead of many tasks in one statement; unknown ids are left out. */
  followReadMany(
    items: { taskId: string; sinceSeq: number }[],
    limit: number,
  ): Promise<Map<string, FollowPage>>;
  /** State and chunks after `sinceSeq` in one read (see the store's followRead); TASK_NOT_FOUND if none. */
  followRead(
    taskId: string,
    sinceSeq: number,
    limit: number,
  ): Promise<NonNullable<Awaited<ReturnType<Store['tasks']['followRead']>>>>;
  /** Emits `task` (task id, TaskEventKind) when its logs or state changed on this process. */
  readonly events: EventEmitter;
  readonly handlers: SessionHandlers;
  start(): Promise<void>;
  close(): Promise<void>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const AGENT_TERMINAL = new Set(['succeeded', 'failed', 'timed_out', 'canceled', 'lost']);
/** Largest stdout/stderr summary stored from a result (the agent's default budget is 1 MiB). */
const RESULT_TEXT_MAX = 2 * 1024 * 1024;

/** PostgreSQL text cannot hold NUL; output can. */
function pgText(s: string, max = Number.POSITIVE_INFINITY): string {
  const clean = s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s;
  return clean.length > max ? clean.slice(0, max) : clean;
}

/** The columns of a task that its TaskRequest carries. */
type RequestColumns = Pick<
  TaskRow,
  | 'task_id'
  | 'type'
  | 'script'
  | 'timeout_seconds'
  | 'env'
  | 'args'
  | 'working_dir'
  | 'run_as'
  | 'limits'
  | 'clean_env'
  | 'kill_grace_seconds'
>;

/** A batch's spec as the columns its rows were inserted with (one object for every agent). */
function specColumns(t: TaskSpec): Omit<RequestColumns, 'task_id'> {
  return {
    type: t.type,
    script: t.script,
    timeout_seconds: t.timeoutSeconds,
    env: t.env,
    args: t.args,
    working_dir: t.workingDir,
    run_as: t.runAs,
    limits: t.limits,
    clean_env: t.cleanEnv,
    kill_grace_seconds: t.killGraceSeconds,
  };
}

export function taskRequestFromRow(r: RequestColumns): TaskRequest {
  return {
    taskId: r.task_id,
    type: taskTypeFromName(r.type),
    script: r.script,
    timeout: r.timeout_seconds,
    env: r.env,
    args: r.args,
    workingDir: r.working_dir,
    runAs: r.run_as,
    limits: {
      memoryBytes: r.limits.memory_bytes,
      cpuMillicores: r.limits.cpu_millicores,
      maxProcesses: r.limits.max_processes,
      maxOutputBytes: r.limits.max_output_bytes,
    },
    cleanEnv: r.clean_env,
    killGrace: r.kill_grace_seconds,
  };
}

function resultRecord(agentId: string, r: TaskResult, now = new Date()): ResultRecord | undefined {
  const status = taskStatusToName(r.status);
  if (!UUID.test(r.taskId)) return undefined;
  return {
    taskId: r.taskId,
    agentId,
    status: status && AGENT_TERMINAL.has(status) ? (status as ResultRecord['status']) : 'failed',
    exitCode: r.status === TaskStatus.TASK_STATUS_LOST ? null : r.exitCode,
    signal: r.signal ? pgText(r.signal, 32) : null,
    error:
      status && AGENT_TERMINAL.has(status)
        ? r.error
          ? pgText(r.error, 4096)
          : null
        : `agent reported a non-terminal status ${r.status} in a result`,
    stdout: pgText(r.stdout, RESULT_TEXT_MAX),
    stderr: pgText(r.stderr, RESULT_TEXT_MAX),
    stdoutBytes: Math.max(0, r.stdoutBytes),
    stderrBytes: Math.max(0, r.stderrBytes),
    stdoutTruncated: r.stdoutTruncated || r.stdout.length > RESULT_TEXT_MAX,
    stderrTruncated: r.stderrTruncated || r.stderr.length > RESULT_TEXT_MAX,
    limitsEnforced: r.limitsEnforced.slice(0, 16).map((l) => ({
      name: pgText(l.name, 32),
      mechanism: pgText(l.mechanism, 32),
      value: l.value,
    })),
    // Times of record are the platform's: agents' clocks drift. A task that ended
    // before its agent reported its start (agents fold TaskStarted into the result
    // of short tasks) started the agent's measured run time before now.
    startedAt: r.startedAt
      ? new Date(
          now.getTime() - Math.max(0, (r.completedAt?.getTime() ?? now.getTime()) - r.startedAt.getTime()),
        )
      : null,
    completedAt: now,
    lastSeq: r.lastSeq !== undefined && Number.isSafeInteger(r.lastSeq) && r.lastSeq >= 0 ? r.lastSeq : null,
  };
}

export function createTaskService(options: TaskServiceOptions): TaskService {
  const { store, gateway, logger, platformNode } = options;
  const pollMs = options.pollIntervalMs ?? 1000;
  const reapMs = options.reapIntervalMs ?? 1000;
  const lostGrace = options.lostGraceSeconds ?? 300;
  const retentionDays = options.taskRetentionDays ?? 0;
  const writer: EventWriter = createEventWriter({
    store,
    logger: logger.child({ scope: 'event-writer' }),
    logBudgetBytes: options.logBudgetBytes,
  });
  const events = writer.events;
  const dispatching = new Map<string, boolean>();
  /** Tasks created here whose agent this process holds: their NOTIFY needs no second claim. */
  const kickedHere = new Set<string>();
  let listener: pg.Client | undefined;
  let timers: NodeJS.Timeout[] = [];
  let closed = false;

  const agentLocks = new Map<string, Promise<unknown>>();
  /**
   * Runs `fn` after every earlier one for the same agent. Claims and creates that
   * dispatch at once both count the agent's free slots in their statement's
   * snapshot; run one at a time they never overfill it. (Only the process holding
   * the agent's stream does either.)
   */
  function withAgentLock<T>(agentId: string, fn: () => Promise<T>): Promise<T> {
    return withAgentsLock([agentId], fn);
  }

  /** The lock of withAgentLock, for several agents at once (the claim of a batch). */
  function withAgentsLock<T>(agentIds: string[], fn: () => Promise<T>): Promise<T> {
    const prev = Promise.all(agentIds.map((id) => agentLocks.get(id) ?? Promise.resolve()));
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    for (const id of agentIds) agentLocks.set(id, settled);
    void settled.then(() => {
      for (const id of agentIds) if (agentLocks.get(id) === settled) agentLocks.delete(id);
    });
    return next;
  }

  /** Claims and sends pending tasks of many agents held here, in one statement. */
  async function dispatchMany(agentIds: string[]): Promise<void> {
    const sessions = new Map<string, AgentSession>();
    for (const id of agentIds) {
      const s = gateway.session(id);
      if (s) sessions.set(id, s);
    }
    if (sessions.size === 0 || closed) return;
    const ids = [...sessions.keys()];
    for (const id of ids) maybePending.add(id);
    const rows = await withAgentsLock(ids, async () => {
      const claimed = await store.tasks.claimMany(
        [...sessions.values()].map((s) => ({ agentId: s.agentId, sessionId: s.sessionId })),
        platformNode,
      );
      for (const row of claimed) {
        const s = sessions.get(row.agent_id);
        if (s) send(s, row);
      }
      return claimed;
    });
    if (rows.length > 0) logger.debug({ agents: ids.length, count: rows.length }, 'tasks dispatched');
  }

  function send(session: AgentSession, row: TaskRow): void {
    sendRequest(session, taskRequestFromRow(row));
  }

  function sendRequest(session: AgentSession, request: TaskRequest): void {
    const taskId = request.taskId;
    if (session.send({ message: { $case: 'taskRequest', value: request } })) {
      trace('p-sent', taskId);
      events.emit('task', taskId, 'progress');
      return;
    }
    // The stream closed under us: the agent never got it, so it may go to the next session.
    store.tasks.undispatch(taskId).then(
      () => events.emit('task', taskId, 'progress'),
      (err: unknown) => logger.warn({ err, task_id: taskId }, 'cannot return an unsent task to pending'),
    );
  }

  /** Claims and sends the agent's pending tasks; concurrent calls for one agent coalesce. */
  async function dispatchFor(agentId: string): Promise<void> {
    if (dispatching.has(agentId)) {
      dispatching.set(agentId, true);
      return;
    }
    try {
      do {
        dispatching.set(agentId, false);
        const session = gateway.session(agentId);
        if (!session || closed) break;
        const { rows, more } = await withAgentLock(agentId, async () => {
          const claimed = await store.tasks.claim(agentId, session.sessionId, platformNode);
          for (const row of claimed.rows) send(session, row);
          return claimed;
        });
        if (rows.length > 0) logger.debug({ agent_id: agentId, count: rows.length }, 'tasks dispatched');
        // Nothing is left waiting (a task queued meanwhile asks for another round).
        if (!more && !dispatching.get(agentId)) maybePending.delete(agentId);
      } while (dispatching.get(agentId));
    } finally {
      dispatching.delete(agentId);
    }
  }

  /**
   * Agents held here that may have pending tasks: set by every reason to claim
   * (a queued create, NOTIFY, registration, the poll), cleared when a claim
   * finds nothing. A result claims only for these, so an agent with nothing
   * queued costs no statement per result. The poll is the guarantee either way.
   */
  const maybePending = new Set<string>();
  /** Results applied per agent held here (a counter: see create). */
  const resultsApplied = new Map<string, number>();

  /**
   * Agents to claim for, gathered over one turn of the event loop: NOTIFYs of
   * tasks created elsewhere (another platform process, a direct INSERT) arrive
   * one per task, and with many agents each gets one or two. Claimed together,
   * they cost one statement instead of one each (bench:fleet, SQL path).
   */
  const kicked = new Set<string>();
  let kickScheduled = false;

  function kick(agentId: string): void {
    maybePending.add(agentId);
    kicked.add(agentId);
    if (kickScheduled) return;
    kickScheduled = true;
    setImmediate(() => {
      kickScheduled = false;
      const ids = [...kicked];
      kicked.clear();
      if (ids.length === 1) {
        const id = ids[0] ?? '';
        dispatchFor(id).catch((err: unknown) => logger.warn({ err, agent_id: id }, 'dispatch failed'));
      } else {
        // Claims up to each agent's free slots; one left with more queued stays in
        // maybePending, so its next result claims again.
        dispatchMany(ids).catch((err: unknown) =>
          logger.warn({ err, agents: ids.length }, 'dispatch failed'),
        );
      }
    });
  }

  function sendCancel(session: AgentSession, taskId: string, reason: string | null): void {
    session.send({ message: { $case: 'taskCancel', value: { taskId, reason: reason ?? 'canceled' } } });
  }

  async function poll(): Promise<void> {
    const ids = gateway.sessionAgentIds();
    if (ids.length === 0) return;
    const pending = await store.tasks.agentsWithPending(ids);
    if (pending.length > 1) await dispatchMany(pending);
    else for (const id of pending) kick(id);
    // A cancel whose NOTIFY was missed, or that the agent did not act on yet, is sent again.
    for (const c of await store.tasks.pendingCancels(ids, 2000)) {
      const s = gateway.session(c.agent_id);
      if (s) sendCancel(s, c.task_id, c.cancel_reason);
    }
  }

  async function reap(): Promise<void> {
    const expired = await store.tasks.expire();
    const lost = await store.tasks.loseOnOfflineAgents(lostGrace);
    for (const id of [...expired, ...lost]) events.emit('task', id, 'output');
    if (expired.length + lost.length > 0)
      logger.info({ expired: expired.length, lost: lost.length }, 'tasks reaped');
  }

  async function listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: options.databaseUrl,
      application_name: 'agent-platform-listen',
    });
    client.on('notification', (n) => {
      const [kind, agentId, taskId] = (n.payload ?? '').split(':');
      if (!agentId) return;
      const session = gateway.session(agentId);
      if (!session) return;
      if (kind === 'pending') {
        // Already dispatched at creation by this process: skip the redundant claim.
        if (taskId && kickedHere.delete(taskId)) return;
        kick(agentId);
      } else if (kind === 'cancel' && taskId) sendCancel(session, taskId, 'canceled by request');
    });
    client.on('error', (err) => {
      logger.warn({ err }, 'LISTEN connection failed; polling covers until it is back');
      void client.end().catch(() => undefined);
      if (listener === client) listener = undefined;
      if (!closed) setTimeout(() => void listen().catch(() => undefined), 1000).unref();
    });
    await client.connect();
    await client.query('listen ap_tasks');
    listener = client;
  }

  const handlers: SessionHandlers = {
    async onRegistered(session, pendingTaskIds) {
      const known = pendingTaskIds.filter((id) => UUID.test(id));
      const [requeued, lost] = await store.tasks.reconcile(session.agentId, known);
      if (requeued.length + lost.length > 0) {
        logger.info(
          { agent_id: session.agentId, requeued, lost },
          'in-flight tasks reconciled at registration',
        );
      }
      for (const id of requeued) events.emit('task', id, 'progress');
      for (const id of lost) events.emit('task', id, 'output');
      kick(session.agentId);
    },
    async onMessage(session, msg: AgentMessage) {
      const m = msg.message;
      switch (m?.$case) {
        case 'taskStarted':
          trace('p-started-rx', m.value.taskId);
          if (UUID.test(m.value.taskId))
            writer.started({ taskId: m.value.taskId, agentId: session.agentId, at: new Date() });
          return;
        case 'taskLog': {
          const l = m.value;
          if (!UUID.test(l.taskId) || !Number.isSafeInteger(l.seq) || l.seq < 1) return;
          writer.log({
            taskId: l.taskId,
            agentId: session.agentId,
            seq: l.seq,
            stream: l.isStderr ? 'stderr' : 'stdout',
            output: pgText(l.output, 1024 * 1024),
            ts: new Date(),
          });
          return;
        }
        case 'taskResult': {
          trace('p-result-rx', m.value.taskId);
          const rec = resultRecord(session.agentId, m.value);
          if (!rec) {
            logger.warn(
              { agent_id: session.agentId, task_id: m.value.taskId.slice(0, 64) },
              'result with a malformed task id ignored',
            );
            return;
          }
          try {
            await writer.result(rec);
          } catch (err) {
            // The agent re-sends unacknowledged results when it reconnects, so end the
            // stream rather than leave the result waiting for a reconnect that may never come.
            logger.warn(
              { err, agent_id: session.agentId, task_id: rec.taskId },
              'result not stored; ending the session',
            );
            session.end(
              new PlatformError('INTERNAL', 'result could not be stored; reconnect and send it again'),
              'result_not_stored',
            );
            return;
          }
          trace('p-result-stored', rec.taskId);
          session.send({ message: { $case: 'resultAck', value: { taskId: rec.taskId } } });
          // A slot is free: claim, if anything may be waiting.
          resultsApplied.set(session.agentId, (resultsApplied.get(session.agentId) ?? 0) + 1);
          if (maybePending.has(session.agentId)) kick(session.agentId);
          return;
        }
        default:
          return;
      }
    },
  };

  return {
    events,
    handlers,
    async create(input, idempotencyKey, audit) {
      const t = validateNewTask(input);
      if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > 200)) {
        throw new PlatformError('INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key must be 1-200 characters');
      }
      const row = { ...t, taskId: randomUUID(), idempotencyKey: idempotencyKey ?? null };
      trace('p-create', row.taskId);
      try {
        const session = gateway.session(t.agentId);
        if (!session) {
          const o = await store.tasks.create(row, { audit });
          return { task: o.task, created: o.created };
        }
        // This process holds the agent's stream: insert the task already dispatched
        // when the agent has room, and send it as soon as it is committed.
        let resultsBefore = 0;
        const out = await withAgentLock(t.agentId, async () => {
          resultsBefore = resultsApplied.get(t.agentId) ?? 0;
          const o = await store.tasks.create(row, {
            audit,
            dispatch: { sessionId: session.sessionId, platformNode },
          });
          trace('p-committed', row.taskId);
          if (o.created && o.task.status === 'dispatched') send(session, o.task);
          return o;
        });
        if (out.created && out.task.status === 'pending') {
          // Its NOTIFY would only make us claim again.
          kickedHere.add(out.task.task_id);
          if (kickedHere.size > 10_000) kickedHere.clear(); // only an optimisation; the claim is idempotent
          // A full agent gets it when a result frees a slot (a result claims when
          // maybePending says so), so a claim now would find nothing — unless a result
          // was applied after the statement's snapshot and before maybePending was set
          // here, whose claim would have been skipped. One queued behind an older task
          // is claimed now.
          maybePending.add(t.agentId);
          if (!out.agentFull || (resultsApplied.get(t.agentId) ?? 0) !== resultsBefore) kick(t.agentId);
        }
        return { task: out.task, created: out.created };
      } catch (err) {
        if ((err as { code?: string }).code === '23503') {
          throw new PlatformError('AGENT_NOT_FOUND', `agent ${input.agent_id} not found`);
        }
        throw err;
      }
    },
    async createBatch(input, target, idempotencyKey, audit) {
      const byLabel = target.labels
        ? (await store.agents.list({ labels: target.labels, limit: TASK_LIMITS.maxBatchAgents + 1 })).map(
            (a) => a.agent_id,
          )
        : [];
      const ids = [...new Set([...(target.agentIds ?? []), ...byLabel])];
      if (ids.length === 0)
        throw new PlatformError(
          'VALIDATION_FAILED',
          'no agents: give agent_ids or a label selector that matches',
        );
      if (ids.length > TASK_LIMITS.maxBatchAgents) {
        throw new PlatformError(
          'VALIDATION_FAILED',
          `a batch may target at most ${TASK_LIMITS.maxBatchAgents} agents, got ${ids.length}`,
        );
      }
      const t = validateNewTask({ ...input, agent_id: ids[0] ?? '' });
      if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > 200)) {
        throw new PlatformError('INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key must be 1-200 characters');
      }
      // Agents whose streams this process holds get theirs inserted dispatched when they
      // have room (one statement, no claim after it), and sent as soon as it commits.
      const held = new Map<string, AgentSession>();
      for (const id of ids) {
        const session = gateway.session(id);
        if (session) held.set(id, session);
      }
      const { agentId: _first, ...spec } = t;
      let out;
      try {
        out = await withAgentsLock([...held.keys()], async () => {
          const rows = await store.tasks.createMany(
            spec,
            ids.map((agentId) => ({
              agentId,
              taskId: randomUUID(),
              idempotencyKey: idempotencyKey === undefined ? null : `${idempotencyKey}/${agentId}`,
              sessionId: held.get(agentId)?.sessionId ?? null,
            })),
            platformNode,
            audit,
          );
          const columns = specColumns(spec);
          for (const r of rows) {
            trace('p-committed', r.task_id);
            const session = held.get(r.agent_id);
            if (r.created && r.status === 'dispatched' && session) {
              sendRequest(session, taskRequestFromRow({ ...columns, task_id: r.task_id }));
            }
          }
          return rows;
        });
      } catch (err) {
        // An unknown agent fails the statement's foreign key, and nothing of the batch
        // is written; only then are the agents looked up, to name the missing ones.
        if ((err as { code?: string }).code === '23503') {
          const known = new Set((await store.agents.existing(ids)).map((a) => a.agent_id));
          const missing = ids.filter((id) => !known.has(id));
          throw new PlatformError(
            'AGENT_NOT_FOUND',
            missing.length > 0
              ? `${missing.length} agent(s) not found: ${missing.slice(0, 10).join(', ')}`
              : 'an agent of the batch was deleted while it was created',
          );
        }
        throw err;
      }
      // Queued behind older tasks, or the agent was full: claimed together when this
      // process holds the agent (a claim finds nothing while it stays full).
      const queuedHere = out.filter((r) => r.created && r.status === 'pending' && held.has(r.agent_id));
      for (const r of queuedHere) kickedHere.add(r.task_id);
      if (kickedHere.size > 10_000) kickedHere.clear();
      if (queuedHere.length > 0) {
        dispatchMany(queuedHere.map((r) => r.agent_id)).catch((err: unknown) => {
          logger.warn({ err }, 'batch dispatch failed; the poll retries');
        });
      }
      // Sent in the create: let those writes reach their sockets before the answer is
      // built (HTTP/2 streams flush in a native immediate, which runs first).
      if (out.some((r) => r.created && r.status === 'dispatched')) await new Promise((r) => setImmediate(r));
      // In the order the agents were named (or listed by label).
      const position = new Map(ids.map((id, k) => [id, k]));
      return out
        .map((r) => ({ task_id: r.task_id, agent_id: r.agent_id, hostname: r.hostname, created: r.created }))
        .sort((x, y) => (position.get(x.agent_id) ?? 0) - (position.get(y.agent_id) ?? 0));
    },
    async get(taskId) {
      if (!UUID.test(taskId))
        throw new PlatformError('TASK_NOT_FOUND', `task ${taskId.slice(0, 64)} not found`);
      const row = await store.tasks.get(taskId);
      if (!row) throw new PlatformError('TASK_NOT_FOUND', `task ${taskId} not found`);
      return row;
    },
    list: (q) => store.tasks.list(q),
    async cancel(taskId, reason) {
      if (!UUID.test(taskId))
        throw new PlatformError('TASK_NOT_FOUND', `task ${taskId.slice(0, 64)} not found`);
      const out: CancelOutcome = await store.tasks.cancel(taskId, reason);
      switch (out.kind) {
        case 'missing':
          throw new PlatformError('TASK_NOT_FOUND', `task ${taskId} not found`);
        case 'finished':
          throw new PlatformError(
            'TASK_ALREADY_FINISHED',
            `task ${taskId} already finished: ${out.task.status}`,
          );
        case 'canceled':
          events.emit('task', taskId, 'output');
          return out.task;
        case 'requested': {
          // The trigger's NOTIFY reaches the process holding the stream; if that is us, send now.
          const s = gateway.session(out.task.agent_id);
          if (s) sendCancel(s, taskId, reason);
          return out.task;
        }
      }
    },
    followReadMany: (items, limit) =>
      store.tasks.followReadMany(
        items.filter((i) => UUID.test(i.taskId)),
        limit,
      ),
    async followRead(taskId, sinceSeq, limit) {
      const r = UUID.test(taskId) ? await store.tasks.followRead(taskId, sinceSeq, limit) : undefined;
      if (!r) throw new PlatformError('TASK_NOT_FOUND', `task ${taskId.slice(0, 64)} not found`);
      return r;
    },
    async start() {
      await listen().catch((err: unknown) =>
        logger.warn({ err }, 'LISTEN failed; dispatch relies on polling'),
      );
      const every = (ms: number, what: string, fn: () => Promise<void>) => {
        let running = false;
        const t = setInterval(() => {
          if (running || closed) return;
          running = true;
          fn()
            .catch((err: unknown) => logger.warn({ err }, `${what} failed`))
            .finally(() => (running = false));
        }, ms);
        t.unref();
        timers.push(t);
      };
      every(pollMs, 'dispatch poll', poll);
      every(reapMs, 'reaper', reap);
      if (retentionDays > 0) {
        every(options.purgeIntervalMs ?? 10 * 60 * 1000, 'purge', async () => {
          const gone = await store.tasks.purge(retentionDays);
          if (gone.tasks > 0 || gone.scripts > 0)
            logger.info(
              { ...gone, retention_days: retentionDays },
              'purged finished tasks past their retention',
            );
        });
      }
    },
    async close() {
      closed = true;
      for (const t of timers) clearInterval(t);
      timers = [];
      await writer.close();
      await listener?.end().catch(() => undefined);
    },
  };
}

export { TASK_LIMITS };
