/** Queries on agent_credentials: the certificates issued to agents, and revocation. */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { AgentCredentialsTable, Database } from './schema.js';

export type AgentCredentialRow = Selectable<AgentCredentialsTable>;

export interface NewAgentCredential {
  fingerprint: string;
  agentId: string;
  joinTokenId: string | null;
  labels: Record<string, string>;
  expiresAt: Date;
}

export interface CredentialQueries {
  insert(c: NewAgentCredential): Promise<void>;
  byFingerprint(fingerprint: string): Promise<AgentCredentialRow | undefined>;
  /**
   * Revokes every credential of the agent and marks its row revoked; returns
   * false when the agent is unknown (no row and no credential).
   */
  revokeAgent(agentId: string): Promise<boolean>;
  /** Of these agent ids, the ones revoked (sessions to end). */
  revokedAmong(agentIds: string[]): Promise<string[]>;
}

export function createCredentialQueries(db: Kysely<Database>): CredentialQueries {
  return {
    async insert(c) {
      await db
        .insertInto('agent_credentials')
        .values({
          fingerprint: c.fingerprint,
          agent_id: c.agentId,
          join_token_id: c.joinTokenId,
          labels: JSON.stringify(c.labels),
          expires_at: c.expiresAt,
        })
        .execute();
    },
    async byFingerprint(fingerprint) {
      return db
        .selectFrom('agent_credentials')
        .selectAll()
        .where('fingerprint', '=', fingerprint)
        .executeTakeFirst();
    },
    async revokeAgent(agentId) {
      return db.transaction().execute(async (tx) => {
        const c = await tx
          .updateTable('agent_credentials')
          .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
          .where('agent_id', '=', agentId)
          .executeTakeFirst();
        const a = await tx
          .updateTable('agents')
          .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
          .where('agent_id', '=', agentId)
          .executeTakeFirst();
        return c.numUpdatedRows > 0n || a.numUpdatedRows > 0n;
      });
    },
    async revokedAmong(agentIds) {
      if (agentIds.length === 0) return [];
      const rows = await db
        .selectFrom('agents')
        .select('agent_id')
        // One array parameter, however many streams this process holds.
        .where(sql<boolean>`agent_id = any(${agentIds}::text[])`)
        .where('revoked_at', 'is not', null)
        .execute();
      return rows.map((r) => r.agent_id);
    },
  };
}
