import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BUSY_BYTECODE_AGE, IDLE_BYTECODE_AGE, createBytecodeAging } from './agent-runtime.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('task requests switch to the busy bytecode age, and idleness back, once each', async () => {
  const applied: string[] = [];
  const aging = createBytecodeAging({}, 150, (flag) => applied.push(flag));
  assert.ok(aging);
  aging.onTaskRequest();
  await sleep(100);
  aging.onTaskRequest(); // still busy: nothing applied, the idle clock starts again
  await sleep(100);
  assert.deepEqual(applied, [BUSY_BYTECODE_AGE], '200 ms after the first request, 100 after the last');
  await sleep(150);
  assert.deepEqual(applied, [BUSY_BYTECODE_AGE, IDLE_BYTECODE_AGE]);
  aging.onTaskRequest();
  assert.deepEqual(applied, [BUSY_BYTECODE_AGE, IDLE_BYTECODE_AGE, BUSY_BYTECODE_AGE]);
  aging.stop();
  await sleep(200);
  assert.equal(applied.length, 3, 'stopped: no switch back');
});

test('flags chosen with AP_AGENT_V8_FLAGS are left alone', () => {
  assert.equal(createBytecodeAging({ AP_AGENT_V8_FLAGS: '' }), undefined);
});
