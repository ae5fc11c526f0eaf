/**
 * Queries on tasks and task_logs. Every state change is a conditional UPDATE
 * on the current status, so a terminal task never changes again and a late or
 * duplicate report changes nothing. Batched writes take arrays (unnest /
 * jsonb_to_recordset): one statement for many tasks.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { sql, type Kysely, type RawBuilder, type Selectable } from 'kysely';
import pg from 'pg';
import type { AuditEntry } from './audit.js';
import type { Database, EnforcedLimitJson, TaskLimitsJson, TaskStatusName, TasksTable } from './schema.js';

/** A row as stored: a batch's large script is in task_scripts (`script` null, `script_hash` set). */
type StoredTaskRow = Selectable<TasksTable>;

/** A task row with its script, wherever it is kept. */
export type TaskRow = Omit<StoredTaskRow, 'script'> & { script: string };

/**
 * A batch's script of at least this many bytes is kept once in task_scripts
 * (by SHA-256, shared by every batch that runs it) instead of in each task's
 * row: 1 MiB on 1,000 agents was 1 GB of table (decision 0008). Smaller ones
 * stay in the row, which costs no lookup when the task is claimed.
 */
export const SHARED_SCRIPT_BYTES = 4096;

/** Characters (UTF-16 code units) of shared scripts a store keeps in memory (see scriptCache). */
export const SCRIPT_CACHE_BYTES = 32 * 1024 * 1024;

export interface NewTask {
  taskId: string;
  agentId: string;
  type: 'shell' | 'python';
  script: string;
  args: string[];
  env: Record<string, string>;
  cleanEnv: boolean;
  workingDir: string;
  runAs: string;
  timeoutSeconds: number;
  killGraceSeconds: number;
  limits: TaskLimitsJson;
  deliveryTimeoutSeconds: number;
  idempotencyKey: string | null;
}

/** What a task runs: a {@link NewTask} without its identity (one batch shares it). */
export type TaskSpec = Omit<NewTask, 'taskId' | 'agentId' | 'idempotencyKey'>;

/** One agent of a batch: its new task's id, and its session when the caller holds its stream. */
export interface BatchTarget {
  taskId: string;
  agentId: string;
  idempotencyKey: string | null;
  sessionId: string | null;
}

export interface CreateOptions {
  /**
   * The caller holds the agent's stream in this session: insert the task already
   * `dispatched` when the agent has free capacity and no older task waits, so it
   * can be sent at once (no claim, no NOTIFY round trip). The caller must
   * serialize this with its own claims for the agent (capacity is counted in the
   * statement's snapshot).
   */
  dispatch?: { sessionId: string; platformNode: string };
  /** An audit row for the new task (target `task:<id>`), committed with it; not written for a repeat. */
  audit?: Omit<AuditEntry, 'target'>;
}

export interface StartedMark {
  taskId: string;
  agentId: string;
  at: Date;
}

export interface ResultRecord {
  taskId: string;
  agentId: string;
  status: 'succeeded' | 'failed' | 'timed_out' | 'canceled' | 'lost';
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  stdout: string;
  stderr: string;
  stdoutBytes: number;
  stderrBytes: number;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  limitsEnforced: EnforcedLimitJson[];
  startedAt: Date | null;
  completedAt: Date;
  /** The agent's seq of the task's last output chunk (0: none); null if the agent did not say. Not stored. */
  lastSeq?: number | null;
}

export interface LogRecord {
  taskId: string;
  agentId: string;
  seq: number;
  stream: 'stdout' | 'stderr';
  output: string;
  ts: Date;
}

export interface TaskListQuery {
  agentId?: string;
  status?: TaskStatusName;
  /** Tasks strictly older than this (created_at, task_id) position. */
  before?: { createdAt: string; taskId: string };
  limit: number;
}

export type CancelOutcome =
  | { kind: 'canceled'; task: TaskRow }
  | { kind: 'requested'; task: TaskRow }
  | { kind: 'finished'; task: TaskRow }
  | { kind: 'missing' };

/** Columns a list returns: no script or output (those can be megabytes). */
const SUMMARY = [
  'task_id',
  'agent_id',
  'type',
  'args',
  'env',
  'clean_env',
  'working_dir',
  'run_as',
  'timeout_seconds',
  'kill_grace_seconds',
  'limits',
  'delivery_timeout_seconds',
  'idempotency_key',
  'status',
  'created_at',
  'delivery_deadline',
  'dispatched_at',
  'started_at',
  'completed_at',
  'dispatched_by',
  'cancel_requested_at',
  'cancel_reason',
  'exit_code',
  'signal',
  'error',
  'stdout_bytes',
  'stderr_bytes',
  'stdout_truncated',
  'stderr_truncated',
  'limits_enforced',
  'log_bytes',
  'logs_dropped',
] as const;

export type TaskSummaryRow = Pick<TaskRow, (typeof SUMMARY)[number]>;

