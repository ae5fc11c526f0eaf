/** Queries on the agents table. Times come from the database clock (now()). */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { AgentsTable, Database } from './schema.js';

export type AgentRow = Selectable<AgentsTable>;

export interface AgentRegistration {
  agentId: string;
  hostname: string;
  os: string;
  arch: string;
  ipAddresses: string[];
  version: string;
  labels: Record<string, string>;
  capacity: number;
}

export interface HeartbeatMark {
  agentId: string;
  sessionId: string;
  runningTasks: number;
}

export interface AgentListQuery {
  status?: 'online' | 'offline';
  /** Every key must be present; a non-null value must match. */
  labels?: { key: string; value: string | null }[];
  /** Return agents whose id sorts after this one. */
  after?: string;
  limit: number;
}

export interface AgentQueries {
  /** Marks the agent online on a new session, creating its row on first contact. */
  register(reg: AgentRegistration, sessionId: string, platformNode: string): Promise<AgentRow>;
  /** Records heartbeats (one statement for many agents); stale sessions are ignored. */
  touch(marks: HeartbeatMark[]): Promise<void>;
  /** Marks one session offline; does nothing if the agent has since connected again. */
  markOffline(agentId: string, sessionId: string, reason: string): Promise<boolean>;
  /** Marks online agents silent for longer than `silentSeconds` offline; returns their ids. */
  markSilentOffline(silentSeconds: number): Promise<string[]>;
  /** Marks every agent held by a platform node offline (clean shutdown). */
  markNodeOffline(platformNode: string, reason: string): Promise<number>;
  get(agentId: string): Promise<AgentRow | undefined>;
  /** Which of these agent ids exist, with their host names. */
  existing(agentIds: string[]): Promise<{ agent_id: string; hostname: string }[]>;
  list(q: AgentListQuery): Promise<AgentRow[]>;
}

export function createAgentQueries(db: Kysely<Database>): AgentQueries {
  return {
    async register(reg, sessionId, platformNode) {
      const values = {
        agent_id: reg.agentId,
        hostname: reg.hostname,
        os: reg.os,
        arch: reg.arch,
        ip_addresses: reg.ipAddresses,
        version: reg.version,
        labels: JSON.stringify(reg.labels),
        capacity: reg.capacity,
        status: 'online' as const,
        session_id: sessionId,
        platform_node: platformNode,
        connected_at: sql<Date>`now()`,
        last_seen_at: sql<Date>`now()`,
        disconnected_at: null,
        disconnect_reason: null,
        running_tasks: 0,
      };
      const { agent_id: _id, ...update } = values;
      return db
        .insertInto('agents')
        .values(values)
        .onConflict((oc) => oc.column('agent_id').doUpdateSet(update))
        .returningAll()
        .executeTakeFirstOrThrow();
    },

    async touch(marks) {
      if (marks.length === 0) return;
      await sql`
        update agents a
           set last_seen_at = now(), running_tasks = m.running_tasks
          from unnest(${marks.map((m) => m.agentId)}::text[],
                      ${marks.map((m) => m.sessionId)}::uuid[],
                      ${marks.map((m) => m.runningTasks)}::int[]) as m(agent_id, session_id, running_tasks)
         where a.agent_id = m.agent_id and a.session_id = m.session_id and a.status = 'online'`.execute(db);
    },

    async markOffline(agentId, sessionId, reason) {
      const r = await db
        .updateTable('agents')
        .set({
          status: 'offline',
          disconnected_at: sql<Date>`now()`,
          disconnect_reason: reason,
          platform_node: null,
          running_tasks: 0,
        })
        .where('agent_id', '=', agentId)
        .where('session_id', '=', sessionId)
        .where('status', '=', 'online')
        .executeTakeFirst();
      return r.numUpdatedRows > 0n;
    },

    async markSilentOffline(silentSeconds) {
      const rows = await db
        .updateTable('agents')
        .set({
          status: 'offline',
          disconnected_at: sql<Date>`now()`,
          disconnect_reason: 'heartbeat_timeout',
          platform_node: null,
          running_tasks: 0,
        })
        .where('status', '=', 'online')
        .where('last_seen_at', '<', sql<Date>`now() - make_interval(secs => ${silentSeconds})`)
        .returning('agent_id')
        .execute();
      return rows.map((r) => r.agent_id);
    },

    async markNodeOffline(platformNode, reason) {
      const r = await db
        .updateTable('agents')
        .set({
          status: 'offline',
          disconnected_at: sql<Date>`now()`,
          disconnect_reason: reason,
          platform_node: null,
          running_tasks: 0,
        })
        .where('platform_node', '=', platformNode)
        .where('status', '=', 'online')
        .executeTakeFirst();
      return Number(r.numUpdatedRows);
    },

    async existing(agentIds) {
      if (agentIds.length === 0) return [];
      const rows = await db
        .selectFrom('agents')
        .select(['agent_id', 'hostname'])
        .where('agent_id', 'in', agentIds)
        .execute();
      return rows;
    },

    async get(agentId) {
      return db.selectFrom('agents').selectAll().where('agent_id', '=', agentId).executeTakeFirst();
    },

    async list(q) {
      let query = db.selectFrom('agents').selectAll().orderBy('agent_id').limit(q.limit);
      if (q.status) query = query.where('status', '=', q.status);
      if (q.after !== undefined) query = query.where('agent_id', '>', q.after);
      for (const l of q.labels ?? []) {
        query =
          l.value === null
            ? query.where(sql<boolean>`labels ? ${l.key}`)
            : query.where(sql<boolean>`labels @> ${JSON.stringify({ [l.key]: l.value })}::jsonb`);
      }
      return query.execute();
    },
  };
}
