/**
 * The store: a PostgreSQL pool behind Kysely, migrations, and the platform's
 * queries. This folder is the only place with SQL.
 */
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from './schema.js';
import { migrationProvider } from './migrations.js';
import { createAgentQueries, type AgentQueries } from './agents.js';
import { createTaskQueries, type TaskQueries } from './tasks.js';
import { createTokenQueries, type TokenQueries } from './tokens.js';
import { createCredentialQueries, type CredentialQueries } from './credentials.js';
import { createAuditQueries, type AuditQueries } from './audit.js';

export interface StoreOptions {
  /** postgres:// URL of the database. */
  databaseUrl: string;
  /** Pool size; default 10. */
  maxConnections?: number;
  logger: Logger;
}

export interface Store {
  readonly db: Kysely<Database>;
  readonly pool: pg.Pool;
  readonly agents: AgentQueries;
  readonly tasks: TaskQueries;
  readonly tokens: TokenQueries;
  readonly credentials: CredentialQueries;
  readonly audit: AuditQueries;
  /** Applies pending migrations under an advisory lock; returns the names applied. */
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * How long an unused database connection is kept open. pg-pool's default (10 s)
 * closed the pools' connections in any lull of ten seconds between calls, and
 * the next call paid for a new backend and for preparing its statements again:
 * a one-host batch call after 11 s idle took 19.5 ms with the default, 14.4 ms
 * with connections kept (docs/performance.md, session 8). Ten minutes, as
 * HikariCP's default.
 */
export const IDLE_CONNECTION_MS = 10 * 60_000;

export function createStore(options: StoreOptions): Store {
  let closed = false;
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: options.maxConnections ?? 10,
    idleTimeoutMillis: IDLE_CONNECTION_MS,
    application_name: 'agent-platform',
  });
  // An idle client that errors (server restart) must not crash the process;
  // the pool drops it and the next query opens a new connection.
  // pool.end() resolves before its connections' sockets are closed, so an embedded
  // PostgreSQL stopped right after close() ends them with 57P01: not worth a warning.
  const onIdleError = (err: Error) => {
    if (!closed)
      options.logger.warn(
        { err: { message: err.message, code: (err as { code?: string }).code } },
        'idle database connection failed',
      );
  };
  pool.on('error', onIdleError);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  // Writes nobody is promised (log chunks, started marks) commit without waiting
  // for the WAL flush, on connections of their own; see TaskQueries.applyProgress.
  const relaxedPool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: 2,
    idleTimeoutMillis: IDLE_CONNECTION_MS,
    application_name: 'agent-platform-progress',
    options: '-c synchronous_commit=off',
  });
  relaxedPool.on('error', onIdleError);
  const relaxedDb = new Kysely<Database>({ dialect: new PostgresDialect({ pool: relaxedPool }) });
  return {
    db,
    pool,
    agents: createAgentQueries(db),
    tasks: createTaskQueries(db, pool, { db: relaxedDb, pool: relaxedPool }),
    tokens: createTokenQueries(db),
    credentials: createCredentialQueries(db),
    audit: createAuditQueries(db),
    async migrate() {
      const migrator = new Migrator({ db, provider: migrationProvider });
      const { error, results } = await migrator.migrateToLatest();
      if (error)
        throw error instanceof Error ? error : new Error(`migration failed: ${JSON.stringify(error)}`);
      const applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
      if (applied.length > 0) options.logger.info({ applied }, 'migrations applied');
      return applied;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([db.destroy(), relaxedDb.destroy()]);
    },
  };
}
