/**
 * The agent's durable record of accepted tasks and unacknowledged results, so
 * that a task id runs at most once and its result reaches the platform at least
 * once, across reconnects and agent restarts (SIGKILL included).
 *
 *   (unknown) ──accept()──> accepted ──complete()──> completed ──ack()──> acknowledged
 *       │                      │                                         (tombstone,
 *       └──complete()──────────┼──> completed  (refused before running)  pruned after ttl)
 *                              └── agent died: open() ──> completed (LOST)
 *
 * Layout of `dir`:
 *   tasks/<task id>.json   one per accepted, not yet acknowledged task:
 *                          {"v":1,"task_id","accepted_at","result"?: TaskResult JSON}
 *                          (ids that are not plain file names use _<sha256>.json)
 *   acked.log              tombstones, one JSON line per acknowledged id
 *
 * Every write of a task file is temp file + fsync + rename + fsync of the
 * directory, finished before accept()/complete() resolve. See docs/agent.md for
 * the measured cost.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { TaskResult, TaskStatus } from '@agent-platform/protocol';
import { createDurableDir } from './durable-dir.js';
import { JournalError } from './errors.js';
import { killTaskProcesses } from './orphans.js';
import { openTombstoneLog, type TombstoneLog } from './tombstone-log.js';

/** Error of the LOST result made for a task that was running when the agent died. */
export const LOST_ERROR = 'agent restarted while the task was running';

export type JournalState = 'accepted' | 'completed' | 'acknowledged';

export interface TaskJournalOptions {
  /** The journal's directory, created if missing; usually `<stateDir>/journal`. */
  dir: string;
  /** How long an acknowledged id is remembered, ms; default 7 days. */
  tombstoneTtlMs?: number;
  /** At most this many acknowledged ids are remembered (oldest dropped first); default 100,000. */
  maxTombstones?: number;
  /** How often tombstones are pruned while the journal is open, ms; default 1 hour. */
  pruneIntervalMs?: number;
  /**
   * At open, SIGKILL leftover processes of tasks that were running when the agent
   * died (found by their `AGENT_PLATFORM_TASK_ID` environment variable); default true.
   */
  killOrphans?: boolean;
  /** Default: a silent logger. */
  logger?: Logger;
}

interface ResolvedOptions {
  dir: string;
  tombstoneTtlMs: number;
  maxTombstones: number;
  pruneIntervalMs: number;
  killOrphans: boolean;
  logger: Logger;
}

function resolveOptions(options: TaskJournalOptions): ResolvedOptions {
  return {
    dir: path.resolve(options.dir),
    tombstoneTtlMs: options.tombstoneTtlMs ?? 7 * 24 * 3600 * 1000,
    maxTombstones: options.maxTombstones ?? 100_000,
    pruneIntervalMs: options.pruneIntervalMs ?? 3600 * 1000,
    killOrphans: options.killOrphans ?? true,
    logger: options.logger ?? pino({ level: 'silent' }),
  };
}

/** Durable record of tasks; see the module comment for the state machine. */
export interface TaskJournal {
  /** What the journal knows of a task id; undefined = never seen (or its tombstone expired). */
  state(taskId: string): JournalState | undefined;
  /**
   * Records that the task is about to run; resolves once that is on disk, and only
   * then may it be spawned. The id is known (state 'accepted') from the call on.
   * @throws JournalError 'JOURNAL_TASK_KNOWN' for an id the journal knows;
   *   a file system error, after which the id is unknown again.
   */
  accept(taskId: string): Promise<void>;
  /**
   * Stores the task's result; resolves once it is on disk. Also accepts an id
   * never accepted (a request refused before running). Ignored for an
   * acknowledged id.
   */
  complete(taskId: string, result: TaskResult): Promise<void>;
  /**
   * Forgets the result, keeping a tombstone of the id.
   * @returns false when there was no stored result (unknown, still running, or already acknowledged).
   */
  ack(taskId: string): Promise<boolean>;
  /** The stored, unacknowledged result of a task, read from disk. */
  result(taskId: string): Promise<TaskResult | undefined>;
  /** Ids with a stored, unacknowledged result, oldest first. */
  unacknowledged(): string[];
  /** Ids accepted and not acknowledged: running, or with a result to deliver. */
  pending(): string[];
  /** Ids found running at open and turned into LOST results. */
  readonly lost: readonly string[];
  /** Waits for writes in flight, then stops pruning. */
  close(): Promise<void>;
}

