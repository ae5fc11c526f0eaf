/** /api/v1/tasks: create (and follow, one task or a batch), read, cancel, and follow logs (SSE). */
import { PassThrough } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { Type, type Static } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TERMINAL_STATUSES, trace, type TaskStatusName } from '@agent-platform/protocol';
import { PlatformError } from '../errors.js';
import type { TaskRow, TaskSummaryRow } from '../store/index.js';
import type { TaskEnded, TaskEventKind, TaskService } from '../tasks/index.js';
import { auditEntry } from './auth.js';
import { ErrorSchema } from './schemas.js';
import { parseLabelSelectors } from './agents.js';

const STATUS_ENUM = [
  'pending',
  'dispatched',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'canceled',
  'lost',
  'expired',
];
const StatusSchema = Type.Unsafe<TaskStatusName>({ type: 'string', enum: STATUS_ENUM });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const Time = Nullable(Type.String({ format: 'date-time' }));

const LimitsSchema = Type.Object(
  {
    memory_bytes: Type.Optional(
      Type.Integer({ minimum: 0, description: 'bytes for the whole task; 0 = none' }),
    ),
    cpu_millicores: Type.Optional(Type.Integer({ minimum: 0, description: '1000 = one core; 0 = none' })),
    max_processes: Type.Optional(Type.Integer({ minimum: 0, description: '0 = none' })),
    max_output_bytes: Type.Optional(
      Type.Integer({ minimum: 0, description: 'stdout+stderr bytes; 0 = none' }),
    ),
  },
  { additionalProperties: false },
);

const CreateTaskBody = Type.Object(
  {
    agent_id: Type.String({ minLength: 1, maxLength: 128 }),
    type: Type.Unsafe<'shell' | 'python'>({ type: 'string', enum: ['shell', 'python'] }),
    script: Type.String({ minLength: 1 }),
    timeout: Type.Optional(Type.Integer({ minimum: 1, description: 'seconds; default 300' })),
    args: Type.Optional(Type.Array(Type.String(), { maxItems: 256 })),
    env: Type.Optional(Type.Record(Type.String(), Type.String())),
    clean_env: Type.Optional(Type.Boolean()),
    working_dir: Type.Optional(Type.String({ maxLength: 4096 })),
    run_as: Type.Optional(Type.String({ maxLength: 64 })),
    limits: Type.Optional(LimitsSchema),
    delivery_timeout: Type.Optional(
      Type.Integer({ minimum: 1, description: 'seconds to wait for the agent; default 600' }),
    ),
    kill_grace: Type.Optional(
      Type.Integer({ minimum: 1, description: 'seconds from SIGTERM to SIGKILL; default 5' }),
    ),
  },
  { additionalProperties: false },
);

const TaskSchema = Type.Object(
  {
    task_id: Type.String({ format: 'uuid' }),
    agent_id: Type.String(),
    type: Type.String(),
    status: StatusSchema,
    script: Type.Optional(Type.String()),
    args: Type.Array(Type.String()),
    env: Type.Record(Type.String(), Type.String()),
    clean_env: Type.Boolean(),
    working_dir: Type.String(),
    run_as: Type.String(),
    timeout: Type.Integer(),
    kill_grace: Type.Integer(),
    delivery_timeout: Type.Integer(),
    limits: Type.Object({
      memory_bytes: Type.Integer(),
      cpu_millicores: Type.Integer(),
      max_processes: Type.Integer(),
      max_output_bytes: Type.Integer(),
    }),
    exit_code: Nullable(Type.Integer()),
    signal: Nullable(Type.String()),
    error: Nullable(Type.String()),
    stdout: Type.Optional(Nullable(Type.String())),
    stderr: Type.Optional(Nullable(Type.String())),
    stdout_bytes: Type.Integer(),
    stderr_bytes: Type.Integer(),
    stdout_truncated: Type.Boolean(),
    stderr_truncated: Type.Boolean(),
    limits_enforced: Type.Array(
      Type.Object({ name: Type.String(), mechanism: Type.String(), value: Type.Number() }),
    ),
    log_bytes: Type.Integer(),
    logs_dropped: Type.Boolean(),
    cancel_reason: Nullable(Type.String()),
    created_at: Type.String({ format: 'date-time' }),
    delivery_deadline: Type.String({ format: 'date-time' }),
    dispatched_at: Time,
    started_at: Time,
    completed_at: Time,
    cancel_requested_at: Time,
  },
  { $id: 'Task' },
);
type TaskJson = Static<typeof TaskSchema>;

