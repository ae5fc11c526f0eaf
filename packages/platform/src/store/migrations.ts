/**
 * Numbered, forward-only schema migrations, applied at start-up by Kysely's
 * Migrator, which holds a PostgreSQL advisory lock while it runs: two platforms
 * started at once on one empty database both come up, one waits for the other.
 * Migrations live in code (not files) so a bundled `apctl` carries them.
 * Never edit a migration that has shipped; add the next number.
 */
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

const migrations: Record<string, Migration> = {
  '0001_agents': {
    async up(db: Kysely<unknown>) {
      await sql`
        create table agents (
          agent_id          text primary key,
          hostname          text not null,
          os                text not null,
          arch              text not null,
          ip_addresses      text[] not null default '{}',
          version           text not null,
          labels            jsonb not null default '{}'::jsonb,
          capacity          integer not null check (capacity > 0),
          status            text not null check (status in ('online', 'offline')),
          session_id        uuid,
          platform_node     text,
          first_seen_at     timestamptz not null default now(),
          connected_at      timestamptz,
          last_seen_at      timestamptz not null,
          disconnected_at   timestamptz,
          disconnect_reason text,
          running_tasks     integer not null default 0
        )`.execute(db);
      await sql`create index agents_status_idx on agents (status, last_seen_at)`.execute(db);
      await sql`create index agents_labels_idx on agents using gin (labels jsonb_path_ops)`.execute(db);
    },
  },
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};
