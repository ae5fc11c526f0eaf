import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ApiError, CLI_ERRORS, CliError, describeError } from './errors.js';

test('every apctl error code is documented in docs/cli.md', () => {
  const doc = readFileSync(new URL('../../../docs/cli.md', import.meta.url), 'utf8');
  const missing = Object.keys(CLI_ERRORS).filter((code) => code !== 'USAGE' && !doc.includes(`\`${code}\``));
  assert.deepEqual(missing, []);
});

test('errors print as one `apctl: CODE: message` line; usage errors exit 2 without a code', () => {
  assert.deepEqual(describeError(new ApiError('TASK_NOT_FOUND', 'task t not found', 404)), {
    line: 'apctl: TASK_NOT_FOUND: task t not found',
    exitCode: 1,
  });
  assert.deepEqual(describeError(new CliError('USAGE', '--env takes KEY=VALUE')), {
    line: 'apctl: --env takes KEY=VALUE',
    exitCode: 2,
  });
  assert.deepEqual(describeError(new Error('boom')), { line: 'apctl: boom', exitCode: 1 });
});