const LogSchema = Type.Object({
  seq: Type.Integer(),
  stream: Type.Unsafe<'stdout' | 'stderr'>({ type: 'string', enum: ['stdout', 'stderr'] }),
  output: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
});

function taskToJson(r: TaskRow | TaskSummaryRow): TaskJson {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  const out: TaskJson = {
    task_id: r.task_id,
    agent_id: r.agent_id,
    type: r.type,
    status: r.status,
    args: r.args,
    env: r.env,
    clean_env: r.clean_env,
    working_dir: r.working_dir,
    run_as: r.run_as,
    timeout: r.timeout_seconds,
    kill_grace: r.kill_grace_seconds,
    delivery_timeout: r.delivery_timeout_seconds,
    limits: r.limits,
    exit_code: r.exit_code,
    signal: r.signal,
    error: r.error,
    stdout_bytes: Number(r.stdout_bytes),
    stderr_bytes: Number(r.stderr_bytes),
    stdout_truncated: r.stdout_truncated,
    stderr_truncated: r.stderr_truncated,
    limits_enforced: r.limits_enforced,
    log_bytes: Number(r.log_bytes),
    logs_dropped: r.logs_dropped,
    cancel_reason: r.cancel_reason,
    created_at: r.created_at.toISOString(),
    delivery_deadline: r.delivery_deadline.toISOString(),
    dispatched_at: iso(r.dispatched_at),
    started_at: iso(r.started_at),
    completed_at: iso(r.completed_at),
    cancel_requested_at: iso(r.cancel_requested_at),
  };
  if ('script' in r) {
    out.script = r.script;
    out.stdout = r.stdout;
    out.stderr = r.stderr;
  }
  return out;
}

function encodeTaskCursor(r: TaskSummaryRow): string {
  return Buffer.from(JSON.stringify([r.created_at.toISOString(), r.task_id])).toString('base64url');
}

function decodeTaskCursor(c: string): { createdAt: string; taskId: string } {
  try {
    const v: unknown = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
    if (
      Array.isArray(v) &&
      typeof v[0] === 'string' &&
      typeof v[1] === 'string' &&
      !Number.isNaN(Date.parse(v[0]))
    ) {
      if (/^[0-9a-f-]{36}$/i.test(v[1])) return { createdAt: v[0], taskId: v[1] };
    }
  } catch {
    // fall through
  }
  throw new PlatformError('INVALID_CURSOR', 'cursor is not one this server issued');
}

const isTerminal = (s: string) => (TERMINAL_STATUSES as readonly string[]).includes(s);

type FollowPage = Awaited<ReturnType<TaskService['followRead']>>;

const FOLLOW_QUERY = Type.Optional(
  Type.Unsafe<'0' | '1' | 'true' | 'false'>({ type: 'string', enum: ['0', '1', 'true', 'false'] }),
);
const isFollow = (v: string | undefined) => v === '1' || v === 'true';

/** Headers of a log follow (server-sent events). */
const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

/**
 * Streams one task's logs as server-sent events until it ends: replay from a
 * seq, then follow. It listens to the task service's events from its
 * construction, so a change between that and its first read is never missed.
 * Woken at once by this process's writes, and by a 250 ms poll for writes made
 * by other processes. A result stored by this process ends the stream from
 * memory when the follower has already sent the task's last chunk.
 */
