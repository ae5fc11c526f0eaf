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
}

export interface Database {
  agents: AgentsTable;
}
