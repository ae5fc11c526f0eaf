import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentRegister } from '@agent-platform/protocol';
import { validateRegistration } from './validate.js';

const good: AgentRegister = {
  agentId: '6f1c2f0e-1d7e-4a47-9d8e-2b1f6f0c9a11',
  hostname: 'web-1',
  os: 'linux',
  arch: 'x64',
  ipAddresses: ['10.0.0.5', 'fe80::1'],
  version: '0.1.0',
  labels: { env: 'prod', 'team/owner': 'sre' },
  capacity: 5,
  pendingTaskIds: [],
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

test('a complete registration passes unchanged', () => {
  const r = validateRegistration(good);
  assert.equal(r.hostname, 'web-1');
  assert.deepEqual(r.labels, good.labels);
});

test('each malformed field is refused with INVALID_REGISTRATION', () => {
  const bad: Partial<AgentRegister>[] = [
    { hostname: '' },
    { hostname: '   ' },
    { hostname: 'h'.repeat(256) },
    { agentId: '' },
    { agentId: 'has space' },
    { os: '' },
    { ipAddresses: ['not-an-ip'] },
    { labels: { '': 'x' } },
    { labels: { k: 'v'.repeat(256) } },
    { labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) },
    { capacity: 0 },
    { capacity: 1.5 },
    // PostgreSQL stores no NUL: refused here rather than failing the write (found by hostile.test.ts)
    { hostname: 'web\u00001' },
    { os: 'linux\u0000' },
    { arch: '\u0000' },
    { version: '\u0000' },
    { labels: { env: 'pr\u0000od' } },
  ];
  for (const patch of bad) {
    assert.equal(
      codeOf(() => validateRegistration({ ...good, ...patch })),
      'INVALID_REGISTRATION',
      JSON.stringify(patch).slice(0, 80),
    );
  }
});
