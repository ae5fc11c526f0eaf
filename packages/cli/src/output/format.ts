/** How tasks and agents read in a terminal. `--json` bypasses all of this. */
import type { AgentJson, TaskJson } from '../client/types.js';
import { renderBlock, renderKeyValues, renderTable } from './table.js';

const DASH = '-';

/** RFC 3339 → `2026-11-28 07:08:23Z` (UTC, to the second); `-` for null. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** `850ms`, `12.3s`, `4m05s`, `2h03m`. */
export function formatDuration(ms: number): string {
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Run time (started → completed, or → now while running); `-` before it starts. */
export function taskDuration(t: Pick<TaskJson, 'started_at' | 'completed_at'>, now = Date.now()): string {
  if (!t.started_at) return DASH;
  const end = t.completed_at ? Date.parse(t.completed_at) : now;
  return formatDuration(end - Date.parse(t.started_at));
}

/** The exit column: the code, else the signal, else `-`. */
export function taskExit(t: Pick<TaskJson, 'exit_code' | 'signal'>): string {
  if (t.exit_code !== null && t.exit_code !== undefined) return String(t.exit_code);
  return t.signal ?? DASH;
}

export function formatTaskTable(tasks: TaskJson[], now = Date.now()): string {
  return renderTable(
    ['TASK_ID', 'AGENT', 'TYPE', 'STATUS', 'EXIT', 'CREATED', 'DURATION'],
    tasks.map((t) => [
      t.task_id,
      t.agent_id,
      t.type,
      t.status,
      taskExit(t),
      formatTime(t.created_at),
      taskDuration(t, now),
    ]),
  );
}

function kv(record: Record<string, unknown> | null | undefined): string {
  const entries = Object.entries(record ?? {}).filter(([, v]) => v !== undefined && v !== null);
  return entries.length === 0 ? DASH : entries.map(([k, v]) => `${k}=${String(v)}`).join(', ');
}

function bytes(n: number, truncated: boolean): string {
  return `${n}${truncated ? ' (truncated)' : ''}`;
}

export function formatTask(t: TaskJson, now = Date.now()): string {
  const or = (v: string | number | null | undefined) =>
    v === null || v === undefined || v === '' ? DASH : String(v);
  const limits = Object.fromEntries(Object.entries(t.limits).filter(([, v]) => v !== 0));
  const pairs: [string, string][] = [
    ['task_id', t.task_id],
    ['agent_id', t.agent_id],
    ['type', t.type],
    ['status', t.status],
    ['exit_code', or(t.exit_code)],
    ['signal', or(t.signal)],
    ['error', or(t.error)],
    ['timeout', `${t.timeout}s (kill grace ${t.kill_grace}s)`],
    ['delivery_timeout', `${t.delivery_timeout}s`],
    ['args', t.args.length === 0 ? DASH : t.args.map((a) => JSON.stringify(a)).join(' ')],
    ['env', kv(t.env) + (t.clean_env ? ' (clean)' : '')],
    ['working_dir', or(t.working_dir)],
    ['run_as', or(t.run_as)],
    ['limits', kv(limits)],
    [
      'limits_enforced',
      t.limits_enforced.length > 0
        ? t.limits_enforced.map((l) => `${l.name}=${l.value} (${l.mechanism})`).join(', ')
        : DASH,
    ],
    ['created_at', formatTime(t.created_at)],
    ['dispatched_at', formatTime(t.dispatched_at)],
    ['started_at', formatTime(t.started_at)],
    ['completed_at', formatTime(t.completed_at)],
    ['duration', taskDuration(t, now)],
    ['cancel_requested_at', formatTime(t.cancel_requested_at)],
    ['cancel_reason', or(t.cancel_reason)],
    ['stdout_bytes', bytes(t.stdout_bytes, t.stdout_truncated)],
    ['stderr_bytes', bytes(t.stderr_bytes, t.stderr_truncated)],
  ];
  if (t.logs_dropped) pairs.push(['logs', `${t.log_bytes} bytes kept, the rest dropped`]);
  let out = renderKeyValues(pairs);
  if (t.script) out += renderBlock('script', t.script);
  if (t.stdout) out += renderBlock('stdout', t.stdout, t.stdout_truncated ? '(truncated)' : '');
  if (t.stderr) out += renderBlock('stderr', t.stderr, t.stderr_truncated ? '(truncated)' : '');
  return out;
}

export function formatAgentTable(agents: AgentJson[]): string {
  return renderTable(
    ['AGENT_ID', 'HOSTNAME', 'STATUS', 'OS/ARCH', 'TASKS', 'LABELS', 'LAST_SEEN'],
    agents.map((a) => [
      a.agent_id,
      a.hostname,
      a.status,
      `${a.os}/${a.arch}`,
      `${a.running_tasks}/${a.capacity}`,
      kv(a.labels),
      formatTime(a.last_seen_at),
    ]),
  );
}

export function formatAgent(a: AgentJson): string {
  const or = (v: string | null) => v ?? DASH;
  return renderKeyValues([
    ['agent_id', a.agent_id],
    ['hostname', a.hostname],
    ['status', a.status],
    ['os', a.os],
    ['arch', a.arch],
    ['version', a.version],
    ['ip_addresses', a.ip_addresses.join(', ') || DASH],
    ['labels', kv(a.labels)],
    ['capacity', String(a.capacity)],
    ['running_tasks', String(a.running_tasks)],
    ['platform_node', or(a.platform_node)],
    ['first_seen_at', formatTime(a.first_seen_at)],
    ['connected_at', formatTime(a.connected_at)],
    ['last_seen_at', formatTime(a.last_seen_at)],
    ['disconnected_at', formatTime(a.disconnected_at)],
    ['disconnect_reason', or(a.disconnect_reason)],
  ]);
}
