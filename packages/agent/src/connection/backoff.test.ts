import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from './backoff.js';

test('backoff ceilings double per attempt and stop at the cap', () => {
  const top = () => 0.999999;
  assert.equal(backoffDelay(0, {}, top), 499);
  assert.equal(backoffDelay(1, {}, top), 999);
  assert.equal(backoffDelay(3, {}, top), 3999);
  assert.equal(backoffDelay(10, {}, top), 29_999);
  assert.equal(backoffDelay(1000, {}, top), 29_999);
});

test('backoff is jittered over the whole range but never below the minimum', () => {
  assert.equal(
    backoffDelay(5, {}, () => 0),
    100,
  );
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(backoffDelay(6, {}));
  assert.ok(seen.size > 150, `expected spread-out delays, got ${seen.size} distinct`);
  for (const d of seen) assert.ok(d >= 100 && d <= 32_000);
});
