import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentJson, TaskJson } from '../client/types.js';
import { formatAgentTable, formatDuration, formatTask, formatTaskTable, formatTime } from './format.js';
import { renderKeyValues, renderTable } from './table.js';

const task: TaskJson = {
  task_id: '0b7e6f1c-2f43-4a55-9d7e-0a0c4f3c9a11',
  agent_id: 'web-1',
  type: 'shell',
  status: 'failed',
  script: 'echo hi\nexit 3',
  args: ['a b'],
  env: { FOO: 'bar' },
  clean_env: false,
  working_dir: '',
  run_as: '',
  timeout: 30,
  kill_grace: 5,
  delivery_timeout: 600,
  limits: { memory_bytes: 268435456, cpu_millicores: 0, max_processes: 0, max_output_bytes: 0 },
  exit_code: 3,
  signal: null,
  error: null,
  stdout: 'hi\n',
  stderr: null,
  stdout_bytes: 3,
  stderr_bytes: 0,
  stdout_truncated: false,
  stderr_truncated: false,
  limits_enforced: [],
  log_bytes: 3,
  logs_dropped: false,
  cancel_reason: null,
  created_at: '2026-11-28T07:08:23.456Z',
  delivery_deadline: '2026-11-28T07:18:23.456Z',
  dispatched_at: '2026-11-28T07:08:23.500Z',
  started_at: '2026-11-28T07:08:23.600Z',
  completed_at: '2026-11-28T07:08:24.834Z',
  cancel_requested_at: null,
};

test('tables pad every column but the last to its widest cell', () => {
  assert.equal(
    renderTable(
      ['A', 'BB'],
      [
        ['xyz', '1'],
        ['q', '22'],
      ],
    ),
    'A    BB\nxyz  1\nq    22\n',
  );
});

test('key/value blocks align values and indent continuation lines', () => {
  assert.equal(
    renderKeyValues([
      ['id', 'x'],
      ['status', 'a\nb'],
    ]),
    'id      x\nstatus  a\n        b\n',
  );
});

test('times are UTC to the second, durations pick a readable unit', () => {
  assert.equal(formatTime('2026-11-28T07:08:23.456Z'), '2026-11-28 07:08:23Z');
  assert.equal(formatTime(null), '-');
  assert.equal(formatDuration(850), '850ms');
  assert.equal(formatDuration(12_340), '12.3s');
  assert.equal(formatDuration(245_000), '4m05s');
  assert.equal(formatDuration(7_380_000), '2h03m');
});

test('a task list row shows id, agent, status, exit code, creation time and run time', () => {
  const out = formatTaskTable([task]);
  const [header, row] = out.trimEnd().split('\n');
  assert.match(header ?? '', /^TASK_ID\s+AGENT\s+TYPE\s+STATUS\s+EXIT\s+CREATED\s+DURATION$/);
  assert.equal(
    row?.split(/\s{2,}/).join('|'),
    `${task.task_id}|web-1|shell|failed|3|2026-11-28 07:08:23Z|1.2s`,
  );
});

test('a task shows its fields, then its script and captured output as indented blocks', () => {
  const out = formatTask(task);
  assert.match(out, /^exit_code\s+3$/m);
  assert.match(out, /^args\s+"a b"$/m);
  assert.match(out, /^env\s+FOO=bar$/m);
  // Limits of 0 mean none and are not shown; empty strings read as `-`.
  assert.match(out, /^limits\s+memory_bytes=268435456$/m);
  assert.match(out, /^working_dir\s+-$/m);
  assert.match(out, /^script:\n {2}echo hi\n {2}exit 3\n/m);
  assert.match(out, /^stdout:\n {2}hi\n/m);
  assert.doesNotMatch(out, /^stderr:/m);
});

test('an agent list row shows labels and running/capacity', () => {
  const agent: AgentJson = {
    agent_id: 'a1',
    hostname: 'h1',
    os: 'linux',
    arch: 'x64',
    ip_addresses: [],
    version: '0.1.0',
    labels: { env: 'prod', role: 'web' },
    capacity: 5,
    status: 'online',
    running_tasks: 2,
    platform_node: null,
    first_seen_at: '2026-11-28T07:00:00Z',
    connected_at: null,
    last_seen_at: '2026-11-28T07:08:00Z',
    disconnected_at: null,
    disconnect_reason: null,
  };
  const row = formatAgentTable([agent]).trimEnd().split('\n')[1] ?? '';
  assert.equal(
    row.split(/\s{2,}/).join('|'),
    'a1|h1|online|linux/x64|2/5|env=prod, role=web|2026-11-28 07:08:00Z',
  );
});
