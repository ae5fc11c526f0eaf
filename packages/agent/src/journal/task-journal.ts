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
 * Layout of `dir`: one append-only log, `log-<generation>.jsonl`, a line per
 * event (log-format.ts): `accept`, `complete` (with the result), `ack`.
 *
 * - accept and complete resolve once their line is on disk: appended in place
 *   (no thread-pool trip), then one `fdatasync`, group-committed with every
 *   other task's (log-file.ts).
 * - ack appends its line and does not wait for the disk: losing it in a crash
 *   leaves the task "completed" (its complete line is on disk, the ack was
 *   serialized behind it), so the result is re-sent and acknowledged again, and
 *   the id stays known throughout. Any later flush, or the next compaction,
 *   makes it durable.
 * - Compaction: once the log is large (`compactBytes`, and twice its live
 *   content), the live state (tombstones, tasks not yet acknowledged with their
 *   result lines copied) goes to a new generation: temp file, fdatasync,
 *   rename, directory fsync; lines appended meanwhile are copied after it and
 *   flushed before the old file is deleted.
 * - Reading at open: every record carries `seq`, and for each id the event
 *   with the highest `seq` wins, so files may be read in any order and a
 *   leftover older generation (a crash mid-compaction) merges harmlessly.
 *   Damaged lines (a torn last record, or damage in the middle) are not
 *   trusted; the records still identifiable in them count as "accepted"
 *   (a damaged complete) or acknowledged (a damaged ack), never as unknown.
 *   Then the log is compacted, so new lines never follow damaged ones.
 *
 * The layout before this log (tasks/<id>.json + acked.log) is imported at open
 * and then removed (legacy.ts). See docs/agent.md.
 */
import { mkdir, readdir, readFile, rename, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { TaskResult, TaskStatus } from '@agent-platform/protocol';
import { createDurableDir, TEMP_PREFIX } from './durable-dir.js';
import { JournalError } from './errors.js';
import { LEGACY_TASKS_DIR, readLegacyState } from './legacy.js';
import { defaultIo, LogFile, type JournalIo, type Loc } from './log-file.js';
import { encodeRecord, resultOfLine, salvage, scanLines, type Op, type RecordHead } from './log-format.js';
import { killTaskProcesses } from './orphans.js';

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
  /**
   * The log is compacted once it is this large and at least twice the size of
   * its live content (what the last compaction wrote); default 32 MiB.
   */
  compactBytes?: number;
  /** Default: a silent logger. */
  logger?: Logger;
  /** For tests: the log's file operations. */
  io?: Partial<JournalIo>;
}

interface ResolvedOptions {
  dir: string;
  tombstoneTtlMs: number;
  maxTombstones: number;
  pruneIntervalMs: number;
  killOrphans: boolean;
  compactBytes: number;
  logger: Logger;
  io: JournalIo;
}

