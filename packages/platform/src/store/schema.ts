/** Row types of the platform's tables, as Kysely sees them. snake_case, as in SQL. */
import type { ColumnType } from 'kysely';

type Timestamp = ColumnType<Date, Date | string, Date | string>;

export interface AgentsTable {
  agent_id: string;
  hostname: string;
  os: string;
  arch: string;
  ip_addresses: string[];
  version: string;
  labels: ColumnType<Record<string, string>, string, string>;
  capacity: number;
  status: 'online' | 'offline';
  /** The stream that currently owns the agent; a stale stream may not change the row. */
  session_id: string | null;
  /** The platform process holding the agent's stream. */
  platform_node: string | null;
  first_seen_at: ColumnType<Date, Date | string | undefined, Date | string>;
  connected_at: Timestamp | null;
  last_seen_at: Timestamp;
  disconnected_at: Timestamp | null;
  disconnect_reason: string | null;
  running_tasks: ColumnType<number, number | undefined, number>;
  /** Set when an admin revoked the agent: it can no longer register. */
  revoked_at: NullableTime;
}

export type TaskStatusName =
  | 'pending'
  | 'dispatched'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'canceled'
  | 'lost'
  | 'expired';

export interface TaskLimitsJson {
  memory_bytes: number;
  cpu_millicores: number;
  max_processes: number;
  max_output_bytes: number;
}

export interface EnforcedLimitJson {
  name: string;
  mechanism: string;
  value: number;
}

type Json<T> = ColumnType<T, string, string>;
type NullableTime = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export interface TasksTable {
  task_id: string;
  agent_id: string;
  type: 'shell' | 'python';
  /** The script, or null when it is kept once in task_scripts (`script_hash`; a batch's large script). */
  script: string | null;
  /** SHA-256 of the script in task_scripts, or null when `script` holds it. */
  script_hash: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  args: Json<string[]>;
  env: Json<Record<string, string>>;
  clean_env: boolean;
  working_dir: string;
  run_as: string;
  timeout_seconds: number;
  kill_grace_seconds: number;
  limits: Json<TaskLimitsJson>;
  delivery_timeout_seconds: number;
  idempotency_key: string | null;
  status: TaskStatusName;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  delivery_deadline: Timestamp;
  dispatched_at: NullableTime;
  started_at: NullableTime;
  completed_at: NullableTime;
  dispatched_by: string | null;
  cancel_requested_at: NullableTime;
  cancel_reason: string | null;
  exit_code: number | null;
  signal: string | null;
  error: string | null;
  stdout: string | null;
  stderr: string | null;
  stdout_bytes: ColumnType<string, number | string | undefined, number | string>;
  stderr_bytes: ColumnType<string, number | string | undefined, number | string>;
  stdout_truncated: ColumnType<boolean, boolean | undefined, boolean>;
  stderr_truncated: ColumnType<boolean, boolean | undefined, boolean>;
  limits_enforced: ColumnType<EnforcedLimitJson[], string | undefined, string>;
  log_bytes: ColumnType<string, number | string | undefined, number | string>;
  logs_dropped: ColumnType<boolean, boolean | undefined, boolean>;
}

/** Scripts kept once however many tasks run them (a batch's large script), by SHA-256. */
export interface TaskScriptsTable {
  script_hash: Buffer;
  script: string;
  /** Set when a batch stores or reuses it; the purge removes scripts unused for the retention period. */
  last_used_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface TaskLogsTable {
  task_id: string;
  seq: ColumnType<string, number | string, number | string>;
  stream: 'stdout' | 'stderr';
  output: string;
  ts: Timestamp;
}

export type Role = 'viewer' | 'operator' | 'admin';

export interface ApiTokensTable {
  token_id: string;
  name: string;
  role: Role;
  token_hash: Buffer;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  created_by: string | null;
  expires_at: NullableTime;
  revoked_at: NullableTime;
  last_used_at: NullableTime;
}

export interface JoinTokensTable {
  token_id: string;
  name: string;
  token_hash: Buffer;
  labels: Json<Record<string, string>>;
  uses_max: number | null;
  uses: ColumnType<number, number | undefined, number>;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  created_by: string | null;
  expires_at: Timestamp;
  revoked_at: NullableTime;
}

export interface AgentCredentialsTable {
  fingerprint: string;
  agent_id: string;
  join_token_id: string | null;
  labels: Json<Record<string, string>>;
  issued_at: ColumnType<Date, Date | string | undefined, Date | string>;
  expires_at: Timestamp;
  revoked_at: NullableTime;
}

export interface AuditLogTable {
  audit_id: ColumnType<string, never, never>;
  at: ColumnType<Date, Date | string | undefined, never>;
  token_id: string | null;
  actor: string;
  action: string;
  target: string | null;
  method: string;
  path: string;
  source_ip: string;
  status_code: number;
  outcome: 'ok' | 'denied' | 'failed';
}

export interface Database {
  agents: AgentsTable;
  tasks: TasksTable;
  task_scripts: TaskScriptsTable;
  task_logs: TaskLogsTable;
  api_tokens: ApiTokensTable;
  join_tokens: JoinTokensTable;
  agent_credentials: AgentCredentialsTable;
  audit_log: AuditLogTable;
}