class TaskFollower {
  private closed = false;
  private wake: (() => void) | undefined;
  /** Set by a change that arrives while a read runs, so it is not slept through until the poll. */
  private changed = false;
  private ended: TaskEnded | undefined;
  private readonly onTask = (id: string, kind?: TaskEventKind, end?: TaskEnded) => {
    // Dispatched / started change nothing a follower shows: only output and the end do.
    if (id !== this.taskId || kind === 'progress') return;
    if (end) this.ended = end;
    this.changed = true;
    this.wake?.();
  };

  constructor(
    private readonly tasks: TaskService,
    private readonly taskId: string,
  ) {
    tasks.events.on('task', this.onTask);
  }

  /** The client went away. */
  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /**
   * Writes `log` events after `seq`, then `end`. `first` is a page read after
   * construction (or known to be true then); without it the loop reads first.
   * Never throws; stops listening when done.
   */
  async run(
    out: { write(chunk: string): unknown },
    seq: number,
    first: FollowPage | undefined,
    log: FastifyBaseLogger,
  ): Promise<void> {
    const ping = setInterval(() => out.write(': ping\n\n'), 15_000);
    let read = first;
    try {
      while (!this.closed) {
        let current = read;
        read = undefined;
        if (!current) {
          const e = this.ended;
          if (e && hasEveryChunk(e, seq)) {
            // Stored here, and every chunk it wrote is already out: nothing to read.
            out.write(endEvent(this.taskId, e.status, e.exitCode, e.error));
            trace('p-end-sent', this.taskId);
            return;
          }
          // `changed` is cleared just before a read, so one arriving during it is kept.
          this.changed = false;
          current = await this.tasks.followRead(this.taskId, seq, 1000);
        }
        for (const l of current.logs) {
          out.write(logEvent(l));
          seq = l.seq;
        }
        if (current.logs.length === 1000) continue;
        if (isTerminal(current.status)) {
          // Status and logs come from one snapshot, and a terminal task's logs are all
          // stored before its status changes, so nothing is left behind.
          out.write(endEvent(this.taskId, current.status, current.exitCode, current.error));
          trace('p-end-sent', this.taskId);
          return;
        }
        if (this.changed) continue;
        await sleepOrWake(250, (wake) => (this.wake = wake));
      }
    } catch (err) {
      log.warn({ err }, 'log follow failed');
    } finally {
      clearInterval(ping);
      this.stop();
    }
  }

  stop(): void {
    this.tasks.events.off('task', this.onTask);
  }
}

/**
 * Follows many tasks over one event stream (a batch created with follow=1):
 * `log` and `end` events carry their task's id; `done` comes after the last
 * `end`. One listener for all of them; tasks that changed are read together,
 * in one statement; a result stored here with every chunk already sent ends its
 * task from memory. A poll (250 ms, 1 s past 50 unfinished tasks) catches
 * writes made by other processes.
 */
class BatchFollower {
  private closed = false;
  private wake: (() => void) | undefined;
  private readonly state = new Map<string, { seq: number; ended?: TaskEnded }>();
  private dirty = new Set<string>();
  private readonly onTask = (id: string, kind?: TaskEventKind, end?: TaskEnded) => {
    const s = this.state.get(id);
    if (!s || kind === 'progress') return;
    if (end) s.ended = end;
    this.dirty.add(id);
    this.wake?.();
  };

