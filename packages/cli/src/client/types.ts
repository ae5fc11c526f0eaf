/**
 * The REST contract as the CLI reads it (snake_case, as on the wire). Only
 * the fields the CLI looks at are typed strictly; `--json` prints the
 * response text untouched, so fields added later reach the user anyway.
 */

export type TaskStatus =
  | 'pending'
  | 'dispatched'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'canceled'
  | 'lost'
  | 'expired';

export const TERMINAL_STATUSES: readonly TaskStatus[] = [
  'succeeded',
  'failed',
  'timed_out',
  'canceled',
  'lost',
  'expired',
];

export type TaskType = 'shell' | 'python';

export interface TaskLimits {
  memory_bytes?: number;
  cpu_millicores?: number;
  max_processes?: number;
  max_output_bytes?: number;
}

/** `POST /api/v1/tasks` body. */
export interface CreateTaskBody {
  agent_id: string;
  type: TaskType;
  script: string;
  /** Seconds; the platform's default (300) when absent. */
  timeout?: number;
  args?: string[];
  env?: Record<string, string>;
  clean_env?: boolean;
  working_dir?: string;
  run_as?: string;
  limits?: TaskLimits;
  /** Seconds a task may wait for an offline agent before it is `expired` (platform default 600). */
  delivery_timeout?: number;
  /** Seconds from SIGTERM to SIGKILL on timeout or cancel (platform default 5). */
  kill_grace?: number;
}

export interface TaskJson {
  task_id: string;
  agent_id: string;
  type: TaskType;
  status: TaskStatus;
  /** Only in `GET /tasks/:id`, as are `stdout` and `stderr`. */
  script?: string;
  args: string[];
  env: Record<string, string>;
  clean_env: boolean;
  /** `''` = the agent's default. */
  working_dir: string;
  /** `''` = the agent's user. */
  run_as: string;
  timeout: number;
  kill_grace: number;
  delivery_timeout: number;
  /** Every limit is present; 0 = none. */
  limits: Required<TaskLimits>;
  exit_code: number | null;
  signal: string | null;
  error: string | null;
  stdout?: string | null;
  stderr?: string | null;
  stdout_bytes: number;
  stderr_bytes: number;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  limits_enforced: { name: string; mechanism: string; value: number }[];
  log_bytes: number;
  logs_dropped: boolean;
  cancel_reason: string | null;
  created_at: string;
  delivery_deadline: string;
  dispatched_at: string | null;
  started_at: string | null;
  completed_at: string | null;
  cancel_requested_at: string | null;
}

export interface TaskListJson {
  tasks: TaskJson[];
  next_cursor: string | null;
}

export interface LogEntry {
  seq: number;
  stream: 'stdout' | 'stderr';
  output: string;
  timestamp: string;
}

export interface TaskLogsJson {
  task_id: string;
  status: TaskStatus;
  logs: LogEntry[];
  next_seq: number;
}

/** Data of the SSE `end` event: the task is terminal and every log was sent. */
export interface TaskEnd {
  task_id: string;
  status: TaskStatus;
  exit_code: number | null;
  error: string | null;
}

export interface AgentJson {
  agent_id: string;
  hostname: string;
  os: string;
  arch: string;
  ip_addresses: string[];
  version: string;
  labels: Record<string, string>;
  capacity: number;
  status: 'online' | 'offline';
  running_tasks: number;
  platform_node: string | null;
  first_seen_at: string;
  connected_at: string | null;
  last_seen_at: string;
  disconnected_at: string | null;
  disconnect_reason: string | null;
}

export interface AgentListJson {
  agents: AgentJson[];
  next_cursor: string | null;
}
