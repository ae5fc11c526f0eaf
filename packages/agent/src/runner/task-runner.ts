/**
 * Turns the platform's task messages into executor runs, keeping the journal's
 * promises: a task id runs at most once, its result is re-sent until acknowledged.
 *
 *   TaskRequest ──known id?──yes──> completed: re-send result │ accepted: ignore │ acknowledged: ignore
 *        │ no
 *        ├── invalid / shutting down ──> FAILED result (journaled, sent)
 *        └── journal.accept (on disk) ──> executor.start ──> TaskStarted, TaskLog…
 *                                              └── result ──> TaskResult + journal.complete
 *   ResultAck ──> journal.ack      onReady ──> re-send recent output, then every unacknowledged result
 *
 * Results are at least once. Output is kept in memory per task, the last
 * `logReplayBytes` of it (`logReplayTotalBytes` over all tasks), until the
 * task's result is acknowledged, and every
 * new link gets it again first (the platform stores a (task, seq) once): what a
 * platform crash lost in flight and what the task printed while the agent had no
 * platform reaches the log, within that bound. Older output of a long
 * disconnect, and output held by an agent that itself restarts, is gone from the
 * log; the result still keeps its head and tail.
 */
import type { Logger } from 'pino';
import { pino } from 'pino';
import {
  TaskStatus,
  taskStatusFromName,
  taskTypeToName,
  type AgentMessage,
  type ServerMessage,
  type TaskLog,
  type TaskRequest,
  type TaskResult,
  trace,
} from '@agent-platform/protocol';
import type { ConnectionHandlers, ServerLink } from '../connection/index.js';
import {
  ExecutorError,
  type ExecResult,
  type RunningTask,
  type TaskExecutor,
  type TaskSpec,
} from '../executor/index.js';
import { JournalError, TASK_ID_ENV, type TaskJournal } from '../journal/index.js';

export interface TaskRunnerOptions {
  executor: TaskExecutor;
  journal: TaskJournal;
  /** Default: a silent logger. */
  logger?: Logger;
  /** Kill grace for requests that give none (0), seconds; default 5. */
  defaultKillGraceSeconds?: number;
  /** How long close() waits for the platform to acknowledge the last results, ms; default 2,000. */
  closeAckTimeoutMs?: number;
  /**
   * How long after its spawn a task's TaskStarted waits, ms; default 20. A task
   * that ends sooner sends none, output or not: its TaskResult carries the start
   * time, which saves a message and a database write per short task (`uptime`,
   * `echo hi`). 0 = at once.
   */
  startedReportDelayMs?: number;
  /**
   * Output kept per task for re-sending on a new link, bytes (UTF-16 units of the
   * decoded text); the oldest chunks go first. Default 1 MiB. 0 = none kept.
   */
  logReplayBytes?: number;
  /** Output kept over all tasks, bytes; the task holding the most gives up its oldest chunks. Default 16 MiB. */
  logReplayTotalBytes?: number;
  /** Called for every task request, before it is handled. */
  onTaskRequest?: () => void;
}

/** The connection's handlers, plus an orderly stop. */
export interface TaskRunner extends Required<ConnectionHandlers> {
  /** Tasks this runner started and that have not produced a result. */
  readonly active: number;
  /**
   * Refuses new requests, cancels running tasks (reason 'agent stopping': SIGTERM,
   * SIGKILL after their kill grace), waits until their results are journaled, then
   * waits up to `closeAckTimeoutMs` for the platform to acknowledge them.
   * Results not acknowledged by then are re-sent at the next start.
   */
  close(): Promise<void>;
}

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A result for a task that never ran: FAILED (refused) or CANCELED (canceled before it started). */
export function notRunResult(
  taskId: string,
  error: string,
  status: TaskStatus = TaskStatus.TASK_STATUS_FAILED,
  now = new Date(),
): TaskResult {
  return {
    taskId,
    exitCode: -1,
    stdout: '',
    stderr: '',
    completedAt: now,
    status,
    error,
    startedAt: undefined,
    stdoutBytes: 0,
    stderrBytes: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    limitsEnforced: [],
    signal: '',
    lastSeq: 0,
  };
}

