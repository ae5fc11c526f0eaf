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
  '0002_tasks': {
    async up(db: Kysely<unknown>) {
      await sql`
        create table tasks (
          task_id                  uuid primary key,
          agent_id                 text not null references agents (agent_id),
          type                     text not null check (type in ('shell', 'python')),
          script                   text not null,
          args                     jsonb not null default '[]'::jsonb,
          env                      jsonb not null default '{}'::jsonb,
          clean_env                boolean not null default false,
          working_dir              text not null default '',
          run_as                   text not null default '',
          timeout_seconds          integer not null check (timeout_seconds > 0),
          kill_grace_seconds       integer not null default 5,
          limits                   jsonb not null default '{}'::jsonb,
          delivery_timeout_seconds integer not null,
          idempotency_key          text unique,
          status                   text not null check (status in
                                     ('pending', 'dispatched', 'running', 'succeeded', 'failed',
                                      'timed_out', 'canceled', 'lost', 'expired')),
          created_at               timestamptz not null default now(),
          delivery_deadline        timestamptz not null,
          dispatched_at            timestamptz,
          started_at               timestamptz,
          completed_at             timestamptz,
          dispatched_by            text,
          cancel_requested_at      timestamptz,
          cancel_reason            text,
          exit_code                integer,
          signal                   text,
          error                    text,
          stdout                   text,
          stderr                   text,
          stdout_bytes             bigint not null default 0,
          stderr_bytes             bigint not null default 0,
          stdout_truncated         boolean not null default false,
          stderr_truncated         boolean not null default false,
          limits_enforced          jsonb not null default '[]'::jsonb,
          log_bytes                bigint not null default 0,
          logs_dropped             boolean not null default false
        )`.execute(db);
      // The dispatcher's claim: oldest pending first, per agent.
      await sql`create index tasks_pending_idx on tasks (agent_id, created_at) where status = 'pending'`.execute(
        db,
      );
      // In-flight tasks per agent (capacity, lost reaper).
      await sql`create index tasks_inflight_idx on tasks (agent_id) where status in ('dispatched', 'running')`.execute(
        db,
      );
      await sql`create index tasks_created_idx on tasks (created_at desc, task_id desc)`.execute(db);
      await sql`create index tasks_agent_created_idx on tasks (agent_id, created_at desc, task_id desc)`.execute(
        db,
      );
      await sql`
        create table task_logs (
          task_id uuid not null references tasks (task_id) on delete cascade,
          seq     bigint not null,
          stream  text not null check (stream in ('stdout', 'stderr')),
          output  text not null,
          ts      timestamptz not null,
          primary key (task_id, seq)
        )`.execute(db);
      // NOTIFY is the nudge, polling the guarantee: a new pending task wakes the
      // process holding its agent's stream; a cancel request wakes it too.
      // Payload: "<kind>:<agent_id>:<task_id>". Sent at commit, never for a rolled-back row.
      await sql`
        create function ap_tasks_notify() returns trigger language plpgsql as $$
        begin
          if tg_op = 'INSERT' and new.status = 'pending' then
            perform pg_notify('ap_tasks', 'pending:' || new.agent_id || ':' || new.task_id);
          elsif tg_op = 'UPDATE' and new.cancel_requested_at is not null and old.cancel_requested_at is null
                and new.status in ('dispatched', 'running') then
            perform pg_notify('ap_tasks', 'cancel:' || new.agent_id || ':' || new.task_id);
          end if;
          return null;
        end $$`.execute(db);
      await sql`
        create trigger tasks_notify after insert or update of cancel_requested_at on tasks
        for each row execute function ap_tasks_notify()`.execute(db);
    },
  },
  '0003_security': {
    async up(db: Kysely<unknown>) {
      // Tokens are 256-bit random strings; only their SHA-256 is stored (see docs/security.md).
      await sql`
        create table api_tokens (
          token_id     uuid primary key,
          name         text not null,
          role         text not null check (role in ('viewer', 'operator', 'admin')),
          token_hash   bytea not null unique,
          created_at   timestamptz not null default now(),
          created_by   text,
          expires_at   timestamptz,
          revoked_at   timestamptz,
          last_used_at timestamptz
        )`.execute(db);
      await sql`
        create table join_tokens (
          token_id    uuid primary key,
          name        text not null,
          token_hash  bytea not null unique,
          labels      jsonb not null default '{}'::jsonb,
          uses_max    integer check (uses_max is null or uses_max > 0),
          uses        integer not null default 0,
          created_at  timestamptz not null default now(),
          created_by  text,
          expires_at  timestamptz not null,
          revoked_at  timestamptz
        )`.execute(db);
      // One row per certificate issued to an agent. The gateway looks the peer
      // certificate up here on every registration, so revoking is one UPDATE.
      await sql`
        create table agent_credentials (
          fingerprint   text primary key,
          agent_id      text not null,
          join_token_id uuid references join_tokens (token_id),
          labels        jsonb not null default '{}'::jsonb,
          issued_at     timestamptz not null default now(),
          expires_at    timestamptz not null,
          revoked_at    timestamptz
        )`.execute(db);
      await sql`create index agent_credentials_agent_idx on agent_credentials (agent_id)`.execute(db);
      await sql`alter table agents add column revoked_at timestamptz`.execute(db);
      await sql`
        create table audit_log (
          audit_id    bigserial primary key,
          at          timestamptz not null default now(),
          token_id    uuid,
          actor       text not null,
          action      text not null,
          target      text,
          method      text not null,
          path        text not null,
          source_ip   text not null,
          status_code integer not null,
          outcome     text not null check (outcome in ('ok', 'denied', 'failed'))
        )`.execute(db);
      await sql`create index audit_log_at_idx on audit_log (at desc, audit_id desc)`.execute(db);
    },
  },
  // A batch's large script is kept once, not once per agent (decision 0008): a
  // task names it by SHA-256 instead of holding it; exactly one of the two is set.
  '0004_task_scripts': {
    async up(db: Kysely<unknown>) {
      await sql`
        create table task_scripts (
          script_hash  bytea primary key check (octet_length(script_hash) = 32),
          script       text not null,
          last_used_at timestamptz not null default now()
        )`.execute(db);
      await sql`alter table tasks alter column script drop not null`.execute(db);
      // Every existing row holds its script and no hash, so both constraints hold for
      // it by construction: NOT VALID skips a scan of the whole table under this
      // migration's lock; new and changed rows are checked as usual.
      await sql`alter table tasks add column script_hash bytea`.execute(db);
      await sql`
        alter table tasks add constraint tasks_script_hash_fkey
        foreign key (script_hash) references task_scripts (script_hash) not valid`.execute(db);
      await sql`
        alter table tasks add constraint tasks_script_once
        check ((script is null) <> (script_hash is null)) not valid`.execute(db);
      // Which tasks name a script: the purge's "no task names it", and the foreign
      // key's check when a script row is deleted. Only batch tasks are in it.
      await sql`create index tasks_script_hash_idx on tasks (script_hash) where script_hash is not null`.execute(
        db,
      );
    },
  },
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};
