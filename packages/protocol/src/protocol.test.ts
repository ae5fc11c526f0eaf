import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AgentMessage,
  TASK_STATUS_NAMES,
  TaskStatus,
  isTerminalStatus,
  taskStatusFromName,
  taskStatusToName,
} from './index.js';

test('every status name maps to a distinct enum value and back', () => {
  const seen = new Set<TaskStatus>();
  for (const name of TASK_STATUS_NAMES) {
    const e = taskStatusFromName(name);
    assert.notEqual(e, TaskStatus.TASK_STATUS_UNSPECIFIED, name);
    assert.ok(!seen.has(e), `duplicate enum for ${name}`);
    seen.add(e);
    assert.equal(taskStatusToName(e), name);
  }
  assert.equal(taskStatusToName(TaskStatus.TASK_STATUS_UNSPECIFIED), undefined);
});

test('only finished states are terminal', () => {
  assert.equal(isTerminalStatus('running'), false);
  assert.equal(isTerminalStatus('pending'), false);
  assert.equal(isTerminalStatus('lost'), true);
  assert.equal(isTerminalStatus('expired'), true);
});

test('a task log round-trips through the wire encoding with its sequence number', () => {
  const msg: AgentMessage = {
    message: {
      $case: 'taskLog',
      value: {
        taskId: 't1',
        output: 'héllo\n',
        isStderr: true,
        seq: 42,
        timestamp: new Date(1_700_000_000_123),
      },
    },
  };
  const back = AgentMessage.decode(AgentMessage.encode(msg).finish());
  assert.deepEqual(back, msg);
});