function resolveOptions(options: TaskJournalOptions): ResolvedOptions {
  return {
    dir: path.resolve(options.dir),
    tombstoneTtlMs: options.tombstoneTtlMs ?? 7 * 24 * 3600 * 1000,
    maxTombstones: options.maxTombstones ?? 100_000,
    pruneIntervalMs: options.pruneIntervalMs ?? 3600 * 1000,
    killOrphans: options.killOrphans ?? true,
    compactBytes: options.compactBytes ?? 32 * 1024 * 1024,
    logger: options.logger ?? pino({ level: 'silent' }),
    io: { ...defaultIo, ...options.io },
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
  /** `seq` of its accept line; undefined until appended, or when it never had one (refused). */
  acceptSeq: number | undefined;
  acceptedAt: number;
  /** True once the result is on disk. */
  completed: boolean;
  /** Its latest complete line (set when appended, before it is on disk). */
  loc: Loc | undefined;
  /** A result imported from the old layout, not yet in the log, and its `seq`. */
  imported?: { json: string; seq: number };
}

const LOG_FILE = /^log-(\d{1,15})\.jsonl$/;
const logName = (gen: number) => `log-${gen}.jsonl`;

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

/** What the files at open say about one id: its latest event (highest seq). */
interface Seen {
  seq: number;
  /** Ties between equal seqs (imports of the old layout) go to the further state. */
  rank: number;
  /** 'accept' also for a damaged complete: the task ran, its result is gone. */
  op: Op;
  at: number;
  loc?: Loc;
  imported?: string;
  /** The latest accept event, for the accepted-at time. */
  acceptSeq?: number;
  acceptedAt?: number;
}

const RANK: Record<Op, number> = { accept: 1, complete: 2, ack: 3 };

/**
 * Opens (creating if needed) the journal in `options.dir`. Tasks that were
 * accepted but have no result, because the agent died while they ran, get a
 * LOST result, and their leftover processes are killed, before this resolves.
 */
export async function createTaskJournal(options: TaskJournalOptions): Promise<TaskJournal> {
  const o = resolveOptions(options);
  const log = o.logger;
  const rootDir = createDurableDir(o.dir);
  await mkdir(o.dir, { recursive: true, mode: 0o700 });
  await rootDir.removeTempFiles();

  // --- reading what is on disk ------------------------------------------------
  const seen = new Map<string, Seen>();
  const apply = (h: RecordHead, extra: { loc?: Loc; imported?: string; damaged?: boolean } = {}) => {
    const op: Op = extra.damaged && h.op === 'complete' ? 'accept' : h.op;
    const rank = extra.damaged && h.op === 'complete' ? RANK.accept : RANK[h.op];
    let s = seen.get(h.id);
    if (!s) {
      s = { seq: -Infinity, rank: 0, op, at: h.at };
      seen.set(h.id, s);
    }
    if (h.op === 'accept' && !extra.damaged && (s.acceptSeq === undefined || h.seq >= s.acceptSeq)) {
      s.acceptSeq = h.seq;
      s.acceptedAt = h.at;
    }
    if (h.seq > s.seq || (h.seq === s.seq && rank >= s.rank)) {
      s.seq = h.seq;
      s.rank = rank;
      s.op = op;
      s.at = h.at;
      s.loc = extra.loc;
      s.imported = extra.imported;
    }
  };

  // The old layout first; its events get negative numbers, below any of the log.
  const legacy = await readLegacyState(o.dir, log);
  for (const t of legacy.tasks) {
    if (t.resultJson === undefined) apply({ op: 'accept', seq: -2, id: t.taskId, at: t.acceptedAt });
    else {
      apply({ op: 'accept', seq: -3, id: t.taskId, at: t.acceptedAt });
      apply({ op: 'complete', seq: -2, id: t.taskId, at: t.acceptedAt }, { imported: t.resultJson });
    }
  }
  for (const [id, at] of legacy.tombstones) apply({ op: 'ack', seq: -1, id, at });

  const gens = (await readdir(o.dir))
    .map((name) => Number(LOG_FILE.exec(name)?.[1] ?? NaN))
    .filter((g) => !Number.isNaN(g))
    .sort((a, b) => a - b);
  /** Every log file open: the current one last; older ones until a compaction retires them. */
  let files: LogFile[] = [];
  /** Files with damage that could not be attributed: kept for the operator when retired. */
  const keepDamaged = new Set<LogFile>();
  let damaged = 0;
  let maxSeq = 0;
  for (const gen of gens) {
    const file = path.join(o.dir, logName(gen));
    const buf = await readFile(file);
    const lf = await LogFile.open(file, gen, buf.length, o.io);
    files.push(lf);
    let bad: { off: number; end: number } | undefined;
    const settleBad = (last: boolean) => {
      if (!bad) return;
      damaged++;
      const found = salvage(buf.subarray(bad.off, bad.end));
      for (const h of found) {
        maxSeq = Math.max(maxSeq, h.seq);
        apply(h, { damaged: true });
      }
      const where = { file, offset: bad.off, bytes: bad.end - bad.off, salvaged: found.length };
      if (last) {
        log.warn(where, 'torn record at the end of the journal (crash mid-append); dropped');
      } else {
        // Damage from outside (a crash only tears the end): the file is kept for a look.
        keepDamaged.add(lf);
        if (found.length === 0) log.error(where, 'damaged journal record whose task cannot be identified');
        else log.error(where, 'damaged journal record; its tasks are kept as known, without a result');
      }
      bad = undefined;
    };
    for (const line of scanLines(buf)) {
      if (!line.head) {
        if (bad) bad.end = line.off + line.len;
        else bad = { off: line.off, end: line.off + line.len };
        continue;
      }
      settleBad(false);
      maxSeq = Math.max(maxSeq, line.head.seq);
      apply(
        line.head,
        line.head.op === 'complete' ? { loc: { file: lf, off: line.off, len: line.len } } : {},
      );
    }
    settleBad(true);
  }
  let seq = maxSeq + 1;
  let nextGen = (gens[gens.length - 1] ?? 0) + 1;

  // Insertion order = acceptance order; results are re-sent oldest first.
  const live = new Map<string, LiveTask>();
  // Insertion order = ack order, so the first entries are the oldest.
  const tombstones = new Map<string, number>();
  const firstSeq = (s: Seen) => s.acceptSeq ?? s.seq;
  const all = [...seen];
  seen.clear();
  const tombSeen = all.filter(([, s]) => s.op === 'ack').sort((a, b) => a[1].at - b[1].at);
  for (const [id, s] of tombSeen) tombstones.set(id, s.at);
  const liveSeen = all.filter(([, s]) => s.op !== 'ack').sort((a, b) => firstSeq(a[1]) - firstSeq(b[1]));
  for (const [id, s] of liveSeen) {
    const completed = s.op === 'complete';
    const acceptSeq = s.acceptSeq !== undefined && s.acceptSeq <= s.seq ? s.acceptSeq : undefined;
    live.set(id, {
      // Still running (or its result damaged): the snapshot's accept line takes the
      // latest event's seq, so it outranks every older line of the id.
      acceptSeq: completed ? acceptSeq : s.seq,
      acceptedAt: s.acceptedAt ?? s.at,
      completed,
      loc: completed ? s.loc : undefined,
      ...(completed && s.imported !== undefined ? { imported: { json: s.imported, seq: s.seq } } : {}),
    });
  }

  const pruneTombstones = (nowMs: number): number => {
    let dropped = 0;
    for (const [id, at] of tombstones) {
      if (nowMs - at > o.tombstoneTtlMs || tombstones.size > o.maxTombstones) {
        tombstones.delete(id);
        dropped++;
      }
      // Only the age test needs every entry; past the first young one with the
      // count within bounds, the rest are younger still.
      else break;
    }
    return dropped;
  };
  pruneTombstones(Date.now());

  // --- writing ------------------------------------------------------------------
  let closed = false;
  /** Lines appended while a compaction writes its snapshot; copied after it. */
  let carry: { buf: Buffer; task?: LiveTask; loc: Loc }[] | undefined;
  let compacting: Promise<void> | undefined;
  let compactRetryAt = 0;
  /** Bytes the last compaction wrote: the live content then. */
  let liveBytes = 0;

  const current = (): LogFile => {
    const f = files[files.length - 1];
    if (!f) throw new JournalError('JOURNAL_CLOSED');
    return f;
  };

  /** Appends in place (no wait for the disk). */
  const append = (buf: Buffer, task?: LiveTask): Loc => {
    const loc = current().append(buf);
    carry?.push(task ? { buf, task, loc } : { buf, loc });
    return loc;
  };

  const maybeCompact = () => {
    const f = current();
    if (compacting || closed || Date.now() < compactRetryAt) return;
    if (f.failed || (f.size >= o.compactBytes && f.size >= 2 * liveBytes)) {
      compact().catch((err: unknown) => {
        compactRetryAt = Date.now() + 60_000;
        log.warn({ err }, 'cannot compact the journal; retrying in a minute');
      });
    }
  };

  /**
   * Writes the live state to a new generation and switches to it; the files
   * before it are then deleted (or, with unidentified damage, set aside).
   */
  const compact = (): Promise<void> => {
    compacting ??= doCompact().finally(() => {
      compacting = undefined;
    });
    return compacting;
  };

  const doCompact = async (): Promise<void> => {
    // The snapshot: the state as appended so far (also lines not yet on disk:
    // the old file goes away only after the new one is flushed).
    pruneTombstones(Date.now());
    const base = seq++;
    const gen = nextGen++;
    const tombs = [...tombstones];
    const tasks = [...live]
      .filter(([, t]) => t.acceptSeq !== undefined || t.loc || t.imported)
      .map(([id, t]) => ({ id, t, acceptSeq: t.acceptSeq, loc: t.loc, imported: t.imported }));
    carry = [];
    const temp = path.join(o.dir, `${TEMP_PREFIX}${logName(gen)}`);
    let next: LogFile | undefined;
    try {
      next = await LogFile.open(temp, gen, 0, o.io, 'ax+');
      const moved: { t: LiveTask; from: Loc | undefined; to: Loc }[] = [];
      let chunk: Buffer[] = [];
      let chunkBytes = 0;
      let off = 0;
      const put = (buf: Buffer): Loc => {
        const loc = { file: next as LogFile, off, len: buf.length };
        chunk.push(buf);
        chunkBytes += buf.length;
        off += buf.length;
        return loc;
      };
      // Written in 128 KiB pieces: encoding one holds the event loop for a few ms
      // (~800 tombstones), between them it is free.
      const write = async (force: boolean) => {
        if (chunkBytes === 0 || (!force && chunkBytes < 128 * 1024)) return;
        const buf = Buffer.concat(chunk);
        chunk = [];
        chunkBytes = 0;
        await (next as LogFile).appendAsync(buf);
      };
      // Tombstones share one seq: no later event of their ids exists while they are kept.
      for (const [id, at] of tombs) {
        put(encodeRecord({ op: 'ack', seq: base, id, at }));
        await write(false);
      }
      for (const { id, t, acceptSeq, loc, imported } of tasks) {
        if (acceptSeq !== undefined)
          put(encodeRecord({ op: 'accept', seq: acceptSeq, id, at: t.acceptedAt }));
        if (loc) {
          // The complete line as it is, with its own seq and checksums.
          moved.push({ t, from: loc, to: put(await loc.file.read(loc.off, loc.len)) });
        } else if (imported) {
          const line = encodeRecord(
            { op: 'complete', seq: imported.seq, id, at: t.acceptedAt },
            imported.json,
          );
          moved.push({ t, from: undefined, to: put(line) });
        }
        await write(false);
      }
      await write(true);
      // Catch up with the lines appended meanwhile through the thread pool too,
      // so that the synchronous switch below has little left to copy.
      const carried: Loc[] = [];
      for (let round = 0; round < 4; round++) {
        const batch = carry.slice(carried.length);
        const bytes = batch.reduce((n, c) => n + c.buf.length, 0);
        if (bytes < 64 * 1024) break;
        for (const c of batch) carried.push(put(c.buf));
        await write(true);
      }
      await next.flush();
      await rename(temp, path.join(o.dir, logName(gen)));
      next.path = path.join(o.dir, logName(gen));
      await rootDir.syncDir();

      // The switch, synchronous: nothing is appended in between.
      for (const { t, from, to } of moved) {
        if (from === undefined ? t.loc === undefined && t.imported !== undefined : t.loc === from) {
          t.loc = to;
          t.imported = undefined;
        }
      }
      carry.forEach((c, i) => {
        const loc = carried[i] ?? (next as LogFile).append(c.buf);
        if (c.task && c.task.loc === c.loc) c.task.loc = loc;
      });
      carry = undefined;
      const retired = files;
      files = [next];
      liveBytes = next.size;
      next = undefined;

      // The copied lines are on disk before the files they came from go.
      await current().flush();
      for (const f of retired) {
        await f.close();
        if (keepDamaged.has(f)) {
          const aside = path.join(o.dir, `damaged-${path.basename(f.path)}`);
          await rename(f.path, aside);
          log.error({ file: aside }, 'damaged journal file set aside');
        } else {
          await unlink(f.path);
        }
      }
      // Not needed for correctness (a file that comes back merges: highest seq
      // wins), but it keeps the next open from reading it again.
      await rootDir.syncDir();
    } finally {
      carry = undefined;
      if (next) {
        // Failed before the switch: the old file stays current.
        await next.close().catch(() => undefined);
        await unlink(next.path).catch(() => undefined);
      }
    }
  };

  /** Runs `fn` after every earlier write of the same task, so the last write wins on disk. */
  const writes = new Map<string, Promise<void>>();
  const serial = <T>(taskId: string, fn: () => Promise<T>): Promise<T> => {
    const prev = writes.get(taskId);
    // Without an earlier write it starts at once: the line is appended in this call.
    const next = prev ? prev.then(fn, fn) : fn();
    const clear = () => {
      if (writes.get(taskId) === settled) writes.delete(taskId);
    };
    const settled: Promise<void> = next.then(clear, clear);
    writes.set(taskId, settled);
    return next;
  };

  const completeLine = (taskId: string, result: TaskResult) =>
    encodeRecord(
      { op: 'complete', seq: seq++, id: taskId, at: Date.now() },
      JSON.stringify(TaskResult.toJSON(result)),
    );

  // --- open: new generation if needed, then LOST results -------------------------
  if (files.length !== 1 || legacy.found || damaged > 0) {
    await compact();
    if (legacy.found) {
      for (const f of legacy.files) await unlink(f).catch(() => undefined);
      const tasksDir = createDurableDir(path.join(o.dir, LEGACY_TASKS_DIR));
      await tasksDir.removeTempFiles().catch(() => undefined);
      await rmdir(tasksDir.dir).catch(() => undefined);
      log.info({ files: legacy.files.length }, 'journal migrated from the old layout');
    }
  } else {
    let estimate = tombstones.size * 160;
    for (const t of live.values()) estimate += 200 + (t.loc?.len ?? 0);
    liveBytes = estimate;
  }

  const running = [...live].filter(([, t]) => !t.completed).map(([id]) => id);
  const lost = running;
  if (running.length > 0) {
    if (o.killOrphans) {
      const killed = await killTaskProcesses(new Set(lost));
      if (killed.length > 0) log.warn({ pids: killed }, 'killed leftover processes of lost tasks');
    }
    const now = new Date();
    for (const id of running) {
      const t = live.get(id) as LiveTask;
      t.loc = append(completeLine(id, lostResult(id, now)), t);
      log.warn({ task_id: id }, 'task was running when the agent stopped; reporting it lost');
    }
    await current().flush();
    for (const id of running) (live.get(id) as LiveTask).completed = true;
  }
  maybeCompact();

  const pruneTimer = setInterval(() => {
    const n = pruneTombstones(Date.now());
    if (n > 0) log.info({ pruned: n, kept: tombstones.size }, 'pruned tombstones');
  }, o.pruneIntervalMs);
  // Pruning must never keep the agent alive on its own.
  pruneTimer.unref();

  log.info(
    {
      dir: o.dir,
      file: path.basename(current().path),
      unacknowledged: live.size,
      lost: lost.length,
      tombstones: tombstones.size,
    },
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
      const entry: LiveTask = {
        acceptSeq: undefined,
        acceptedAt: Date.now(),
        completed: false,
        loc: undefined,
      };
      live.set(taskId, entry);
      try {
        await serial(taskId, async () => {
          const s = seq++;
          append(encodeRecord({ op: 'accept', seq: s, id: taskId, at: entry.acceptedAt }));
          entry.acceptSeq = s;
          const flushed = current().flush();
          maybeCompact();
          await flushed;
        });
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
        entry = { acceptSeq: undefined, acceptedAt: Date.now(), completed: false, loc: undefined };
        live.set(taskId, entry);
      }
      const e = entry;
      await serial(taskId, async () => {
        e.loc = append(completeLine(taskId, result), e);
        e.imported = undefined;
        const flushed = current().flush();
        maybeCompact();
        await flushed;
        // Inside the serial step, so an ack queued behind this write sees it.
        e.completed = true;
      });
    },

    ack(taskId) {
      ensureOpen();
      return serial(taskId, async () => {
        const entry = live.get(taskId);
        if (!entry?.completed) return false;
        // Not flushed: see the module comment. The complete line is on disk
        // (this step ran after it), so a lost ack only means a re-sent result.
        const at = Date.now();
        append(encodeRecord({ op: 'ack', seq: seq++, id: taskId, at }));
        live.delete(taskId);
        tombstones.set(taskId, at);
        // Bounded between prunes too: the oldest goes (insertion order = ack order).
        if (tombstones.size > o.maxTombstones) tombstones.delete(tombstones.keys().next().value as string);
        maybeCompact();
        return true;
      });
    },

    async result(taskId) {
      // A compaction may move the line while we read: then read it where it went.
      for (let attempt = 0; ; attempt++) {
        const entry = live.get(taskId);
        if (!entry?.completed) return undefined;
        if (entry.imported) return TaskResult.fromJSON(JSON.parse(entry.imported.json));
        const loc = entry.loc;
        if (!loc) return undefined;
        try {
          return TaskResult.fromJSON(resultOfLine(await loc.file.read(loc.off, loc.len)));
        } catch (err) {
          if (live.get(taskId) === entry && entry.loc !== loc && attempt < 3) continue;
          // Acknowledged while we read, or damaged.
          if (live.get(taskId) === entry) log.warn({ err, task_id: taskId }, 'cannot read journaled result');
          return undefined;
        }
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
      await compacting?.catch(() => undefined);
      // Acks are not flushed as they happen: flush them now, so a clean stop
      // does not re-send acknowledged results.
      await current()
        .flush()
        .catch((err: unknown) => log.warn({ err }, 'cannot flush the journal at close'));
      for (const f of files) await f.close();
      files = [];
      await rootDir.close();
    },
  };
}
