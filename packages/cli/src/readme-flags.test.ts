/**
 * The README's configuration table against the built `apctl`: every flag a row
 * names for `server`, `dev`, `agent` or `tokens create` is one that command's
 * --help lists (a documented flag the command did not take, `server
 * --lost-grace`, failed with "unknown option"). Needs the build (npm test
 * runs it first).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const APCTL = path.join(ROOT, 'packages/cli/dist/apctl.mjs');

function help(command: string): string {
  const r = spawnSync(process.execPath, [APCTL, ...command.split(' '), '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `apctl ${command} --help: ${r.stderr}`);
  return r.stdout;
}

test('every flag in the README configuration table is taken by the command it is listed for', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Operations'));
  const checked: string[] = [];
  for (const line of table.split('\n')) {
    const first = line.split(/(?<!\\)\|/)[1]?.trim() ?? '';
    // `server --x`, `server\|dev --x`, `agent --x`, `tokens create --x`, then maybe `--y` of the same command
    const m = /^`((?:server|dev|agent)(?:\\\|(?:server|dev|agent))*|tokens create) --/.exec(first);
    if (!m?.[1]) continue;
    const commands = m[1].split('\\|');
    const flags = [...first.matchAll(/(--[a-z][a-z0-9-]*)/g)].map((f) => f[1] ?? '');
    for (const command of commands) {
      const text = help(command);
      for (const flag of flags) {
        assert.ok(new RegExp(`(^|\\s)${flag}[ ,=<\\n]`).test(text), `apctl ${command} --help lacks ${flag}`);
        checked.push(`${command} ${flag}`);
      }
    }
  }
  // The table has rows for all four commands; a parser that matched nothing would pass vacuously.
  for (const c of [
    'server --lost-grace',
    'dev --data-dir',
    'agent --state-dir',
    'tokens create --database-url',
  ])
    assert.ok(checked.includes(c), `${c} not found in the table: ${checked.join(', ')}`);
});
