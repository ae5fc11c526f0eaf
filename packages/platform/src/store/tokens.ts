/** Queries on api_tokens and join_tokens. Only SHA-256 hashes of tokens are stored. */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { ApiTokensTable, Database, JoinTokensTable, Role } from './schema.js';

export type ApiTokenRow = Omit<Selectable<ApiTokensTable>, 'token_hash'>;
export type JoinTokenRow = Omit<Selectable<JoinTokensTable>, 'token_hash'>;

export interface NewApiToken {
  tokenId: string;
  name: string;
  role: Role;
  hash: Buffer;
  createdBy: string | null;
  /** Seconds from now; undefined = never expires. */
  ttlSeconds?: number;
}

export interface NewJoinToken {
  tokenId: string;
  name: string;
  hash: Buffer;
  labels: Record<string, string>;
  usesMax: number | null;
  ttlSeconds: number;
  createdBy: string | null;
}

export interface TokenQueries {
  createApi(t: NewApiToken): Promise<ApiTokenRow>;
  /** Inserts the token unless one with the same hash exists (bootstrap at every start). */
  ensureApi(t: NewApiToken): Promise<void>;
  /** The live (not revoked, not expired) token with this hash. */
  findApiByHash(hash: Buffer): Promise<ApiTokenRow | undefined>;
  countApi(): Promise<number>;
  listApi(): Promise<ApiTokenRow[]>;
  /** Marks the token revoked; false when there is no such token. */
  revokeApi(tokenId: string): Promise<boolean>;
  /** Best-effort usage stamp. */
  touchApi(tokenId: string): Promise<void>;
  createJoin(t: NewJoinToken): Promise<JoinTokenRow>;
  listJoin(): Promise<JoinTokenRow[]>;
  revokeJoin(tokenId: string): Promise<boolean>;
  /**
   * Uses a join token once, atomically: only a live token with uses left
   * matches, so two enrollments racing for the last use cannot both win.
   */
  consumeJoin(hash: Buffer): Promise<JoinTokenRow | undefined>;
}

const apiColumns = [
  'token_id',
  'name',
  'role',
  'created_at',
  'created_by',
  'expires_at',
  'revoked_at',
  'last_used_at',
] as const;
const joinColumns = [
  'token_id',
  'name',
  'labels',
  'uses_max',
  'uses',
  'created_at',
  'created_by',
  'expires_at',
  'revoked_at',
] as const;

export function createTokenQueries(db: Kysely<Database>): TokenQueries {
  const apiValues = (t: NewApiToken) => ({
    token_id: t.tokenId,
    name: t.name,
    role: t.role,
    token_hash: t.hash,
    created_by: t.createdBy,
    expires_at: t.ttlSeconds === undefined ? null : sql<Date>`now() + make_interval(secs => ${t.ttlSeconds})`,
  });
  return {
    async createApi(t) {
      return db.insertInto('api_tokens').values(apiValues(t)).returning(apiColumns).executeTakeFirstOrThrow();
    },
    async ensureApi(t) {
      await db
        .insertInto('api_tokens')
        .values(apiValues(t))
        .onConflict((oc) => oc.column('token_hash').doNothing())
        .execute();
    },
    async findApiByHash(hash) {
      return db
        .selectFrom('api_tokens')
        .select(apiColumns)
        .where('token_hash', '=', hash)
        .where('revoked_at', 'is', null)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
        .executeTakeFirst();
    },
    async countApi() {
      const r = await db
        .selectFrom('api_tokens')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(r.n);
    },
    async listApi() {
      return db
        .selectFrom('api_tokens')
        .select(apiColumns)
        .orderBy('created_at')
        .orderBy('token_id')
        .execute();
    },
    async revokeApi(tokenId) {
      const r = await db
        .updateTable('api_tokens')
        .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
        .where('token_id', '=', tokenId)
        .executeTakeFirst();
      return r.numUpdatedRows > 0n;
    },
    async touchApi(tokenId) {
      await db
        .updateTable('api_tokens')
        .set({ last_used_at: sql<Date>`now()` })
        .where('token_id', '=', tokenId)
        .execute();
    },
    async createJoin(t) {
      return db
        .insertInto('join_tokens')
        .values({
          token_id: t.tokenId,
          name: t.name,
          token_hash: t.hash,
          labels: JSON.stringify(t.labels),
          uses_max: t.usesMax,
          created_by: t.createdBy,
          expires_at: sql<Date>`now() + make_interval(secs => ${t.ttlSeconds})`,
        })
        .returning(joinColumns)
        .executeTakeFirstOrThrow();
    },
    async listJoin() {
      return db
        .selectFrom('join_tokens')
        .select(joinColumns)
        .orderBy('created_at')
        .orderBy('token_id')
        .execute();
    },
    async revokeJoin(tokenId) {
      const r = await db
        .updateTable('join_tokens')
        .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
        .where('token_id', '=', tokenId)
        .executeTakeFirst();
      return r.numUpdatedRows > 0n;
    },
    async consumeJoin(hash) {
      return db
        .updateTable('join_tokens')
        .set({ uses: sql<number>`uses + 1` })
        .where('token_hash', '=', hash)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', sql<Date>`now()`)
        .where((eb) => eb.or([eb('uses_max', 'is', null), eb('uses', '<', eb.ref('uses_max'))]))
        .returning(joinColumns)
        .executeTakeFirst();
    },
  };
}