interface LiveTask {
  file: string;
  acceptedAt: Date;
  /** True once the result is on disk. */
  completed: boolean;
}

interface TaskRecord {
  v: 1;
  task_id: string;
  accepted_at: string;
  result?: unknown;
}

const PLAIN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** File name of a task's record. Plain ids (UUIDs) are used as is, so an operator can find them. */
export function taskFileName(taskId: string): string {
  if (PLAIN_ID.test(taskId)) return `${taskId}.json`;
  return `_${createHash('sha256').update(taskId).digest('hex')}.json`;
}

function lostResult(taskId: string, now: Date): TaskResult {
  return {
    taskId,
    exitCode: -1,
    stdout: '',
    stderr: '',
    completedAt: now,
    status: TaskStatus.TASK_STATUS_LOST,
    error: LOST_ERROR,
    startedAt: undefined,
    stdoutBytes: 0,
    stderrBytes: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    limitsEnforced: [],
    signal: '',
  };
}

/**
 * Opens (creating if needed) the journal in `options.dir`. Tasks that were
 * accepted but have no result, because the agent died while they ran, get a
 * LOST result, and their leftover processes are killed, before this resolves.
 */
export async function createTaskJournal(options: TaskJournalOptions): Promise<TaskJournal> {
  const o = resolveOptions(options);
  const log = o.logger;
  const tasksDir = createDurableDir(path.join(o.dir, 'tasks'));
  const rootDir = createDurableDir(o.dir);
  await mkdir(tasksDir.dir, { recursive: true, mode: 0o700 });
  await rootDir.removeTempFiles();
  await tasksDir.removeTempFiles();
  const tombstones: TombstoneLog = await openTombstoneLog(rootDir, {
    ttlMs: o.tombstoneTtlMs,
    maxEntries: o.maxTombstones,
  });

  // Insertion order = acceptance order; results are re-sent oldest first.
  const live = new Map<string, LiveTask>();
  const writes = new Map<string, Promise<unknown>>();
  let closed = false;

  /** Runs `fn` after every earlier write of the same task, so the last write wins on disk. */
  const serial = <T>(taskId: string, fn: () => Promise<T>): Promise<T> => {
    const prev = writes.get(taskId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    writes.set(taskId, settled);
    void settled.then(() => {
      if (writes.get(taskId) === settled) writes.delete(taskId);
    });
    return next;
  };

  const writeRecord = (file: string, record: TaskRecord) => tasksDir.writeFile(file, JSON.stringify(record));

  // --- recovery -------------------------------------------------------------
  const running: { taskId: string; file: string; acceptedAt: Date }[] = [];
  for (const name of (await readdir(tasksDir.dir)).sort()) {
    if (!name.endsWith('.json')) continue;
    const full = path.join(tasksDir.dir, name);
    let record: TaskRecord | undefined;
    try {
      const parsed = JSON.parse(await readFile(full, 'utf8')) as Partial<TaskRecord>;
      if (typeof parsed.task_id === 'string' && typeof parsed.accepted_at === 'string')
        record = parsed as TaskRecord;
    } catch {
      record = undefined;
    }
    if (!record) {
      // Writes are atomic, so this is damage from outside. A plain name still says
      // which task it was: treat it as accepted, so it is reported, never re-run.
      const id = name.slice(0, -'.json'.length);
      if (!name.startsWith('_') && PLAIN_ID.test(id)) {
        log.error({ task_id: id, file: full }, 'unreadable journal record; reporting the task as lost');
        record = { v: 1, task_id: id, accepted_at: new Date(0).toISOString() };
      } else {
        log.error({ file: full }, 'unreadable journal record of an unknown task; set aside');
        await rename(full, `${full}.corrupt`).catch(() => undefined);
        continue;
      }
    }
    if (tombstones.has(record.task_id)) {
      // The ack was recorded but the agent died before removing the file.
      await unlink(full).catch(() => undefined);
      continue;
    }
    const acceptedAt = new Date(record.accepted_at);
    if (record.result === undefined) running.push({ taskId: record.task_id, file: name, acceptedAt });
    live.set(record.task_id, { file: name, acceptedAt, completed: record.result !== undefined });
  }

  const lost = running.map((r) => r.taskId);
  if (running.length > 0) {
    if (o.killOrphans) {
      const killed = await killTaskProcesses(new Set(lost));
      if (killed.length > 0) log.warn({ pids: killed }, 'killed leftover processes of lost tasks');
    }
    const now = new Date();
    for (const r of running) {
      await writeRecord(r.file, {
        v: 1,
        task_id: r.taskId,
        accepted_at: r.acceptedAt.toISOString(),
        result: TaskResult.toJSON(lostResult(r.taskId, now)),
      });
      const entry = live.get(r.taskId);
      if (entry) entry.completed = true;
      log.warn({ task_id: r.taskId }, 'task was running when the agent stopped; reporting it lost');
    }
  }

  const pruneTimer = setInterval(() => {
    tombstones.prune().then(
      (n) => {
        if (n > 0) log.info({ pruned: n, kept: tombstones.size }, 'pruned tombstones');
      },
      (err: unknown) => log.warn({ err }, 'cannot prune tombstones'),
    );
  }, o.pruneIntervalMs);
  // Pruning must never keep the agent alive on its own.
  pruneTimer.unref();

  log.info(
    { dir: o.dir, unacknowledged: live.size, lost: lost.length, tombstones: tombstones.size },
    'journal opened',
  );

  const ensureOpen = () => {
    if (closed) throw new JournalError('JOURNAL_CLOSED');
  };

  return {
    lost,
    state(taskId) {
      const entry = live.get(taskId);
      if (entry) return entry.completed ? 'completed' : 'accepted';
      return tombstones.has(taskId) ? 'acknowledged' : undefined;
    },

    async accept(taskId) {
      ensureOpen();
      if (live.has(taskId) || tombstones.has(taskId))
        throw new JournalError('JOURNAL_TASK_KNOWN', `task ${taskId} is already in the journal`);
      // Known from this moment: a duplicate request arriving while we fsync is refused.
      const entry: LiveTask = { file: taskFileName(taskId), acceptedAt: new Date(), completed: false };
      live.set(taskId, entry);
      try {
        await serial(taskId, () =>
          writeRecord(entry.file, { v: 1, task_id: taskId, accepted_at: entry.acceptedAt.toISOString() }),
        );
      } catch (err) {
        // Not on disk, so not accepted: the task must not run, and may be offered again.
        if (live.get(taskId) === entry) live.delete(taskId);
        throw err;
      }
    },

    async complete(taskId, result) {
      ensureOpen();
      if (tombstones.has(taskId) && !live.has(taskId)) return;
      let entry = live.get(taskId);
      if (!entry) {
        entry = { file: taskFileName(taskId), acceptedAt: new Date(), completed: false };
        live.set(taskId, entry);
      }
      const e = entry;
      await serial(taskId, async () => {
        await writeRecord(e.file, {
          v: 1,
          task_id: taskId,
          accepted_at: e.acceptedAt.toISOString(),
          result: TaskResult.toJSON(result),
        });
        // Inside the serial step, so an ack queued behind this write sees it.
        e.completed = true;
      });
    },

    ack(taskId) {
      ensureOpen();
      return serial(taskId, async () => {
        const entry = live.get(taskId);
        if (!entry?.completed) return false;
        // Tombstone durable first: if the agent dies between the two steps the
        // record is found next to its tombstone and removed at open. The other
        // order could forget the id entirely and let a re-sent request run.
        await tombstones.add(taskId);
        live.delete(taskId);
        // No directory fsync: if the unlink is lost, open() removes the file again.
        await unlink(path.join(tasksDir.dir, entry.file)).catch((err: unknown) => {
          log.warn({ err, task_id: taskId }, 'cannot remove acknowledged journal record');
        });
        return true;
      });
    },

    async result(taskId) {
      const entry = live.get(taskId);
      if (!entry?.completed) return undefined;
      try {
        const record = JSON.parse(await readFile(path.join(tasksDir.dir, entry.file), 'utf8')) as TaskRecord;
        return record.result === undefined ? undefined : TaskResult.fromJSON(record.result);
      } catch (err) {
        // Acknowledged (and removed) while we read, or damaged.
        if (live.has(taskId)) log.warn({ err, task_id: taskId }, 'cannot read journaled result');
        return undefined;
      }
    },

    unacknowledged() {
      return [...live].filter(([, e]) => e.completed).map(([id]) => id);
    },

    pending() {
      return [...live.keys()];
    },

    async close() {
      if (closed) return;
      closed = true;
      clearInterval(pruneTimer);
      while (writes.size > 0) await Promise.all([...writes.values()]);
      await tombstones.close();
      await tasksDir.close();
      await rootDir.close();
    },
  };
}
