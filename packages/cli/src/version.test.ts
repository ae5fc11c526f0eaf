import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VERSION as PLATFORM_VERSION } from '@agent-platform/platform';
import { AGENT_VERSION } from '@agent-platform/agent';
import { VERSION } from './version.js';

test('apctl, the platform and the agent report one version', () => {
  assert.equal(VERSION, PLATFORM_VERSION);
  assert.equal(VERSION, AGENT_VERSION);
});