/** A task's state and its log chunks after some seq, from one snapshot. */
export interface FollowPage {
  status: TaskStatusName;
  exitCode: number | null;
  error: string | null;
  logs: { seq: number; stream: 'stdout' | 'stderr'; output: string; ts: Date }[];
}

/** A follower's row (state + chunks as JSON) as a FollowPage. */
function followPage(r: {
  status: TaskStatusName;
  exit_code: number | null;
  error: string | null;
  logs: { seq: string | number; stream: 'stdout' | 'stderr'; output: string; ts: string }[];
}): FollowPage {
  return {
    status: r.status,
    exitCode: r.exit_code,
    error: r.error,
    logs: r.logs.map((l) => ({ seq: Number(l.seq), stream: l.stream, output: l.output, ts: new Date(l.ts) })),
  };
}

export interface TaskQueries {
  /**
   * Inserts a task, pending (or dispatched, see {@link CreateOptions.dispatch}), and
   * its audit row in one statement; with an idempotency key already used, returns
   * the earlier task and writes nothing.
   */
  create(
    t: NewTask,
    options?: CreateOptions,
  ): Promise<{
    task: TaskRow;
    created: boolean;
    /** With `dispatch`: the agent had no free slot (a result will free one and claim). */
    agentFull: boolean;
  }>;
  /**
   * Logs, dropped-log marks and started marks, committed without waiting for
   * the WAL flush (on the `relaxed` connections, `synchronous_commit = off`):
   * none is promised to anyone, and the next synchronous commit (a result's)
   * flushes them too. Returns the ids marked started.
   */
  applyProgress(p: { logs: LogRecord[]; dropped: string[]; started: StartedMark[] }): Promise<string[]>;
  /**
   * One script for many agents (a batch), one task per agent, in one statement.
   * The spec is one set of parameters however many agents there are (a 1 MiB
   * script for 1,000 agents is 1 MiB on the wire, not 1 GiB), and only ids and
   * states come back. A target with a `sessionId` is an agent whose stream the
   * caller holds: its task goes in `dispatched` when the agent has a free slot
   * and no older task waits, as {@link create} does with `dispatch`, and the
   * caller must hold its claims for those agents while this runs. Agents must
   * not repeat. Targets whose idempotency key was used before are not inserted;
   * the earlier task is returned instead (`created: false`).
   */
  createMany(
    spec: TaskSpec,
    targets: BatchTarget[],
    platformNode: string,
    /** One audit row for the batch (no target), committed with its tasks; none if all were repeats. */
    audit?: Omit<AuditEntry, 'target'>,
  ): Promise<
    { task_id: string; agent_id: string; hostname: string; status: TaskStatusName; created: boolean }[]
  >;
  get(taskId: string): Promise<TaskRow | undefined>;
  list(q: TaskListQuery): Promise<TaskSummaryRow[]>;
  /**
   * Claims the agent's oldest pending tasks, up to its free capacity, for the
   * given session; nothing if the session no longer owns the agent row.
   * `FOR UPDATE SKIP LOCKED`: two processes never claim one task.
   */
  claim(
    agentId: string,
    sessionId: string,
    platformNode: string,
  ): Promise<{ rows: TaskRow[]; /** pending tasks are left (the agent is full) */ more: boolean }>;
  /**
   * {@link claim} for many agents in one statement (each with its session):
   * every agent gets its oldest pending tasks up to its free capacity.
   */
  claimMany(agents: { agentId: string; sessionId: string }[], platformNode: string): Promise<TaskRow[]>;
  /** A dispatched task whose request could not be sent (its stream had closed) -> pending. */
  undispatch(taskId: string): Promise<void>;
  /** Agents among `agentIds` that have pending tasks (the dispatcher's poll). */
  agentsWithPending(agentIds: string[]): Promise<string[]>;
  markStarted(marks: StartedMark[]): Promise<string[]>;
  /** Applies terminal results; returns the ids that changed (others were late or duplicate). */
  applyResults(results: ResultRecord[]): Promise<string[]>;
  /** Stores log chunks of tasks that belong to the reporting agent; duplicates are ignored. */
  insertLogs(logs: LogRecord[]): Promise<void>;
  markLogsDropped(taskIds: string[]): Promise<void>;
  /**
   * What a log follower needs, in one statement (one snapshot): the task's state
   * and its chunks after `sinceSeq`. A terminal state read this way comes with
   * every chunk stored before the result. Undefined for an unknown task.
   */
  followRead(taskId: string, sinceSeq: number, limit: number): Promise<FollowPage | undefined>;
  /** followRead for many tasks in one statement: task id -> page (unknown ids are left out). */
  followReadMany(
    items: { taskId: string; sinceSeq: number }[],
    limit: number,
  ): Promise<Map<string, FollowPage>>;
  cancel(taskId: string, reason: string): Promise<CancelOutcome>;
  /** Cancels still owed to agents: requested, not finished, requested more than `olderThanMs` ago. */
  pendingCancels(
    agentIds: string[],
    olderThanMs: number,
  ): Promise<{ task_id: string; agent_id: string; cancel_reason: string | null }[]>;
  /**
   * At re-registration: tasks the platform sent that the agent does not know
   * never arrived. Dispatched ones go back to pending; running ones (the agent
   * had reported them started) are lost. Returns [requeued, lost].
   */
  reconcile(agentId: string, knownTaskIds: string[]): Promise<[string[], string[]]>;
  /** pending past their delivery deadline -> expired. */
  expire(): Promise<string[]>;
  /** dispatched/running on agents offline longer than the grace -> lost. */
  loseOnOfflineAgents(graceSeconds: number): Promise<string[]>;
  /**
   * Deletes finished tasks created more than `days` ago, with their logs, up to
   * `batch` a statement and `rounds` statements a call, then the shared scripts
   * no task names that no batch used for `days`. Returns what it deleted.
   */
  purge(days: number, batch?: number, rounds?: number): Promise<{ tasks: number; scripts: number }>;
}

