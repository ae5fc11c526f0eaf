/** The audit log: one row per mutating REST call, whatever its outcome. */
import { sql, type Insertable, type Kysely, type Selectable } from 'kysely';
import type { AuditLogTable, Database } from './schema.js';

export type AuditRow = Selectable<AuditLogTable>;
export type AuditEntry = Insertable<AuditLogTable>;

export interface AuditQuery {
  /** Entries older than this id (the previous page's last). */
  beforeId?: string;
  tokenId?: string;
  limit: number;
}

export interface AuditQueries {
  insert(entries: AuditEntry[]): Promise<void>;
  /** Newest first. */
  list(q: AuditQuery): Promise<AuditRow[]>;
}

export function createAuditQueries(db: Kysely<Database>): AuditQueries {
  return {
    async insert(entries) {
      if (entries.length === 0) return;
      await db.insertInto('audit_log').values(entries).execute();
    },
    async list(q) {
      let query = db.selectFrom('audit_log').selectAll().orderBy('audit_id', 'desc').limit(q.limit);
      if (q.beforeId !== undefined) query = query.where('audit_id', '<', sql<string>`${q.beforeId}::bigint`);
      if (q.tokenId !== undefined) query = query.where('token_id', '=', q.tokenId);
      return query.execute();
    },
  };
}
