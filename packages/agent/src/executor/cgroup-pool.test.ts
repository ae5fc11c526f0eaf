/**
 * Containment cgroups of tasks without limits are reused (empty) instead of
 * made and removed per task. Skips where the host has no writable cgroups.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { createCgroupManager } from './cgroups.js';
import { createTaskExecutor } from './task-executor.js';
import type { TaskSpec } from './types.js';

const logger = pino({ level: 'silent' });
const scratch = mkdtempSync(path.join(os.tmpdir(), 'cgroup-pool-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

let counter = 0;
function spec(script: string, limits: Partial<TaskSpec['limits']> = {}): TaskSpec {
  return {
    taskId: `pool-${++counter}`,
    type: 'shell',
    script,
    args: [],
    env: {},
    cleanEnv: false,
    workingDir: '',
    runAs: '',
    timeoutSeconds: 30,
    killGraceSeconds: 1,
    limits: { memoryBytes: 0, cpuMillicores: 0, maxProcesses: 0, maxOutputBytes: 0, ...limits },
  };
}

for (const spawnHelper of [true, false]) {
  test(`limitless tasks reuse an emptied containment cgroup, removed at close (spawnHelper ${spawnHelper})`, async (t) => {
    const cgroups = await createCgroupManager(logger);
    const caps = cgroups.capabilities;
    const base = caps.v2Base ?? caps.v1Bases.pids;
    if (!base) return t.skip(`no writable cgroup: ${caps.unavailable.join('; ')}`);
    const ex = createTaskExecutor(
      { logger, spawnHelper, workDir: path.join(scratch, `w-${spawnHelper}`) },
      { cgroups },
    );
    // Without the helper the pid is moved in right after spawn, and sh can fork
    // before that lands (the window docs/executor.md describes): wait it out.
    const settle = spawnHelper ? '' : 'sleep 0.2; ';
    const where = async (script: string, limits: Partial<TaskSpec['limits']> = {}) => {
      const r = await ex.start(spec(settle + script, limits), () => undefined).result;
      assert.equal(r.status, 'succeeded', r.error + r.stderr);
      return r.stdout;
    };
    const own = (text: string): string => {
      const rel = caps.v2Base
        ? /^0::(.*)$/m.exec(text)?.[1]
        : /^\d+:[^:]*\bpids\b[^:]*:(.*)$/m.exec(text)?.[1];
      assert.ok(rel, text);
      return path.basename(rel);
    };
    // The first leaves a setsid escapee behind, killed through cgroup.kill: that cgroup
    // is removed, not reused (the kernel would SIGKILL a clone3 child created in it).
    // The marker is written after setsid(): the escapee has left the process group before
    // the task ends (else the group kill alone could end it and the cgroup would be reused).
    const mark = path.join(scratch, `escaped-${spawnHelper}`);
    const first = own(
      await where(
        `setsid sh -c 'touch ${mark}; exec sleep 30' >/dev/null 2>&1 & ` +
          `while [ ! -e ${mark} ]; do sleep 0.01; done; cat /proc/self/cgroup`,
      ),
    );
    assert.match(first, /^pool-/);
    const second = own(await where('cat /proc/self/cgroup'));
    assert.match(second, /^pool-/);
    assert.notEqual(second, first, 'a cgroup emptied with cgroup.kill is not reused');
    const third = own(await where('cat /proc/self/cgroup'));
    assert.equal(third, second, 'the same cgroup, reused');
    // A task with a limit gets its own, named after it, and removed after it.
    const limited = await ex.start(spec('cat /proc/self/cgroup', { maxProcesses: 50 }), () => undefined)
      .result;
    assert.equal(limited.status, 'succeeded');
    await ex.close();
    assert.equal(existsSync(path.join(base, first)), false, 'killed cgroup removed');
    assert.equal(existsSync(path.join(base, second)), false, 'pooled cgroup removed at close');
  });
}

test('pooled cgroups of a dead agent are removed when the next one probes; a live one keeps its own', async (t) => {
  const probe = await createCgroupManager(logger);
  const base = probe.capabilities.v2Base ?? probe.capabilities.v1Bases.pids;
  if (!base) return t.skip(`no writable cgroup: ${probe.capabilities.unavailable.join('; ')}`);
  // pid 1 is alive but started at another time than 1; a pid above pid_max is never alive.
  const dead = [path.join(base, 'pool-1-1-1'), path.join(base, 'pool-99999999-123-4')];
  for (const dir of dead) mkdirSync(dir);
  const ex = createTaskExecutor({ logger, workDir: path.join(scratch, 'sweep') }, { cgroups: probe });
  await ex.start(spec('true'), () => undefined).result;
  const mine = readdirSync(base).filter((n) => n.startsWith(`pool-${process.pid}-`));
  assert.ok(mine.length >= 1, 'this agent has a pooled cgroup');
  const again = await createCgroupManager(logger);
  for (const dir of dead) assert.equal(existsSync(dir), false, `${dir} removed`);
  for (const n of mine) assert.ok(existsSync(path.join(base, n)), `live agent's ${n} kept`);
  await again.close?.();
  await ex.close();
});