/** The wire form of an executor result. */
export function toTaskResult(r: ExecResult): TaskResult {
  return {
    taskId: r.taskId,
    exitCode: r.exitCode,
    stdout: r.stdout,
    stderr: r.stderr,
    completedAt: r.completedAt,
    status: taskStatusFromName(r.status),
    error: r.error,
    startedAt: r.startedAt,
    stdoutBytes: r.stdoutBytes,
    stderrBytes: r.stderrBytes,
    stdoutTruncated: r.stdoutTruncated,
    stderrTruncated: r.stderrTruncated,
    limitsEnforced: r.limitsEnforced.map((l) => ({ name: l.name, mechanism: l.mechanism, value: l.value })),
    signal: r.signal,
    lastSeq: r.lastSeq,
  };
}

/**
 * The executor's form of a request, or a reason to refuse it. Every task's
 * environment carries its id in {@link TASK_ID_ENV}, so that a restarted agent
 * can find and kill what an earlier run left behind.
 */
export function toTaskSpec(req: TaskRequest, defaultKillGraceSeconds = 5): TaskSpec | string {
  const type = taskTypeToName(req.type);
  if (!type) return `unsupported task type ${req.type}`;
  // The platform refuses an empty script, so one here is a sender's bug (a
  // process that could not read it back): never "run" it as a success.
  if (req.script.trim() === '') return 'empty script';
  if (req.timeout < 0) return `invalid timeout ${req.timeout}`;
  if (req.killGrace < 0) return `invalid kill grace ${req.killGrace}`;
  return {
    taskId: req.taskId,
    type,
    script: req.script,
    args: req.args,
    env: { ...req.env, [TASK_ID_ENV]: req.taskId },
    cleanEnv: req.cleanEnv,
    workingDir: req.workingDir,
    runAs: req.runAs,
    timeoutSeconds: req.timeout,
    killGraceSeconds: req.killGrace === 0 ? defaultKillGraceSeconds : req.killGrace,
    limits: {
      memoryBytes: req.limits?.memoryBytes ?? 0,
      cpuMillicores: req.limits?.cpuMillicores ?? 0,
      maxProcesses: req.limits?.maxProcesses ?? 0,
      maxOutputBytes: req.limits?.maxOutputBytes ?? 0,
    },
  };
}

/** A task's recent output messages, oldest first. */
class ReplayLog {
  private msgs: TaskLog[] = [];
  private head = 0;
  bytes = 0;

  /** Adds a message, drops the oldest beyond `budget`; returns the change in bytes. */
  add(msg: TaskLog, budget: number): number {
    const before = this.bytes;
    this.msgs.push(msg);
    this.bytes += msg.output.length;
    while (this.bytes > budget && this.head < this.msgs.length) this.dropOldest();
    return this.bytes - before;
  }

  /** Drops the oldest message; returns its bytes (0 when empty). */
  dropOldest(): number {
    if (this.head >= this.msgs.length) return 0;
    const n = this.msgs[this.head]!.output.length;
    this.msgs[this.head++] = undefined as unknown as TaskLog;
    this.bytes -= n;
    if (this.head > 1024 && this.head * 2 > this.msgs.length) {
      this.msgs = this.msgs.slice(this.head);
      this.head = 0;
    }
    return n;
  }

  *[Symbol.iterator](): IterableIterator<TaskLog> {
    for (let i = this.head; i < this.msgs.length; i++) yield this.msgs[i]!;
  }
}

/**
 * Output kept for re-sending on a new link: per task the newest `perTask` bytes
 * (UTF-16 units of the decoded text), and all tasks together at most `total`;
 * over that, the task holding the most gives up its oldest message.
 */
export class ReplayStore {
  private readonly logs = new Map<string, ReplayLog>();
  private kept = 0;