  constructor(
    private readonly tasks: TaskService,
    taskIds: string[],
  ) {
    for (const id of taskIds) this.state.set(id, { seq: 0 });
    tasks.events.on('task', this.onTask);
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /** `fresh`: every task was just created (no output yet), so nothing is read before a change. */
  async run(out: { write(chunk: string): unknown }, fresh: boolean, log: FastifyBaseLogger): Promise<void> {
    const ping = setInterval(() => out.write(': ping\n\n'), 15_000);
    if (!fresh) for (const id of this.state.keys()) this.dirty.add(id);
    try {
      while (!this.closed && this.state.size > 0) {
        if (this.dirty.size === 0) {
          const woken = await sleepOrWake(this.state.size > 50 ? 1000 : 250, (wake) => (this.wake = wake));
          // Nothing happened here: read them all, for writes made by other processes.
          if (!woken) for (const id of this.state.keys()) this.dirty.add(id);
          continue;
        }
        const batch = [...this.dirty];
        this.dirty = new Set();
        const toRead: { taskId: string; sinceSeq: number }[] = [];
        for (const id of batch) {
          const s = this.state.get(id);
          if (!s) continue;
          const e = s.ended;
          if (e && hasEveryChunk(e, s.seq)) {
            out.write(endEvent(id, e.status, e.exitCode, e.error));
            this.state.delete(id);
          } else toRead.push({ taskId: id, sinceSeq: s.seq });
        }
        if (toRead.length === 0) continue;
        const pages = await this.tasks.followReadMany(toRead, 1000);
        for (const { taskId } of toRead) {
          const s = this.state.get(taskId);
          const page = pages.get(taskId);
          if (!s || !page) continue;
          for (const l of page.logs) {
            out.write(logEvent(l, taskId));
            s.seq = l.seq;
          }
          if (page.logs.length === 1000) this.dirty.add(taskId);
          else if (isTerminal(page.status)) {
            out.write(endEvent(taskId, page.status, page.exitCode, page.error));
            this.state.delete(taskId);
          }
        }
      }
      if (this.state.size === 0) out.write('event: done\ndata: {}\n\n');
    } catch (err) {
      log.warn({ err }, 'batch follow failed');
    } finally {
      clearInterval(ping);
      this.tasks.events.off('task', this.onTask);
    }
  }
}

/** A follower that has sent chunk `seq` has all of a task whose end it holds: nothing left to read. */
const hasEveryChunk = (end: TaskEnded, seq: number) => end.lastSeq !== null && seq >= end.lastSeq;

/**
 * Waits `ms`, or less when the function handed to `setWake` is called (it is
 * unset again after). True when woken.
 */
async function sleepOrWake(ms: number, setWake: (wake: (() => void) | undefined) => void): Promise<boolean> {
  const woken = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    setWake(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
  setWake(undefined);
  return woken;
}

/** A `log` event: with the SSE id (one task's stream), or with the task id in its data (a batch's). */
function logEvent(l: FollowPage['logs'][number], taskId?: string): string {
  const data = { seq: l.seq, stream: l.stream, output: l.output, timestamp: l.ts.toISOString() };
  return taskId === undefined
    ? `event: log\nid: ${l.seq}\ndata: ${JSON.stringify(data)}\n\n`
    : `event: log\ndata: ${JSON.stringify({ task_id: taskId, ...data })}\n\n`;
}

function endEvent(taskId: string, status: string, exitCode: number | null, error: string | null): string {
  return `event: end\ndata: ${JSON.stringify({ task_id: taskId, status, exit_code: exitCode, error })}\n\n`;
}

export const taskRoutes =
  (tasks: TaskService): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.addSchema(TaskSchema);

    app.post(
      '/api/v1/tasks',
      {
        schema: {
          summary:
            'Create a task; with follow=1 the answer is a server-sent event stream: a `task` event ' +
            '(the task), its `log` events as they happen, and `end`',
          tags: ['tasks'],
          headers: Type.Object({
            'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          }),
          querystring: Type.Object({ follow: FOLLOW_QUERY }),
          body: CreateTaskBody,
          response: { 200: TaskSchema, 201: TaskSchema, 400: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (req, reply) => {
        const { task, created } = await tasks.create(
          req.body,
          req.headers['idempotency-key'],
          auditEntry(req, 201),
        );
        // A repeat (200) wrote nothing, so onSend audits it as usual.
        if (created) req.audited = true;
        // Sent to its agent in the create: let that write reach the socket before this
        // answer is built (the HTTP/2 stream flushes in a native immediate, which runs first).
        if (created && task.status === 'dispatched') await new Promise((r) => setImmediate(r));
        if (!isFollow(req.query.follow)) return reply.status(created ? 201 : 200).send(taskToJson(task));
        // Create and follow in one call. Listening starts in the same turn of the event
        // loop as the create's send to the agent, before any answer of it can be read:
        // a new task has no output yet, so it needs no first read either.
        const follower = new TaskFollower(tasks, task.task_id);
        const first: FollowPage | undefined = created
          ? { status: task.status, exitCode: null, error: null, logs: [] }
          : undefined;
        const stream = new PassThrough();
        stream.write(`event: task\ndata: ${JSON.stringify(taskToJson(task))}\n\n`);
        reply.raw.on('close', () => follower.close());
        void follower.run(stream, 0, first, req.log).finally(() => stream.end());
        req.auditTarget = `task:${task.task_id}`;
        // Fastify sends a Readable as it is (onSend hooks, so the audit, still run first);
        // the route's response types describe only its JSON answers.
        return reply
          .status(created ? 201 : 200)
          .headers(SSE_HEADERS)
          .send(stream as unknown as TaskJson);
      },
    );

    const { agent_id: _agentId, ...batchFields } = CreateTaskBody.properties;
    app.post(
      '/api/v1/tasks/batch',
      {
        schema: {
          summary:
            'Run one script on many agents: one task per agent, created in one statement; with ' +
            'follow=1 the answer is an event stream: `tasks`, then `log` and `end` events of every task ' +
            '(each with its task_id), and `done`',
          tags: ['tasks'],
          querystring: Type.Object({ follow: FOLLOW_QUERY }),
          headers: Type.Object({
            'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          }),
          body: Type.Object(
            {
              ...batchFields,
              agent_ids: Type.Optional(
                Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 1000 }),
              ),
              label: Type.Optional(
                Type.String({
                  minLength: 1,
                  maxLength: 1000,
                  description: 'agents matching key or key=value, comma-separated',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            201: Type.Object({
              tasks: Type.Array(
                Type.Object({
                  task_id: Type.String(),
                  agent_id: Type.String(),
                  hostname: Type.String(),
                  created: Type.Boolean(),
                }),
              ),
            }),
            400: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const { agent_ids, label, ...input } = req.body;
        if ((agent_ids === undefined) === (label === undefined)) {
          throw new PlatformError('VALIDATION_FAILED', 'give exactly one of agent_ids and label');
        }
        const tasksOut = await tasks.createBatch(
          input,
          { agentIds: agent_ids, labels: label === undefined ? undefined : parseLabelSelectors(label) },
          req.headers['idempotency-key'],
          auditEntry(req, 201),
        );
        // Audited in the statement that created the tasks; a whole repeat wrote nothing,
        // so onSend audits it as usual.
        if (tasksOut.some((t) => t.created)) req.audited = true;
        if (!isFollow(req.query.follow)) return reply.status(201).send({ tasks: tasksOut });
        // Listening starts before any answer to the batch's requests can be read: those
        // sent in the create went out in it (an answer is read in a later turn of the
        // event loop), the others are claimed later. New tasks have no output to read first.
        const follower = new BatchFollower(
          tasks,
          tasksOut.map((t) => t.task_id),
        );
        const stream = new PassThrough();
        stream.write(`event: tasks\ndata: ${JSON.stringify({ tasks: tasksOut })}\n\n`);
        reply.raw.on('close', () => follower.close());
        void follower
          .run(
            stream,
            tasksOut.every((t) => t.created),
            req.log,
          )
          .finally(() => stream.end());
        return reply
          .status(201)
          .headers(SSE_HEADERS)
          .send(stream as unknown as { tasks: typeof tasksOut });
      },
    );

    app.get(
      '/api/v1/tasks',
      {
        schema: {
          summary: 'List tasks, newest first',
          tags: ['tasks'],
          querystring: Type.Object({
            agent_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
            status: Type.Optional(StatusSchema),
            cursor: Type.Optional(Type.String({ maxLength: 200 })),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          }),
          response: {
            200: Type.Object({ tasks: Type.Array(TaskSchema), next_cursor: Nullable(Type.String()) }),
            400: ErrorSchema,
          },
        },
      },
      async (req) => {
        const { agent_id, status, cursor, limit } = req.query;
        const rows = await tasks.list({
          agentId: agent_id,
          status,
          before: cursor === undefined ? undefined : decodeTaskCursor(cursor),
          limit: limit + 1,
        });
        const page = rows.slice(0, limit);
        const last = page.at(-1);
        return {
          tasks: page.map(taskToJson),
          next_cursor: rows.length > limit && last ? encodeTaskCursor(last) : null,
        };
      },
    );

    const TaskParams = Type.Object({ task_id: Type.String({ minLength: 1, maxLength: 64 }) });

    app.get(
      '/api/v1/tasks/:task_id',
      {
        schema: {
          summary: 'Get a task with its result',
          tags: ['tasks'],
          params: TaskParams,
          response: { 200: TaskSchema, 404: ErrorSchema },
        },
      },
      async (req) => taskToJson(await tasks.get(req.params.task_id)),
    );

    app.post(
      '/api/v1/tasks/:task_id/cancel',
      {
        schema: {
          summary: 'Cancel a task (kills its whole process tree)',
          tags: ['tasks'],
          params: TaskParams,
          body: Type.Optional(
            Type.Object(
              { reason: Type.Optional(Type.String({ maxLength: 500 })) },
              { additionalProperties: false },
            ),
          ),
          response: { 202: TaskSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
      },
      async (req, reply) => {
        const task = await tasks.cancel(req.params.task_id, req.body?.reason ?? 'canceled by request');
        return reply.status(202).send(taskToJson(task));
      },
    );

    app.get(
      '/api/v1/tasks/:task_id/logs',
      {
        schema: {
          summary:
            'Task output chunks in order; follow=1 streams them as server-sent events until the task ends',
          tags: ['tasks'],
          params: TaskParams,
          querystring: Type.Object({
            since_seq: Type.Integer({ minimum: 0, default: 0 }),
            limit: Type.Integer({ minimum: 1, maximum: 10000, default: 1000 }),
            follow: FOLLOW_QUERY,
          }),
          response: {
            200: Type.Object({
              task_id: Type.String(),
              status: StatusSchema,
              logs: Type.Array(LogSchema),
              next_seq: Type.Integer(),
            }),
            404: ErrorSchema,
          },
        },
      },
      async (req, reply) => {
        const taskId = req.params.task_id;
        const { since_seq, limit } = req.query;
        if (!isFollow(req.query.follow)) {
          // One read: TASK_NOT_FOUND, or the state and the chunks.
          const page = await tasks.followRead(taskId, since_seq, limit);
          return {
            task_id: taskId,
            status: page.status,
            logs: page.logs.map((l) => ({
              seq: l.seq,
              stream: l.stream,
              output: l.output,
              timestamp: l.ts.toISOString(),
            })),
            next_seq: page.logs.at(-1)?.seq ?? since_seq,
          };
        }

        // Server-sent events: replay from since_seq, then follow. Listening before the
        // first read: no change falls between.
        const follower = new TaskFollower(tasks, taskId);
        let first: FollowPage;
        try {
          first = await tasks.followRead(taskId, since_seq, 1000);
        } catch (err) {
          follower.stop(); // TASK_NOT_FOUND before any byte is sent: a plain 404
          throw err;
        }
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, SSE_HEADERS);
        reply.raw.on('close', () => follower.close());
        await follower.run(res, since_seq, first, req.log);
        res.end();
      },
    );
  };