/**
 * A named statement: parsed and planned once per connection, not per call (the
 * create and the claim run once or twice per task). After a migration by a newer
 * platform process adds columns, PostgreSQL refuses a prepared `*` whose result
 * type changed ("cached plan must not change result type", 0A000): such a call
 * runs again unnamed, so a rolling upgrade costs a round trip, not an error.
 *
 * Not `pool.query`: on any error it closes the connection, so every create for
 * an unknown agent (a foreign-key violation, answered 404) cost a new backend
 * and the named statements prepared on the old one (13 ms per such create
 * against 0.6 ms for the failing INSERT itself). Errors PostgreSQL reports leave
 * the connection usable and it goes back to the pool; a lost connection, or a
 * FATAL one, is dropped.
 */
async function namedQuery<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  q: { name: string; text: string; values: unknown[] },
): Promise<pg.QueryResult<R>> {
  const client = await pool.connect();
  let lost: Error | undefined;
  try {
    try {
      return await client.query<R>(q);
    } catch (err) {
      if ((err as { code?: string }).code !== '0A000') throw err;
      return await client.query<R>(q.text, q.values);
    }
  } catch (err) {
    if (!(err instanceof pg.DatabaseError) || err.severity === 'FATAL' || err.severity === 'PANIC') {
      lost = err instanceof Error ? err : new Error(String(err));
    }
    throw err;
  } finally {
    client.release(lost);
  }
}

/**
 * See TaskQueries.create. $15 null = no dispatch (session id), $17 false = no audit row.
 * `online` is a column, not a condition: with `status = 'online'` in the WHERE, the
 * cached generic plan found the agent through agents_status_idx, reading every online
 * agent for each create (the store test on generic plans).
 */
const CREATE_TASK_SQL = `
with s as (
  select a.status = 'online' as online,
         a.capacity - (select count(*) from tasks b
                        where b.agent_id = a.agent_id and b.status in ('dispatched', 'running'))::int as free,
         exists (select 1 from tasks p
                  where p.agent_id = a.agent_id and p.status = 'pending' and p.delivery_deadline > now()) as queued
    from agents a
   where $15::uuid is not null and a.agent_id = $2::text and a.session_id = $15::uuid
), d as (
  select coalesce((select online and free > 0 and not queued from s), false) as ok,
         coalesce((select not online or free <= 0 from s), true) as agent_full
), ins as (
  insert into tasks (task_id, agent_id, type, script, args, env, clean_env, working_dir, run_as,
                     timeout_seconds, kill_grace_seconds, limits, delivery_timeout_seconds, idempotency_key,
                     status, delivery_deadline, dispatched_at, dispatched_by)
  select $1::uuid, $2::text, $3::text, $4::text, $5::jsonb, $6::jsonb, $7::boolean, $8::text, $9::text,
         $10::int, $11::int, $12::jsonb, $13::int, $14::text,
         case when d.ok then 'dispatched' else 'pending' end,
         now() + make_interval(secs => $13::int),
         case when d.ok then now() end,
         case when d.ok then $16::text end
    from d
  on conflict (idempotency_key) do nothing
  returning *
), aud as (
  insert into audit_log (token_id, actor, action, target, method, path, source_ip, status_code, outcome)
  select $18::uuid, $19::text, $20::text, 'task:' || ins.task_id, $21::text, $22::text, $23::text, $24::int,
         $25::text
    from ins
   where $17::boolean
)
select ins.*, (select agent_full from d) as ap_agent_full from ins`;

/**
 * See TaskQueries.claim: $1 agent id, $2 session id, $3 platform node. The limit is
 * 0 when the session no longer owns the agent row or the agent is offline: a
 * scalar subquery over no row is NULL, and LIMIT NULL is no limit at all (a stale
 * session claimed every pending task of the agent, its capacity ignored). The
 * online check is in the select list for the reason given at CREATE_TASK_SQL.
 */