  constructor(
    private readonly perTask: number,
    private readonly total: number,
  ) {}

  /** Bytes kept over all tasks. */
  get bytes(): number {
    return this.kept;
  }

  add(msg: TaskLog): void {
    if (this.perTask <= 0 || this.total <= 0) return;
    let log = this.logs.get(msg.taskId);
    if (!log) this.logs.set(msg.taskId, (log = new ReplayLog()));
    this.kept += log.add(msg, this.perTask);
    while (this.kept > this.total) {
      let largest: ReplayLog | undefined;
      for (const l of this.logs.values()) if (!largest || l.bytes > largest.bytes) largest = l;
      const freed = largest?.dropOldest() ?? 0;
      if (freed === 0) break;
      this.kept -= freed;
    }
  }

  delete(taskId: string): void {
    const log = this.logs.get(taskId);
    if (!log) return;
    this.kept -= log.bytes;
    this.logs.delete(taskId);
  }

  /** Task ids with their kept messages, oldest first. */
  entries(): IterableIterator<[string, Iterable<TaskLog>]> {
    return this.logs.entries();
  }
}

interface ActiveTask {
  task: RunningTask;
  startedAt?: Date;
  /** A taskCancel arrived for it. */
  canceled?: boolean;
  /** TaskStarted went out (on some link). */
  startedSent?: boolean;
  /** Sends TaskStarted after startedReportDelayMs unless the result or output came first. */
  startedTimer?: NodeJS.Timeout;
}

