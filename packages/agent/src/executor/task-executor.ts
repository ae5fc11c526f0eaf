/**
 * The executor: a FIFO queue in front of at most `maxConcurrent` TaskRuns.
 *
 *   start() ──> queued (FIFO, at most maxQueued) ──> running (at most maxConcurrent) ──> done
 *                  └── cancel: leaves the queue, result 'canceled' at once
 */
import { access, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { constants as fsConstants } from 'node:fs';
import { createCgroupManager, createNoCgroupManager, type CgroupManager } from './cgroups.js';
import { ExecutorError, describeError } from './errors.js';
import { resolveExecutorOptions } from './options.js';
import { ensureWorkDir, onTmpfs, safeName } from './task-command.js';
import { createSpawner, type Spawner } from './spawner.js';
import { TaskRun, type HostTools } from './task-run.js';
import type {
  OutputChunk,
  RunningTask,
  StartOptions,
  TaskExecutor,
  TaskExecutorOptions,
  TaskSpec,
} from './types.js';

/** Test seams: a cgroup manager or host tools other than the probed ones. */
export interface ExecutorInternals {
  cgroups?: CgroupManager | Promise<CgroupManager>;
  tools?: HostTools;
}

async function findTool(candidates: string[]): Promise<string | null> {
  for (const file of candidates) {
    try {
      await access(file, fsConstants.X_OK);
      return file;
    } catch {
      // next
    }
  }
  return null;
}

async function probeTools(): Promise<HostTools> {
  const [prlimit, setpriv] = await Promise.all([
    findTool(['/usr/bin/prlimit', '/bin/prlimit', '/usr/local/bin/prlimit']),
    findTool(['/usr/bin/setpriv', '/bin/setpriv', '/usr/local/bin/setpriv']),
  ]);
  return { prlimit, setpriv };
}

/**
 * Creates an executor. Host capabilities (cgroups, prlimit, setpriv) are probed
 * once, in the background; the first task waits for the probe.
 */
export function createTaskExecutor(
  options?: TaskExecutorOptions,
  internals: ExecutorInternals = {},
): TaskExecutor {
  const opts = resolveExecutorOptions(options);
  const logger = opts.logger;
  const cgroups: Promise<CgroupManager> = Promise.resolve(
    internals.cgroups ?? createCgroupManager(logger),
  ).catch((err: unknown) => createNoCgroupManager(`cgroup probe failed: ${describeError(err)}`));
  const tools = internals.tools ? Promise.resolve(internals.tools) : probeTools();
  // The spawn helper starts in the background; if it dies it is started again
  // (a few times), else tasks fall back to child_process.spawn.
  let spawnerP: Promise<Spawner | null> = opts.spawnHelper ? createSpawner(logger) : Promise.resolve(null);
  let spawnerRestarts = 0;
  const currentSpawner = async (): Promise<Spawner | null> => {
    const p = spawnerP;
    const s = await p;
    if (!s || s.alive || closed) return s?.alive ? s : null;
    if (spawnerP === p) {
      if (spawnerRestarts >= 5) return null;
      spawnerRestarts++;
      logger.warn({ restarts: spawnerRestarts }, 'restarting the spawn helper');
      spawnerP = createSpawner(logger);
    }
    return spawnerP;
  };
  const queue: TaskRun[] = [];
  const active = new Set<TaskRun>();
  const known = new Map<string, TaskRun>();
  let serial = 0;
  let closed = false;
  let workDirReady: Promise<void> | null = null;
  let workOnTmpfs = false;
  const ensureWork = (again = false): Promise<void> => {
    if (again || !workDirReady) {
      workDirReady = ensureWorkDir(opts.workDir).then(() => void (workOnTmpfs = onTmpfs(opts.workDir)));
      // A failure is retried by the next task, not remembered.
      workDirReady.catch(() => (workDirReady = null));
    }
    return workDirReady;
  };

  const cleanups = new Set<Promise<void>>();
  const launch = (run: TaskRun): void => {
    active.add(run);
    void run.run().then((result) => {
      active.delete(run);
      known.delete(run.taskId);
      // Directory and cgroup removal finishes in the background; close() waits for it.
      const cleanup = run.cleanupDone.then(() => void cleanups.delete(cleanup));
      cleanups.add(cleanup);
      run.settle(result);
      pump();
    });
  };

  const pump = (): void => {
    while (active.size < opts.maxConcurrent && queue.length > 0) {
      const next = queue.shift();
      if (next) launch(next);
    }
  };

  return {
    start(
      spec: TaskSpec,
      onOutput: (chunk: OutputChunk) => void | Promise<void>,
      startOptions: StartOptions = {},
    ): RunningTask {
      if (closed) throw new ExecutorError('EXECUTOR_CLOSED');
      if (known.has(spec.taskId))
        throw new ExecutorError(
          'EXECUTOR_DUPLICATE_TASK',
          `task ${spec.taskId} is already queued or running`,
        );
      const mustQueue = active.size >= opts.maxConcurrent;
      if (mustQueue && queue.length >= opts.maxQueued) {
        throw new ExecutorError(
          'EXECUTOR_QUEUE_FULL',
          `${queue.length} tasks already wait to run (maxQueued ${opts.maxQueued})`,
        );
      }
      const run = new TaskRun(spec, onOutput, {
        options: opts,
        cgroups,
        tools,
        spawner: currentSpawner,
        notBefore: startOptions.notBefore,
        serial: ++serial,
        ensureWorkDir: ensureWork,
        workDirOnTmpfs: () => workOnTmpfs,
      });
      known.set(spec.taskId, run);
      if (mustQueue) queue.push(run);
      else launch(run);
      return {
        taskId: run.taskId,
        started: run.started,
        get spawned() {
          return run.spawned;
        },
        result: run.result,
        cancel(reason: string) {
          run.cancel(reason);
          const at = queue.indexOf(run);
          if (at !== -1) {
            // Out of the queue now: it ends without a process and takes no slot.
            queue.splice(at, 1);
            launch(run);
          }
        },
      };
    },
    get running() {
      return active.size;
    },
    get queued() {
      return queue.length;
    },
    async removeLeftovers(taskIds) {
      if (taskIds.length === 0) return 0;
      const prefixes = taskIds.map((id) => `${safeName(id)}-`);
      // <task id>-<serial>-<8 hex digits>: see TaskRun.prepare.
      const ofTask = (name: string): boolean =>
        prefixes.some((p) => name.startsWith(p) && /^\d+-[0-9a-f]{8}$/.test(name.slice(p.length)));
      let names: string[];
      try {
        names = await readdir(opts.workDir);
      } catch {
        return 0; // no work directory yet: nothing left
      }
      let removed = 0;
      for (const name of names) {
        if (!ofTask(name)) continue;
        try {
          await rm(path.join(opts.workDir, name), { recursive: true, force: true });
          removed++;
        } catch (err) {
          logger.warn({ err: describeError(err), dir: name }, 'cannot remove the directory of a lost task');
        }
      }
      if (removed > 0) logger.info({ removed }, 'removed the directories of lost tasks');
      return removed;
    },

    async close() {
      closed = true;
      const all = [...queue, ...active];
      for (const run of all) run.cancel('executor closing');
      queue.length = 0;
      for (const run of all) if (!active.has(run) && !run.isDone) launch(run);
      await Promise.all(all.map((run) => run.result));
      await Promise.all([...cleanups]);
      await (await spawnerP)?.close();
      await (await cgroups).close?.();
    },
  };
}