const CLAIM_SQL = `
with agent as (
  select case when status = 'online' then capacity else 0 end as capacity
    from agents where agent_id = $1::text and session_id = $2::uuid
), busy as (
  select count(*)::int as n from tasks where agent_id = $1::text and status in ('dispatched', 'running')
), picked as (
  select task_id from tasks
   where agent_id = $1::text and status = 'pending' and delivery_deadline > now()
   order by created_at, task_id
   limit coalesce((select greatest(0, agent.capacity - busy.n) from agent, busy), 0)
   for update skip locked
), upd as (
  update tasks t
     set status = 'dispatched', dispatched_at = now(), dispatched_by = $3::text
    from picked
   where t.task_id = picked.task_id
  returning t.*
)
select upd.*, null::boolean as ap_more from upd
union all
select (null::tasks).*, exists (
  select 1 from tasks p
   where p.agent_id = $1::text and p.status = 'pending' and p.delivery_deadline > now()
     and p.task_id not in (select task_id from picked))`;

/**
 * The states a result is applied from. markStarted and applyResults take the
 * state a task must be in from their input rows (`t.status = m.from_state`),
 * not as a constant: `status = 'dispatched'` or `status in ('dispatched',
 * 'running')` matches the predicate of tasks_inflight_idx, and with the
 * statistics of a queue table (taken when few tasks were in flight, estimating
 * one row where there are thousands) the planner drove the join from that
 * index, every in-flight task, and scanned the input array again for each
 * one: one markStarted of 5,000 marks against 10,000 tasks in flight ran 18.0 s
 * instead of 0.25 s (`npm run bench:plans`; 26.7 s statements under
 * `bench:fleet`, docs/performance.md, session 6). Compared with a column of
 * the input, the partial index cannot be proven to apply, and each input row
 * finds its task by the primary key.
 *
 * Both inputs are `unnest` arrays in a subquery limited to their own length (a
 * no-op). A cached generic plan estimates a LIMIT it cannot see at a tenth of
 * the rows: 1 row, as a custom plan for one task does, so PostgreSQL keeps the
 * generic plan instead of planning every call again; and with the estimate a
 * hash join over a scan of the whole table does not win for tables of a few
 * thousand tasks (it did, up to ~25,000, with `jsonb_to_recordset`'s 100).
 */
const RESULT_FROM_STATES = ['dispatched', 'running'] as const;

/**
 * `relaxed`: connections with `synchronous_commit = off`, for applyProgress
 * (default: `db`, where it then commits synchronously).
 */
