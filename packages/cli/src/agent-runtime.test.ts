import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BUSY_BYTECODE_AGE, IDLE_BYTECODE_AGE, createBytecodeAging } from './agent-runtime.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('task requests switch to the busy bytecode age, and idleness back, once each', async () => {
  const applied: string[] = [];
  // Margins of 400 ms for each sleep to overrun on a loaded machine.
  const aging = createBytecodeAging({}, 1000, (flag) => applied.push(flag));
  assert.ok(aging);
  aging.onTaskRequest();
  await sleep(600);
  aging.onTaskRequest(); // still busy: nothing applied, the idle clock starts again
  await sleep(600);
  // Past the first request's idle time, within the second's: the clock was restarted.
  assert.deepEqual(applied, [BUSY_BYTECODE_AGE], '1,200 ms after the first request, 600 after the last');
  await sleep(1000);
  assert.deepEqual(applied, [BUSY_BYTECODE_AGE, IDLE_BYTECODE_AGE]);
  aging.onTaskRequest();
  assert.deepEqual(applied, [BUSY_BYTECODE_AGE, IDLE_BYTECODE_AGE, BUSY_BYTECODE_AGE]);
  aging.stop();
  await sleep(1200);
  assert.equal(applied.length, 3, 'stopped: no switch back');
});

test('flags chosen with AP_AGENT_V8_FLAGS are left alone', () => {
  assert.equal(createBytecodeAging({ AP_AGENT_V8_FLAGS: '' }), undefined);
});
