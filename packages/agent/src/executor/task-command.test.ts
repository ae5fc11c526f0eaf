import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  CLEAN_PATH,
  buildEnv,
  defaultWorkDir,
  mountOptions,
  onTmpfs,
  parseShebang,
  safeName,
} from './task-command.js';
import type { TaskSpec } from './types.js';

const spec = (over: Partial<TaskSpec>): TaskSpec => ({
  taskId: 't',
  type: 'shell',
  script: '',
  args: [],
  env: {},
  cleanEnv: false,
  workingDir: '',
  runAs: '',
  timeoutSeconds: 0,
  killGraceSeconds: 0,
  limits: { memoryBytes: 0, cpuMillicores: 0, maxProcesses: 0, maxOutputBytes: 0 },
  ...over,
});

test('shebang gives the interpreter and at most one argument, as Linux reads it', () => {
  assert.deepEqual(parseShebang('#!/bin/bash\necho'), { interpreter: '/bin/bash', arg: null });
  assert.deepEqual(parseShebang('#! /usr/bin/env python3 -u\r\nx'), {
    interpreter: '/usr/bin/env',
    arg: 'python3 -u',
  });
  assert.equal(parseShebang('echo hi\n#!/bin/bash'), null);
  assert.equal(parseShebang('#!\n'), null);
});

test('clean environment has only a sane PATH, identity and the task env', () => {
  const env = buildEnv(spec({ cleanEnv: true, env: { A: '1' } }), null);
  assert.equal(env.PATH, CLEAN_PATH);
  assert.equal(env.A, '1');
  assert.ok(env.HOME);
  for (const key of Object.keys(env))
    assert.ok(['PATH', 'LANG', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'A'].includes(key), key);
});

test('task env overrides the agent env and python is unbuffered', () => {
  process.env.EXECUTOR_TEST_VAR = 'agent';
  const env = buildEnv(spec({ type: 'python', env: { EXECUTOR_TEST_VAR: 'task' } }), null);
  assert.equal(env.EXECUTOR_TEST_VAR, 'task');
  assert.equal(env.PYTHONUNBUFFERED, '1');
  delete process.env.EXECUTOR_TEST_VAR;
});

test('a given base environment is used instead of process.env, and left unchanged', () => {
  process.env.EXECUTOR_TEST_LIVE = 'live';
  try {
    const base = Object.freeze({ FROM_BASE: 'b', LANG: 'xx_XX.UTF-8', PATH: '/base/bin' });
    const env = buildEnv(spec({ env: { MINE: 'm' } }), null, base);
    assert.equal(env.FROM_BASE, 'b');
    assert.equal(env.MINE, 'm');
    assert.equal(env.EXECUTOR_TEST_LIVE, undefined, 'not read from process.env');
    const clean = buildEnv(spec({ cleanEnv: true }), null, base);
    assert.equal(clean.LANG, 'xx_XX.UTF-8');
    assert.equal(clean.FROM_BASE, undefined);
    assert.deepEqual(Object.keys(base), ['FROM_BASE', 'LANG', 'PATH']);
  } finally {
    delete process.env.EXECUTOR_TEST_LIVE;
  }
});

test('task ids become safe path components', () => {
  assert.equal(safeName('../../etc/passwd'), 'task.._.._etc_passwd');
  assert.equal(safeName('abc-123_x.y'), 'abc-123_x.y');
  assert.equal(safeName(''), 'task');
});

test('the default work directory is on a tmpfs when the host has one', (t) => {
  if (!onTmpfs('/dev/shm')) {
    t.skip('/dev/shm is not a tmpfs here: no tmpfs to prefer');
    return;
  }
  // A temp directory that is a tmpfs is kept as it is.
  assert.equal(defaultWorkDir('/dev/shm', '/nonexistent'), '/dev/shm/agent-platform-tasks');
  // One on a disk gives way to /dev/shm.
  const disk = process.cwd();
  if (onTmpfs(disk)) {
    t.diagnostic(`${disk} is a tmpfs too: the disk case is not checked`);
  } else {
    assert.equal(defaultWorkDir(disk, '/dev/shm'), '/dev/shm/agent-platform-tasks');
    // No tmpfs to go to: the temp directory.
    assert.equal(defaultWorkDir(disk, '/nonexistent'), path.join(disk, 'agent-platform-tasks'));
  }
  const shm = mkdtempSync(path.join('/dev/shm', 'workdir-test-'));
  try {
    assert.equal(onTmpfs(shm), true);
    assert.equal(onTmpfs(path.join(shm, 'missing')), false);
  } finally {
    rmSync(shm, { recursive: true, force: true });
  }
  // This host's own default (where /dev/shm is mounted noexec, the temp directory may be kept).
  const shmNoexec = mountOptions('/dev/shm', readFileSync('/proc/self/mounts', 'utf8')).includes('noexec');
  if (onTmpfs(os.tmpdir())) assert.ok(defaultWorkDir().startsWith(os.tmpdir()));
  else if (!shmNoexec) assert.ok(defaultWorkDir().startsWith('/dev/shm/'));
});

test('the mount holding a directory is the longest mount point containing it, the last of equal ones', () => {
  const mounts = [
    '/dev/vda / ext4 rw,relatime 0 0',
    'tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0',
    'tmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec 0 0',
    'tmpfs /tmp tmpfs rw,noexec 0 0',
    'tmpfs /tmpx tmpfs rw 0 0',
    'tmpfs /mnt/with\\040space tmpfs rw,noexec 0 0',
  ].join('\n');
  assert.ok(mountOptions('/dev/shm/agent-platform-tasks', mounts).includes('noexec'));
  assert.ok(mountOptions('/tmp', mounts).includes('noexec'));
  // /tmpx is not under /tmp.
  assert.deepEqual(mountOptions('/tmpx/a', mounts), ['rw']);
  assert.deepEqual(mountOptions('/var/tmp', mounts), ['rw', 'relatime']);
  assert.ok(mountOptions('/mnt/with space/x', mounts).includes('noexec'));
  assert.deepEqual(mountOptions('/x', ''), []);
});