export function createTaskQueries(
  db: Kysely<Database>,
  pool: pg.Pool,
  relaxed?: { db: Kysely<Database>; pool: pg.Pool },
): TaskQueries {
  let relaxedQueries: TaskQueries | undefined;
  /** Runs a fixed-shape `sql` statement as a named one (see namedQuery). */
  const run = async <R extends pg.QueryResultRow>(name: string, query: RawBuilder<R>): Promise<R[]> => {
    const c = query.compile(db);
    return (await namedQuery<R>(pool, { name, text: c.sql, values: [...c.parameters] })).rows;
  };
  /**
   * Shared scripts read lately, by hash (hex). A hash names one content for
   * good, so an entry is never stale: the agents of one batch claiming its
   * tasks one by one (a reconnect after a platform restart) read the script
   * from PostgreSQL once, not once each.
   */
  const scriptCache = new LRUCache<string, string>({
    maxSize: SCRIPT_CACHE_BYTES,
    sizeCalculation: (script) => Math.max(1, script.length),
  });

  /**
   * Fills in the scripts kept in task_scripts, one statement for all of them
   * not in the cache; rows with the same hash share one string.
   */
  async function withScripts(rows: StoredTaskRow[]): Promise<TaskRow[]> {
    const scripts = new Map<string, string>();
    const missing = new Map<string, Buffer>();
    for (const r of rows) {
      if (r.script !== null || !r.script_hash) continue;
      const hex = r.script_hash.toString('hex');
      const hit = scripts.get(hex) ?? scriptCache.get(hex);
      if (hit !== undefined) scripts.set(hex, hit);
      else missing.set(hex, r.script_hash);
    }
    if (missing.size > 0) {
      const found = await db
        .selectFrom('task_scripts')
        .select(['script_hash', 'script'])
        .where('script_hash', 'in', [...missing.values()])
        .execute();
      for (const f of found) {
        const hex = f.script_hash.toString('hex');
        scripts.set(hex, f.script);
        scriptCache.set(hex, f.script);
      }
    }
    return rows.map((r) => {
      if (r.script !== null) return { ...r, script: r.script };
      const script = r.script_hash ? scripts.get(r.script_hash.toString('hex')) : undefined;
      // The foreign key keeps a task's script for as long as the task exists.
      if (script === undefined) throw new Error(`task ${r.task_id}: its script is missing from task_scripts`);
      return { ...r, script };
    });
  }
  const withScript = async (row: StoredTaskRow): Promise<TaskRow> => (await withScripts([row]))[0] as TaskRow;

  const queries: TaskQueries = {
    async create(t, options = {}) {
      const { dispatch, audit } = options;
      // One named (prepared once per connection) statement: the hottest of the
      // platform. `s`: the agent's free slots and whether an older task waits, if
      // this session still owns it; the task goes in dispatched when there is a
      // slot and nothing older waits (a new task never overtakes a queued one).
      const { rows } = await namedQuery<TaskRow & { ap_agent_full: boolean }>(pool, {
        name: 'ap_task_create',
        text: CREATE_TASK_SQL,
        values: [
          t.taskId,
          t.agentId,
          t.type,
          t.script,
          JSON.stringify(t.args),
          JSON.stringify(t.env),
          t.cleanEnv,
          t.workingDir,
          t.runAs,
          t.timeoutSeconds,
          t.killGraceSeconds,
          JSON.stringify(t.limits),
          t.deliveryTimeoutSeconds,
          t.idempotencyKey,
          dispatch?.sessionId ?? null,
          dispatch?.platformNode ?? null,
          audit !== undefined,
          audit?.token_id ?? null,
          audit?.actor ?? '',
          audit?.action ?? '',
          audit?.method ?? '',
          audit?.path ?? '',
          audit?.source_ip ?? '',
          audit?.status_code ?? 0,
          audit?.outcome ?? 'ok',
        ],
      });
      const inserted = rows[0];
      if (inserted) {
        const { ap_agent_full: agentFull, ...task } = inserted;
        return { task, created: true, agentFull };
      }
      const existing = await db
        .selectFrom('tasks')
        .selectAll()
        .where('idempotency_key', '=', t.idempotencyKey)
        .executeTakeFirstOrThrow();
      return { task: await withScript(existing), created: false, agentFull: false };
    },

    async createMany(spec, targets, platformNode, audit) {
      if (targets.length === 0) return [];
      const seen = new Set<string>();
      for (const t of targets) {
        if (seen.has(t.agentId)) throw new Error(`createMany: agent ${t.agentId} appears twice`);
        seen.add(t.agentId);
      }
      const col = <T>(f: (t: BatchTarget) => T): T[] => targets.map(f);
      // A large script goes into task_scripts once (a batch that repeats it marks the
      // row used instead); each task then names it by hash.
      const shared = Buffer.byteLength(spec.script) >= SHARED_SCRIPT_BYTES;
      const hash = shared ? createHash('sha256').update(spec.script).digest() : null;
      const inserted = await run(
        'ap_task_create_many',
        sql<{ task_id: string; agent_id: string; hostname: string; status: TaskStatusName }>`
        with i as (
          select * from unnest(${col((t) => t.taskId)}::uuid[], ${col((t) => t.agentId)}::text[],
                               ${col((t) => t.idempotencyKey)}::text[], ${col((t) => t.sessionId)}::uuid[])
                        as i(task_id, agent_id, idempotency_key, session_id)
           limit ${targets.length}
        ), sc as (
          insert into task_scripts (script_hash, script)
          select ${hash}::bytea, ${shared ? spec.script : null}::text where ${hash}::bytea is not null
          on conflict (script_hash) do update set last_used_at = now()
        ), ins as (
          insert into tasks (task_id, agent_id, type, script, script_hash, args, env, clean_env, working_dir, run_as,
                             timeout_seconds, kill_grace_seconds, limits, delivery_timeout_seconds, idempotency_key,
                             status, delivery_deadline, dispatched_at, dispatched_by)
          select i.task_id, i.agent_id, ${spec.type}::text, ${shared ? null : spec.script}::text, ${hash}::bytea,
                 ${JSON.stringify(spec.args)}::jsonb,
                 ${JSON.stringify(spec.env)}::jsonb, ${spec.cleanEnv}::boolean, ${spec.workingDir}::text,
                 ${spec.runAs}::text, ${spec.timeoutSeconds}::int, ${spec.killGraceSeconds}::int,
                 ${JSON.stringify(spec.limits)}::jsonb, ${spec.deliveryTimeoutSeconds}::int, i.idempotency_key,
                 case when s.ok then 'dispatched' else 'pending' end,
                 now() + make_interval(secs => ${spec.deliveryTimeoutSeconds}::int),
                 case when s.ok then now() end,
                 case when s.ok then ${platformNode}::text end
            from i
            left join lateral (
              select a.status = 'online'
                     and a.capacity > (select count(*) from tasks b
                                        where b.agent_id = a.agent_id and b.status in ('dispatched', 'running'))
                     and not exists (select 1 from tasks p
                                      where p.agent_id = a.agent_id and p.status = 'pending'
                                        and p.delivery_deadline > now()) as ok
                from agents a
               where a.agent_id = i.agent_id and a.session_id = i.session_id
            ) s on true
          on conflict (idempotency_key) do nothing
          returning task_id, agent_id, status
        ), aud as (
          insert into audit_log (token_id, actor, action, target, method, path, source_ip, status_code, outcome)
          select ${audit?.token_id ?? null}::uuid, ${audit?.actor ?? ''}::text, ${audit?.action ?? ''}::text, null,
                 ${audit?.method ?? ''}::text, ${audit?.path ?? ''}::text, ${audit?.source_ip ?? ''}::text,
                 ${audit?.status_code ?? 0}::int, ${audit?.outcome ?? 'ok'}::text
           where ${audit !== undefined}::boolean and exists (select 1 from ins)
        )
        select ins.task_id, ins.agent_id, a.hostname, ins.status
          from ins join agents a on a.agent_id = ins.agent_id`,
      );
      // Its tasks' claims in this process need not read it back.
      if (hash) scriptCache.set(hash.toString('hex'), spec.script);
      const out = inserted.map((r) => ({ ...r, created: true }));
      if (inserted.length === targets.length) return out;
      const keys = targets.map((t) => t.idempotencyKey).filter((k): k is string => k !== null);
      const earlier = await db
        .selectFrom('tasks')
        .innerJoin('agents', 'agents.agent_id', 'tasks.agent_id')
        .select(['tasks.task_id', 'tasks.agent_id', 'agents.hostname', 'tasks.status'])
        .where('tasks.idempotency_key', 'in', keys)
        .execute();
      const fresh = new Set(inserted.map((r) => r.task_id));
      return [...out, ...earlier.filter((r) => !fresh.has(r.task_id)).map((r) => ({ ...r, created: false }))];
    },

    async get(taskId) {
      const row = await db.selectFrom('tasks').selectAll().where('task_id', '=', taskId).executeTakeFirst();
      return row && (await withScripts([row]))[0];
    },

    async list(q) {
      let query = db
        .selectFrom('tasks')
        .select(SUMMARY)
        .orderBy('created_at', 'desc')
        .orderBy('task_id', 'desc')
        .limit(q.limit);
      if (q.agentId !== undefined) query = query.where('agent_id', '=', q.agentId);
      if (q.status !== undefined) query = query.where('status', '=', q.status);
      if (q.before) {
        const b = q.before;
        query = query.where(
          sql<boolean>`(created_at, task_id) < (${b.createdAt}::timestamptz, ${b.taskId}::uuid)`,
        );
      }
      return query.execute();
    },

    async claim(agentId, sessionId, platformNode) {
      // The last row is a marker (all task columns null) whose ap_more says whether
      // pending tasks are left that this claim did not take (no free slot).
      const { rows } = await namedQuery<StoredTaskRow & { ap_more: boolean | null }>(pool, {
        name: 'ap_task_claim',
        text: CLAIM_SQL,
        values: [agentId, sessionId, platformNode],
      });
      const marker = rows.pop();
      return {
        rows: await withScripts(rows.map(({ ap_more: _more, ...t }) => t)),
        more: marker?.ap_more === true,
      };
    },

    async undispatch(taskId) {
      await sql`
        update tasks set status = 'pending', dispatched_at = null, dispatched_by = null
         where task_id = ${taskId}::uuid and status = 'dispatched'`.execute(db);
    },

    async claimMany(agents, platformNode) {
      if (agents.length === 0) return [];
      const { rows } = await sql<StoredTaskRow>`
        with picked as (
          select p.task_id
            from agents a
            join unnest(${agents.map((x) => x.agentId)}::text[], ${agents.map((x) => x.sessionId)}::uuid[])
                 as s(agent_id, session_id)
              on a.agent_id = s.agent_id and a.session_id = s.session_id and a.status = 'online'
            cross join lateral (
              select t.task_id from tasks t
               where t.agent_id = a.agent_id and t.status = 'pending' and t.delivery_deadline > now()
               order by t.created_at, t.task_id
               limit greatest(0, a.capacity - (select count(*) from tasks b
                                                 where b.agent_id = a.agent_id and b.status in ('dispatched', 'running')))
               for update skip locked
            ) p
        )
        update tasks t
           set status = 'dispatched', dispatched_at = now(), dispatched_by = ${platformNode}
          from picked
         where t.task_id = picked.task_id
        returning t.*`.execute(db);
      return withScripts(rows);
    },

    async agentsWithPending(agentIds) {
      if (agentIds.length === 0) return [];
      const { rows } = await sql<{ agent_id: string }>`
        select distinct agent_id from tasks
         where status = 'pending' and agent_id = any(${agentIds}::text[])`.execute(db);
      return rows.map((r) => r.agent_id);
    },

    async markStarted(marks) {
      if (marks.length === 0) return [];
      const rows = await run(
        'ap_task_started',
        sql<{ task_id: string }>`
        update tasks t
           set status = 'running', started_at = m.at
          from (select * from unnest(${marks.map((m) => m.taskId)}::uuid[], ${marks.map((m) => m.agentId)}::text[],
                                     ${marks.map((m) => m.at.toISOString())}::timestamptz[],
                                     ${marks.map(() => 'dispatched')}::text[]) as m(task_id, agent_id, at, from_state)
                 limit ${marks.length}) m
         where t.task_id = m.task_id and t.agent_id = m.agent_id and t.status = m.from_state
        returning t.task_id`,
      );
      return rows.map((r) => r.task_id);
    },

    async applyResults(results) {
      if (results.length === 0) return [];
      const col = <T>(f: (r: ResultRecord) => T): T[] => results.map(f);
      const rows = await run(
        'ap_task_results',
        sql<{ task_id: string }>`
        update tasks t
           set status = r.status, exit_code = r.exit_code, signal = r.signal, error = r.error,
               stdout = r.stdout, stderr = r.stderr, stdout_bytes = r.stdout_bytes, stderr_bytes = r.stderr_bytes,
               stdout_truncated = r.stdout_truncated, stderr_truncated = r.stderr_truncated,
               limits_enforced = r.limits_enforced,
               started_at = coalesce(t.started_at, r.started_at), completed_at = r.completed_at
          from (select * from unnest(
                  ${col((r) => r.taskId)}::uuid[], ${col((r) => r.agentId)}::text[], ${col((r) => r.status)}::text[],
                  ${col((r) => r.exitCode)}::int[], ${col((r) => r.signal)}::text[], ${col((r) => r.error)}::text[],
                  ${col((r) => r.stdout)}::text[], ${col((r) => r.stderr)}::text[],
                  ${col((r) => r.stdoutBytes)}::bigint[], ${col((r) => r.stderrBytes)}::bigint[],
                  ${col((r) => r.stdoutTruncated)}::boolean[], ${col((r) => r.stderrTruncated)}::boolean[],
                  ${col((r) => JSON.stringify(r.limitsEnforced))}::jsonb[],
                  ${col((r) => r.startedAt?.toISOString() ?? null)}::timestamptz[],
                  ${col((r) => r.completedAt.toISOString())}::timestamptz[],
                  ${col(() => RESULT_FROM_STATES[0])}::text[], ${col(() => RESULT_FROM_STATES[1])}::text[])
                  as r(task_id, agent_id, status, exit_code, signal, error, stdout, stderr, stdout_bytes,
                       stderr_bytes, stdout_truncated, stderr_truncated, limits_enforced, started_at, completed_at,
                       from_a, from_b)
                 limit ${results.length}) r
         where t.task_id = r.task_id and t.agent_id = r.agent_id and t.status in (r.from_a, r.from_b)
        returning t.task_id`,
      );
      return rows.map((r) => r.task_id);
    },

    async applyProgress(p) {
      const q = (relaxedQueries ??= relaxed ? createTaskQueries(relaxed.db, relaxed.pool) : queries);
      await q.insertLogs(p.logs);
      await q.markLogsDropped(p.dropped);
      return q.markStarted(p.started);
    },

    async insertLogs(logs) {
      if (logs.length === 0) return;
      const payload = JSON.stringify(
        logs.map((l) => ({
          task_id: l.taskId,
          agent_id: l.agentId,
          seq: l.seq,
          stream: l.stream,
          output: l.output,
          ts: l.ts.toISOString(),
        })),
      );
      await run(
        'ap_task_logs',
        sql<Record<string, never>>`
        with r as (
          select * from jsonb_to_recordset(${payload}::jsonb)
                     as r(task_id uuid, agent_id text, seq bigint, stream text, output text, ts timestamptz)
        ), ins as (
          insert into task_logs (task_id, seq, stream, output, ts)
          select r.task_id, r.seq, r.stream, r.output, r.ts
            from r join tasks t on t.task_id = r.task_id and t.agent_id = r.agent_id
          on conflict do nothing
          returning task_id, octet_length(output) as n
        )
        update tasks t set log_bytes = t.log_bytes + s.n
          from (select task_id, sum(n) as n from ins group by task_id) s
         where t.task_id = s.task_id`,
      );
    },

    async markLogsDropped(taskIds) {
      if (taskIds.length === 0) return;
      await db.updateTable('tasks').set({ logs_dropped: true }).where('task_id', 'in', taskIds).execute();
    },

    async followRead(taskId, sinceSeq, limit) {
      const rows = await run(
        'ap_task_follow',
        sql<{
          status: TaskStatusName;
          exit_code: number | null;
          error: string | null;
          logs: { seq: string | number; stream: 'stdout' | 'stderr'; output: string; ts: string }[];
        }>`
        select t.status, t.exit_code, t.error,
               coalesce((select json_agg(json_build_object('seq', l.seq, 'stream', l.stream, 'output', l.output,
                                                           'ts', l.ts) order by l.seq)
                           from (select seq, stream, output, ts from task_logs
                                  where task_id = t.task_id and seq > ${String(sinceSeq)}::bigint
                                  order by seq limit ${limit}) l), '[]'::json) as logs
          from tasks t
         where t.task_id = ${taskId}::uuid`,
      );
      const r = rows[0];
      return r ? followPage(r) : undefined;
    },

    async followReadMany(items, limit) {
      const out = new Map<string, FollowPage>();
      if (items.length === 0) return out;
      const { rows } = await sql<{
        task_id: string;
        status: TaskStatusName;
        exit_code: number | null;
        error: string | null;
        logs: { seq: string | number; stream: 'stdout' | 'stderr'; output: string; ts: string }[];
      }>`
        select t.task_id, t.status, t.exit_code, t.error,
               coalesce((select json_agg(json_build_object('seq', l.seq, 'stream', l.stream, 'output', l.output,
                                                           'ts', l.ts) order by l.seq)
                           from (select seq, stream, output, ts from task_logs
                                  where task_id = t.task_id and seq > s.since_seq
                                  order by seq limit ${limit}) l), '[]'::json) as logs
          from unnest(${items.map((i) => i.taskId)}::uuid[], ${items.map((i) => String(i.sinceSeq))}::bigint[])
               as s(task_id, since_seq)
          join tasks t on t.task_id = s.task_id`.execute(db);
      for (const r of rows) out.set(r.task_id, followPage(r));
      return out;
    },

    async cancel(taskId, reason) {
      const canceled = await db
        .updateTable('tasks')
        .set({
          status: 'canceled',
          completed_at: sql<Date>`now()`,
          cancel_requested_at: sql<Date>`now()`,
          cancel_reason: reason,
          error: `canceled before it was dispatched: ${reason}`,
        })
        .where('task_id', '=', taskId)
        .where('status', '=', 'pending')
        .returningAll()
        .executeTakeFirst();
      if (canceled) return { kind: 'canceled', task: await withScript(canceled) };
      const requested = await db
        .updateTable('tasks')
        .set({ cancel_requested_at: sql<Date>`coalesce(cancel_requested_at, now())`, cancel_reason: reason })
        .where('task_id', '=', taskId)
        .where('status', 'in', ['dispatched', 'running'])
        .returningAll()
        .executeTakeFirst();
      if (requested) return { kind: 'requested', task: await withScript(requested) };
      const task = await db.selectFrom('tasks').selectAll().where('task_id', '=', taskId).executeTakeFirst();
      return task ? { kind: 'finished', task: await withScript(task) } : { kind: 'missing' };
    },

    async pendingCancels(agentIds, olderThanMs) {
      if (agentIds.length === 0) return [];
      const { rows } = await sql<{ task_id: string; agent_id: string; cancel_reason: string | null }>`
        select task_id, agent_id, cancel_reason from tasks
         where status in ('dispatched', 'running') and cancel_requested_at is not null
           and cancel_requested_at < now() - make_interval(secs => ${olderThanMs / 1000})
           and agent_id = any(${agentIds}::text[])`.execute(db);
      return rows;
    },

    async reconcile(agentId, knownTaskIds) {
      const requeued = await sql<{ task_id: string }>`
        update tasks set status = 'pending', dispatched_at = null, dispatched_by = null
         where agent_id = ${agentId} and status = 'dispatched' and not (task_id = any(${knownTaskIds}::uuid[]))
        returning task_id`.execute(db);
      const lost = await sql<{ task_id: string }>`
        update tasks set status = 'lost', completed_at = now(),
               error = 'the agent reconnected without any record of this running task (its state directory was lost?)'
         where agent_id = ${agentId} and status = 'running' and not (task_id = any(${knownTaskIds}::uuid[]))
        returning task_id`.execute(db);
      return [requeued.rows.map((r) => r.task_id), lost.rows.map((r) => r.task_id)];
    },

    async expire() {
      const { rows } = await sql<{ task_id: string }>`
        update tasks set status = 'expired', completed_at = now(),
               error = 'not delivered within its delivery timeout of ' || delivery_timeout_seconds || 's'
         where status = 'pending' and delivery_deadline <= now()
        returning task_id`.execute(db);
      return rows.map((r) => r.task_id);
    },

    async loseOnOfflineAgents(graceSeconds) {
      const { rows } = await sql<{ task_id: string }>`
        update tasks t set status = 'lost', completed_at = now(),
               error = 'agent offline (' || coalesce(a.disconnect_reason, 'unknown') || ') for more than ' || ${graceSeconds}::int || 's'
          from agents a
         where a.agent_id = t.agent_id and t.status in ('dispatched', 'running')
           and a.status = 'offline' and a.disconnected_at < now() - make_interval(secs => ${graceSeconds})
        returning t.task_id`.execute(db);
      return rows.map((r) => r.task_id);
    },

    async purge(days, batch = 1000, rounds = 100) {
      let tasks = 0;
      for (let round = 0; round < rounds; round++) {
        // Oldest first, through tasks_created_idx; the logs go by their foreign key's cascade.
        const r = await sql`
          delete from tasks t
           using (select task_id from tasks
                   where created_at < now() - make_interval(days => ${days}::int)
                     and status in ('succeeded', 'failed', 'timed_out', 'canceled', 'lost', 'expired')
                   order by created_at
                   limit ${batch}::int) old
           where t.task_id = old.task_id`.execute(db);
        const n = Number(r.numAffectedRows ?? 0);
        tasks += n;
        if (n < batch) break;
      }
      // A batch that reuses a script sets its last_used_at under the row's lock, so a
      // script is never deleted under a batch that is naming it.
      const s = await sql`
        delete from task_scripts s
         where s.last_used_at < now() - make_interval(days => ${days}::int)
           and not exists (select 1 from tasks t where t.script_hash = s.script_hash)`.execute(db);
      return { tasks, scripts: Number(s.numAffectedRows ?? 0) };
    },
  };
  return queries;
}