export function createTaskRunner(options: TaskRunnerOptions): TaskRunner {
  const { executor, journal } = options;
  const log = options.logger ?? pino({ level: 'silent' });
  const defaultKillGrace = options.defaultKillGraceSeconds ?? 5;
  const closeAckTimeoutMs = options.closeAckTimeoutMs ?? 2000;
  const startedDelayMs = options.startedReportDelayMs ?? 20;
  /** Output of tasks whose result is not acknowledged yet, re-sent first on every new link. */
  const replays = new ReplayStore(
    options.logReplayBytes ?? 1024 * 1024,
    options.logReplayTotalBytes ?? 16 * 1024 * 1024,
  );

  let link: ServerLink | undefined;
  let closing = false;
  const active = new Map<string, ActiveTask>();
  const inflight = new Set<Promise<void>>();
  /**
   * Output readers waiting for the link to drain. The connection drops its stream
   * listeners when a session ends, so a drain may never resolve on its own: a
   * link change releases them all, or a dead session would stall every task.
   */
  const drainWaiters = new Set<() => void>();

  const releaseDrains = () => {
    for (const release of [...drainWaiters]) release();
  };

  const waitDrain = (l: ServerLink): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = () => {
        drainWaiters.delete(done);
        resolve();
      };
      drainWaiters.add(done);
      l.drain().then(done, done);
    });

  const send = (msg: AgentMessage): boolean => link?.send(msg) ?? false;

  const track = (p: Promise<void>): void => {
    const tracked = p.catch((err: unknown) => log.error({ err }, 'task handling failed'));
    inflight.add(tracked);
    void tracked.finally(() => inflight.delete(tracked));
  };

  /** TaskStarted for a task still running here, once. */
  const reportStarted = (taskId: string, entry: ActiveTask): void => {
    clearTimeout(entry.startedTimer);
    entry.startedTimer = undefined;
    if (entry.startedSent || !entry.startedAt || active.get(taskId) !== entry) return;
    entry.startedSent = true;
    send({ message: { $case: 'taskStarted', value: { taskId, startedAt: entry.startedAt } } });
  };

  const sendResult = (result: TaskResult) => send({ message: { $case: 'taskResult', value: result } });

  /**
   * Sends the result and journals it (so it survives a restart) side by side:
   * the platform stores it while the agent's fsync runs. An ack that arrives
   * first waits for the journal write (journal.ack is serialized behind it). If
   * the agent dies before the write is on disk, the task is reported LOST at the
   * next start, which the platform ignores for a task it already has a result
   * for; if the platform did not get it either, LOST is the truth.
   */
  async function finish(result: TaskResult): Promise<void> {
    const sentOn = link;
    trace('a-result-tx', result.taskId);
    const sent = sendResult(result);
    trace('a-result-sent', result.taskId);
    // Let the result's write reach the socket (gRPC's HTTP/2 stream flushes in a native
    // immediate, which runs before this one) before the journal's encoding and write.
    // No I/O is read in between, so no ack can overtake the complete.
    if (sent) await new Promise((r) => setImmediate(r));
    try {
      await journal.complete(result.taskId, result);
    } catch (err) {
      // Sent anyway: the platform may still store it; only a restart could lose it.
      log.error({ err, task_id: result.taskId }, 'cannot journal result');
    }
    // A reconnect while it was being written re-sent only results already on
    // disk, so this one goes again on the new link. (No link now: the next
    // onReady re-sends it; a duplicate is acknowledged and ignored.)
    if (!sent || link !== sentOn) sendResult(result);
  }

  async function resendResult(taskId: string): Promise<void> {
    const result = await journal.result(taskId);
    if (result) sendResult(result);
  }

  async function handleRequest(req: TaskRequest): Promise<void> {
    const taskId = req.taskId;
    trace('a-rx', taskId);
    const tlog = log.child({ task_id: taskId });
    if (taskId === '') {
      tlog.warn('task request without a task id ignored');
      return;
    }
    const known = journal.state(taskId);
    if (known !== undefined) {
      // At most once: a known id never runs again, whatever the request says.
      tlog.info({ journal_state: known }, 'repeated task request not run');
      if (known === 'completed') await resendResult(taskId);
      return;
    }
    const spec = toTaskSpec(req, defaultKillGrace);
    if (typeof spec === 'string') {
      tlog.warn({ error: spec }, 'task refused');
      await finish(notRunResult(taskId, spec));
      return;
    }
    if (closing) {
      await finish(notRunResult(taskId, 'agent is shutting down'));
      return;
    }
    // The durable accept and the executor's preparation run side by side; the
    // executor spawns only once the accept is on disk (at most once), and never
    // if it fails.
    const accepted = journal.accept(taskId);
    const notJournaled = (err: unknown): void => {
      if (err instanceof JournalError && err.code === 'JOURNAL_TASK_KNOWN') return; // a duplicate won the race
      // Not journaled, so not run; and not journaled as failed either, so the
      // platform can offer it again.
      tlog.error({ err }, 'cannot journal task');
      sendResult(notRunResult(taskId, `agent cannot record the task in its journal: ${describe(err)}`));
    };
    let task: RunningTask;
    try {
      task = executor.start(
        spec,
        (chunk) => {
          const value: TaskLog = {
            taskId,
            output: chunk.data,
            isStderr: chunk.stream === 'stderr',
            timestamp: chunk.timestamp,
            seq: chunk.seq,
          };
          replays.add(value);
          const l = link;
          // No link: kept for the next one (within the budget); the task is not held up.
          if (!l) return;
          l.send({ message: { $case: 'taskLog', value } });
          // Backpressure: the executor reads no more of this task's output until the stream drains.
          return waitDrain(l);
        },
        { notBefore: accepted },
      );
    } catch (err) {
      try {
        await accepted;
      } catch (journalErr) {
        notJournaled(journalErr);
        return;
      }
      const full = err instanceof ExecutorError && err.code === 'EXECUTOR_QUEUE_FULL';
      tlog.warn({ err }, 'executor refused task');
      await finish(
        notRunResult(taskId, full ? 'agent queue full' : `agent cannot start the task: ${describe(err)}`),
      );
      return;
    }
    // From here a taskCancel reaches the task; one before the spawn means it never runs.
    const current: ActiveTask = { task };
    active.set(taskId, current);
    try {
      await accepted;
    } catch (err) {
      // The executor will not spawn it. Out of `active` first: no TaskStarted for it.
      active.delete(taskId);
      clearTimeout(current.startedTimer);
      task.cancel('not journaled');
      await task.result;
      notJournaled(err);
      return;
    }
    tlog.debug('task accepted');
    trace('a-accepted', taskId);
    void task.started.then((startedAt) => {
      // Canceled before its process existed: it never ran, so it never started.
      if (current.canceled && !task.spawned) return;
      current.startedAt = startedAt;
      if (active.get(taskId) !== current || current.startedSent) return;
      if (startedDelayMs <= 0) reportStarted(taskId, current);
      else current.startedTimer = setTimeout(() => reportStarted(taskId, current), startedDelayMs);
    });
    const r = await task.result;
    active.delete(taskId);
    // Ended within the delay: the result says when it started.
    clearTimeout(current.startedTimer);
    tlog.debug({ status: r.status, exit_code: r.exitCode }, 'task finished');
    await finish(toTaskResult(r));
  }

  function handleCancel(taskId: string, reason: string): void {
    const why = reason || 'canceled by the platform';
    // A task is in `active` from the moment it is being journaled; canceled before
    // its spawn, it never runs.
    const entry = active.get(taskId);
    if (!entry) return;
    entry.canceled = true;
    entry.task.cancel(why);
  }

  /**
   * What the platform may have missed, before anything new goes on this link:
   * TaskStarted, then each task's kept output in seq order. Synchronous, so no
   * later chunk can overtake an earlier one (a log follower reads by seq).
   */
  function resendProgress(l: ServerLink): void {
    for (const [taskId, entry] of active) {
      if (!entry.startedSent) continue; // its timer (or output, or result) reports it
      if (entry.startedAt)
        l.send({ message: { $case: 'taskStarted', value: { taskId, startedAt: entry.startedAt } } });
    }
    for (const [taskId, replay] of [...replays.entries()]) {
      // Running, finishing or with a result to deliver, the journal has it as accepted or
      // completed; acknowledged (or pruned), its output is stored.
      const state = journal.state(taskId);
      if (state === undefined || state === 'acknowledged') {
        replays.delete(taskId);
        continue;
      }
      for (const value of replay) l.send({ message: { $case: 'taskLog', value } });
    }
  }

  async function resendAll(l: ServerLink): Promise<void> {
    for (const taskId of journal.unacknowledged()) {
      const result = await journal.result(taskId);
      if (link !== l) return; // the next onReady starts over
      if (!result) continue;
      l.send({ message: { $case: 'taskResult', value: result } });
      await waitDrain(l);
    }
  }

  return {
    get active() {
      return active.size;
    },
    pendingTaskIds: () => journal.pending(),
    runningTasks: () => executor.running,
    onReady(l) {
      releaseDrains();
      link = l;
      resendProgress(l);
      track(resendAll(l));
    },
    onDisconnected() {
      link = undefined;
      releaseDrains();
    },
    onMessage(msg: ServerMessage) {
      const m = msg.message;
      switch (m?.$case) {
        case 'taskRequest':
          options.onTaskRequest?.();
          track(handleRequest(m.value));
          break;
        case 'taskCancel':
          handleCancel(m.value.taskId, m.value.reason);
          break;
        case 'resultAck':
          // Stored after every chunk sent before it on the same stream.
          replays.delete(m.value.taskId);
          track(
            journal.ack(m.value.taskId).then((dropped) => {
              if (!dropped) log.debug({ task_id: m.value.taskId }, 'ack for no stored result');
            }),
          );
          break;
        default:
          break;
      }
    },
    async close() {
      closing = true;
      for (const { task } of active.values()) task.cancel('agent stopping');
      while (inflight.size > 0) await Promise.all([...inflight]);
      const deadline = Date.now() + closeAckTimeoutMs;
      while (link && journal.unacknowledged().length > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      while (inflight.size > 0) await Promise.all([...inflight]);
    },
  };
}
