/**
 * Batches what agents report (task started, log chunks, results) into a few
 * statements per flush instead of one commit per event: PostgreSQL's commit
 * rate (~3,300/s one client here, DESIGN.md) would otherwise cap throughput.
 *
 * Logs and started marks are committed asynchronously (no WAL flush wait);
 * results synchronously, before they are acknowledged.
 *
 * Order inside a flush: logs, then started marks, then results — so a task
 * seen terminal has all its logs stored, and the SSE follower can end. A
 * result is acknowledged to the agent only after its flush committed.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { LogRecord, ResultRecord, StartedMark, Store } from '../store/index.js';

/**
 * What changed about a task, for listeners of `task` events: 'output' = new log
 * chunks or a terminal state (what a log follower waits for); 'progress' = a
 * state change before the end (dispatched, started, back to pending).
 */
export type TaskEventKind = 'output' | 'progress';

/**
 * Sent with the `output` event of a result this process just stored: what a
 * log follower's `end` event says, and the seq of the task's last chunk (null:
 * unknown), so a follower that has it ends without reading the task again.
 */
export interface TaskEnded {
  status: string;
  exitCode: number | null;
  error: string | null;
  lastSeq: number | null;
}

export interface EventWriterOptions {
  store: Store;
  logger: Logger;
  /** Milliseconds to gather events before a flush when idle; default 0 (next event-loop turn). */
  flushIntervalMs?: number;
  /** Bytes of task logs kept per task; later chunks are dropped and the task marked; default 32 MiB. */
  logBudgetBytes?: number;
  /** Flush early once this many events wait; default 2,000. */
  maxBatch?: number;
}

export interface EventWriter {
  started(mark: StartedMark): void;
  log(record: LogRecord): void;
  /** Resolves once the result is stored (or found late/duplicate); reject means retry later. */
  result(record: ResultRecord): Promise<void>;
  /**
   * Emits `task` (task id, {@link TaskEventKind}, and for a result stored here
   * {@link TaskEnded}) whenever its logs or state changed on this process.
   */
  readonly events: EventEmitter;
  flush(): Promise<void>;
  close(): Promise<void>;
}

interface PendingResult {
  record: ResultRecord;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export function createEventWriter(options: EventWriterOptions): EventWriter {
  const { store, logger } = options;
  const interval = options.flushIntervalMs ?? 0;
  const budget = options.logBudgetBytes ?? 32 * 1024 * 1024;
  const maxBatch = options.maxBatch ?? 2000;
  const events = new EventEmitter();
  events.setMaxListeners(0);

  let logs: LogRecord[] = [];
  let started: StartedMark[] = [];
  let results: PendingResult[] = [];
  /**
   * Bytes of logs accepted per task by this process (approximate across restarts;
   * see docs), and the highest seq counted: an agent sends its kept output again
   * after a reconnect (docs/decisions/0006), and a chunk seen before is stored
   * once (on conflict do nothing), so it is not counted twice.
   */
  const logBytes = new Map<string, { bytes: number; seq: number }>();
  const dropped = new Set<string>();
  let newlyDropped: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const size = () => logs.length + started.length + results.length;
  /**
   * Group commit: when nothing is being written, flush on the next turn of the
   * event loop (lowest latency when idle); while a flush runs, events gather
   * and go together in the next one (batches grow with load, by themselves).
   */
  let scheduled = false;
  let pumping: Promise<void> | undefined;
  const schedule = () => {
    if (closed || scheduled || pumping) return; // a running pump picks new events up
    scheduled = true;
    const go = () => {
      scheduled = false;
      timer = undefined;
      void pump();
    };
    if (size() >= maxBatch || interval === 0) setImmediate(go);
    else timer = setTimeout(go, interval);
  };

  /** Flushes until nothing waits; one pump at a time keeps logs -> result order across flushes. */
  function pump(): Promise<void> {
    pumping ??= (async () => {
      try {
        do await flushOnce();
        while (size() > 0 || newlyDropped.length > 0);
      } finally {
        pumping = undefined;
      }
    })();
    return pumping;
  }

  async function flushOnce(): Promise<void> {
    const batchLogs = logs;
    const batchStarted = started;
    const batchResults = results;
    const batchDropped = newlyDropped;
    logs = [];
    started = [];
    results = [];
    newlyDropped = [];
    if (batchLogs.length + batchStarted.length + batchResults.length + batchDropped.length === 0) return;
    /** Task id -> what changed: new output or a terminal state ('output'), else 'progress'. */
    const touched = new Map<string, TaskEventKind>();
    const ended = new Map<string, TaskEnded>();
    try {
      // One transaction, committed without waiting for the WAL flush: a result
      // (synchronous) flushes it along, and none of it is promised to anyone.
      const startedIds = await store.tasks.applyProgress({
        logs: batchLogs,
        dropped: batchDropped,
        started: batchStarted,
      });
      for (const id of startedIds) touched.set(id, 'progress');
      for (const l of batchLogs) touched.set(l.taskId, 'output');
    } catch (err) {
      // Logs and started marks are best effort; results below still get their chance.
      logger.warn({ err, logs: batchLogs.length, started: batchStarted.length }, 'task event flush failed');
    }
    if (batchResults.length > 0) {
      try {
        const changed = await store.tasks.applyResults(batchResults.map((r) => r.record));
        for (const id of changed) touched.set(id, 'output');
        const applied = new Set(changed);
        for (const { record: r } of batchResults) {
          if (applied.has(r.taskId))
            ended.set(r.taskId, {
              status: r.status,
              exitCode: r.exitCode,
              error: r.error,
              lastSeq: r.lastSeq ?? null,
            });
        }
        for (const r of batchResults) {
          logBytes.delete(r.record.taskId);
          dropped.delete(r.record.taskId);
          r.resolve();
        }
        const late = batchResults.length - changed.length;
        if (late > 0) logger.debug({ late }, 'late or duplicate results ignored');
      } catch (err) {
        logger.warn({ err, results: batchResults.length }, 'result flush failed');
        for (const r of batchResults) r.reject(err);
      }
    }
    for (const [id, kind] of touched) events.emit('task', id, kind, ended.get(id));
  }

  function flush(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = undefined;
    scheduled = false;
    return pump();
  }

  return {
    events,
    started(mark) {
      started.push(mark);
      schedule();
    },
    log(record) {
      if (dropped.has(record.taskId)) return;
      const seen = logBytes.get(record.taskId) ?? { bytes: 0, seq: 0 };
      if (record.seq > seen.seq) {
        const n = seen.bytes + Buffer.byteLength(record.output);
        if (n > budget) {
          dropped.add(record.taskId);
          newlyDropped.push(record.taskId);
          schedule();
          return;
        }
        logBytes.set(record.taskId, { bytes: n, seq: record.seq });
      }
      logs.push(record);
      schedule();
    },
    result(record) {
      return new Promise((resolve, reject) => {
        results.push({ record, resolve, reject });
        schedule();
      });
    },
    flush,
    async close() {
      await flush();
      closed = true;
    },
  };
}
