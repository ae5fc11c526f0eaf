import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TaskEnd } from './client/types.js';
import { taskExitCode } from './task-exit.js';

const end = (status: TaskEnd['status'], exit_code: number | null, error: string | null = null): TaskEnd => ({
  task_id: 't1',
  status,
  exit_code,
  error,
});

test('the exit code is the script’s own when it has one', () => {
  assert.deepEqual(taskExitCode(end('succeeded', 0)), { code: 0 });
  assert.deepEqual(taskExitCode(end('failed', 3)), { code: 3 });
});

test('timeouts exit 124 and cancellations 130, as timeout(1) and an interrupted shell do', () => {
  assert.equal(taskExitCode(end('timed_out', null)).code, 124);
  assert.equal(taskExitCode(end('canceled', null)).code, 130);
});

test('a task with no exit code exits 1 and says why in one line', () => {
  assert.deepEqual(taskExitCode(end('lost', null, 'agent restarted while the task ran')), {
    code: 1,
    message: 'task t1 lost: agent restarted while the task ran',
  });
  assert.deepEqual(taskExitCode(end('expired', null)), { code: 1, message: 'task t1 expired' });
  assert.equal(
    taskExitCode(end('timed_out', 143, 'timed out after 1s')).message,
    'task t1 timed out after 1s',
  );
  assert.deepEqual(taskExitCode(end('failed', null, 'spawn sh ENOENT')), {
    code: 1,
    message: 'task t1 failed: spawn sh ENOENT',
  });
});
