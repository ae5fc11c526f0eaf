/**
 * One task from spawn to result.
 *
 *   queued ──> preparing ──> running ──> stopping ──> finishing ──> done
 *                  │            │  (timeout, cancel,      ▲
 *                  │            │   limit: SIGTERM,       │
 *                  │            │   SIGKILL after grace)  │
 *                  │            └── main process exits ───┘ (leftovers SIGKILLed)
 *                  └── setup error / canceled ──────────────────────> done
 *
 * Invariant: `result` resolves only after every process of the task is gone
 * (as far as the process group and the task's cgroup can see) and every chunk
 * has been handed to the consumer.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { trace } from '@agent-platform/protocol';
import type { CgroupManager, TaskCgroup } from './cgroups.js';
import { describeError } from './errors.js';
import type { ResolvedExecutorOptions } from './options.js';
import { OutputCapture, type StreamName } from './output-capture.js';
import type { ExitInfo, SpawnOutcome, SpawnRequest, Spawner, TaskProcess } from './spawner.js';
import {
  TaskSetupError,
  buildEnv,
  checkWorkingDir,
  interpreterCommand,
  removeTaskDir,
  resolveRunAs,
  safeName,
  scriptPath,
  writeScript,
  type TaskUser,
} from './task-command.js';
import type { EnforcedLimit, ExecResult, OutputChunk, TaskSpec, TerminalStatus } from './types.js';

/** Host tools found once per executor. */
export interface HostTools {
  prlimit: string | null;
  setpriv: string | null;
}

/** What a task needs from its executor. */
export interface TaskRunContext {
  options: ResolvedExecutorOptions;
  cgroups: Promise<CgroupManager>;
  tools: Promise<HostTools>;
  /** The pre-started spawn helper, or null: tasks are then forked by Node itself. */
  spawner(): Promise<Spawner | null>;
  /**
   * Execute the task's program only after this settles; a rejection ends the task
   * without it. With the spawn helper the process is made and prepared meanwhile
   * and waits at its gate (before its directory, script and exec); without it, spawn waits.
   */
  notBefore?: Promise<unknown>;
  /** Unique per executor, so two runs of one task id never share a cgroup. */
  serial: number;
  /** Makes the work directory; memoized by the executor, `again` after it vanished (tmp cleaners). */
  ensureWorkDir(again?: boolean): Promise<void>;
  /** Whether the work directory is on tmpfs, where removing a task directory is cheap enough to do synchronously. */
  workDirOnTmpfs(): boolean;
}

/** A task made ready to start: its command line, environment, user and how it is spawned. */
interface Prepared {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  user: TaskUser | null;
  tools: HostTools;
  spawner: Spawner | null;
  taskDir: { dir: string; scriptFile: string };
}

type RunState = 'queued' | 'preparing' | 'running' | 'stopping' | 'finishing' | 'done';

interface StopReason {
  status: TerminalStatus;
  error: string;
}

/** Joins the listed cgroups, then execs the rest: the script never runs outside its limits. */
const CGROUP_JOIN_SCRIPT =
  'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';

/** How often cgroup counters (OOM kills, pids.max hits) are read while a limited task runs. */
const LIMIT_POLL_MS = 200;
/** After the task is over, a stream with no data for this long is closed: an escaped process holds the pipe. */
const PIPE_IDLE_CLOSE_MS = 500;

export class TaskRun {
  readonly taskId: string;
  readonly started: Promise<Date>;
  readonly result: Promise<ExecResult>;
  private state: RunState = 'queued';
  private resolveStarted!: (at: Date) => void;
  private resolveResult!: (result: ExecResult) => void;
  private stopReason: StopReason | null = null;
  private proc: TaskProcess | null = null;
  private cgroup: TaskCgroup | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private readonly logger: Logger;
  private readonly capture: OutputCapture;
  private readonly limitsEnforced: EnforcedLimit[] = [];
  private startedAt = new Date();
  private outputLimitHit = false;

  constructor(
    readonly spec: TaskSpec,
    onOutput: (chunk: OutputChunk) => void | Promise<void>,
    private readonly ctx: TaskRunContext,
  ) {
    this.taskId = spec.taskId;
    this.logger = ctx.options.logger.child({ task_id: spec.taskId });
    this.started = new Promise((resolve) => (this.resolveStarted = resolve));
    this.result = new Promise((resolve) => (this.resolveResult = resolve));
    this.capture = new OutputCapture({
      resultBudgetBytes: ctx.options.resultBudgetBytes,
      flushIntervalMs: ctx.options.flushIntervalMs,
      maxChunkBytes: ctx.options.maxChunkBytes,
      onOutput,
      logger: this.logger,
    });
  }

  /** The task's process was started. */
  spawned = false;

  get isDone(): boolean {
    return this.state === 'done';
  }

  /** Stops the task; before spawn it never starts. The first reason given wins. */
  cancel(reason: string): void {
    this.stop({ status: 'canceled', error: `canceled: ${reason}` });
  }

  /**
   * Runs the task to its result. Never throws. Every process of the task is
   * gone when it resolves; removing the task's directory and cgroups follows
   * (`cleanupDone`) so it does not delay the result.
   */
  async run(): Promise<ExecResult> {
    const result = await this.attempt();
    this.cleanupDone = this.cleanup();
    return result;
  }

  /** Resolves when the task's directory and cgroups are removed (after `run()`). Never rejects. */
  cleanupDone: Promise<void> = Promise.resolve();

  private taskDir: { dir: string; scriptFile: string } | null = null;

  private async attempt(): Promise<ExecResult> {
    this.state = 'preparing';
    this.startedAt = new Date();
    // Watched from now on, so a rejection is never unhandled even if preparing fails first.
    const gate = this.ctx.notBefore?.then(
      () => null,
      (err: unknown) => err ?? new Error('rejected'),
    );
    let gateSettled = false;
    void gate?.then(() => (gateSettled = true));
    try {
      let stopped = this.pendingStop();
      if (stopped) return this.finishWithoutProcess(stopped.status, stopped.error, -1);
      const prepared = await this.prepare();
      this.taskDir = prepared.taskDir;
      if (gate && prepared.spawner && !gateSettled) {
        // The helper makes the process now; it execs once the gate opens (execute()).
        // Already settled (usual under load, where preparing outlasts the fsync): the
        // plain start below, one message and one wait of the helper fewer.
        stopped = this.pendingStop();
        if (stopped) return this.finishWithoutProcess(stopped.status, stopped.error, -1);
        return await this.execute(prepared, gate);
      }
      const refused = gate ? await gate : null;
      if (refused !== null) {
        return this.finishWithoutProcess('failed', `not started: ${describeError(refused)}`, -1);
      }
      // cancel() may have come while preparing.
      stopped = this.pendingStop();
      if (stopped) return this.finishWithoutProcess(stopped.status, stopped.error, -1);
      return await this.execute(prepared);
    } catch (err) {
      if (err instanceof TaskSetupError)
        return this.finishWithoutProcess('failed', err.message, err.exitCode);
      this.logger.error({ err: describeError(err) }, 'task failed unexpectedly');
      return this.finishWithoutProcess('failed', `agent error: ${describeError(err)}`, -1);
    }
  }

  private async prepare(): Promise<Prepared> {
    const spec = this.spec;
    if (spec.type !== 'shell' && spec.type !== 'python') {
      throw new TaskSetupError(`unsupported task type: ${String(spec.type)}`);
    }
    const user = await resolveRunAs(spec.runAs);
    await this.ctx.ensureWorkDir();
    // The random part keeps names unique across agent restarts (and agents) that
    // share a work dir or cgroup parent where a crashed run left its directories.
    const name = `${safeName(spec.taskId)}-${this.ctx.serial}-${randomBytes(4).toString('hex')}`;
    const [cgroups, tools, helper] = await Promise.all([
      this.ctx.cgroups,
      this.ctx.tools,
      this.ctx.spawner(),
    ]);
    // The helper cannot switch users itself; without setpriv, Node's uid option does.
    const spawner = user && !tools.setpriv ? null : helper;
    const { dir, scriptFile } = scriptPath(this.ctx.options.workDir, name, spec);
    // With the helper, its child makes the directory and writes the script (off the
    // event loop); a NUL in the script would break its protocol, so such a script
    // is written here.
    if (spawner && !spec.script.includes('\0')) {
      this.deferredScript = { dir, file: scriptFile, content: spec.script, owner: user };
    } else {
      try {
        writeScript(this.ctx.options.workDir, name, spec, user);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        await this.ctx.ensureWorkDir(true);
        writeScript(this.ctx.options.workDir, name, spec, user);
      }
    }
    try {
      if (spec.workingDir !== '') await checkWorkingDir(spec.workingDir);
      const env = buildEnv(spec, user, this.ctx.options.baseEnv);
      let argv = await interpreterCommand(spec, scriptFile, env);
      const limits = spec.limits;
      const wantsCgroupLimit = limits.memoryBytes > 0 || limits.cpuMillicores > 0 || limits.maxProcesses > 0;
      if (wantsCgroupLimit || this.ctx.options.containWithoutLimits) {
        this.cgroup = await cgroups.create(name, limits);
      }
      if (this.cgroup) this.limitsEnforced.push(...this.cgroup.enforced);

      // prlimit for what cgroups could not do. RLIMIT_CPU is CPU seconds, not a
      // rate, so it is no stand-in for a millicore limit and is not used.
      const prlimitArgs: string[] = [];
      const has = (n: EnforcedLimit['name']): boolean => this.limitsEnforced.some((l) => l.name === n);
      if (limits.memoryBytes > 0 && !has('memory') && tools.prlimit) {
        prlimitArgs.push(`--as=${limits.memoryBytes}`);
        this.limitsEnforced.push({ name: 'memory', mechanism: 'prlimit', value: limits.memoryBytes });
      }
      // RLIMIT_NPROC counts every process of the user, and root ignores it.
      const taskUid = user?.uid ?? process.getuid?.() ?? 0;
      if (limits.maxProcesses > 0 && !has('processes') && tools.prlimit && taskUid !== 0) {
        prlimitArgs.push(`--nproc=${limits.maxProcesses}`);
        this.limitsEnforced.push({ name: 'processes', mechanism: 'prlimit', value: limits.maxProcesses });
      }
      if (limits.maxOutputBytes > 0) {
        this.limitsEnforced.push({ name: 'output', mechanism: 'agent', value: limits.maxOutputBytes });
      }
      for (const n of ['memory', 'cpu', 'processes'] as const) {
        const asked =
          n === 'memory' ? limits.memoryBytes : n === 'cpu' ? limits.cpuMillicores : limits.maxProcesses;
        if (asked > 0 && !has(n))
          this.logger.warn({ limit: n, value: asked }, 'limit cannot be enforced on this host');
      }

      if (user && tools.setpriv) {
        // setpriv also sets the user's supplementary groups, which spawn's uid option drops.
        argv = [tools.setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', ...argv];
      }
      if (prlimitArgs.length > 0 && tools.prlimit) argv = [tools.prlimit, ...prlimitArgs, '--', ...argv];
      // The spawn helper creates the child in its v2 cgroup (clone3) and joins the
      // others in the child before exec: limits and containment hold from the first
      // instruction. Without the helper, a task with limits is started through a
      // wrapper that joins them before exec (one more exec of sh, ~0.6 ms); one
      // without limits is moved in right after spawn.
      if (spawner) {
        this.joinAfterSpawn = false;
        this.joinStrict = wantsCgroupLimit;
      } else if (this.cgroup && wantsCgroupLimit && (!user || tools.setpriv)) {
        argv = [
          '/bin/sh',
          '-c',
          CGROUP_JOIN_SCRIPT,
          'agent-platform-join',
          ...this.cgroup.procsFiles,
          '--',
          ...argv,
        ];
        this.joinAfterSpawn = false;
      }
      return {
        argv,
        cwd: spec.workingDir === '' ? dir : spec.workingDir,
        env,
        user,
        tools,
        spawner,
        taskDir: { dir, scriptFile },
      };
    } catch (err) {
      await removeTaskDir(dir, scriptFile, this.ctx.workDirOnTmpfs());
      throw err;
    }
  }

  private joinAfterSpawn = true;
  /** The task directory and script for the spawn helper's child to write. */
  private deferredScript: SpawnRequest['script'] | undefined;
  private joinStrict = false;
  /** Closes the gate of a process waiting to exec (cancel before it started). */
  private abortGate: (() => void) | null = null;

  /**
   * Starts the process. With `gate` (the settled `notBefore`: null = go, else why
   * not; only with the spawn helper) the helper makes and prepares it at once and
   * it execs only when the gate says go and no stop came first.
   */
  private async execute(
    { argv, cwd, env, user, tools, spawner }: Prepared,
    gate?: Promise<unknown>,
  ): Promise<ExecResult> {
    const [file, ...args] = argv;
    if (!file) throw new TaskSetupError('empty command');
    let proc: TaskProcess;
    if (spawner) {
      const envList: string[] = [];
      for (const k in env) envList.push(`${k}=${env[k]}`);
      if ([cwd, ...argv, ...envList].some((x) => x.includes('\0')))
        throw new TaskSetupError('arguments, environment and working directory must not contain NUL bytes');
      const request: SpawnRequest = {
        file,
        args,
        cwd,
        env: envList,
        // Created in the v2 cgroup (clone3), no cgroup.procs write for it; v1 ones are written.
        ...(this.cgroup?.v2Dir
          ? { cgroupDir: this.cgroup.v2Dir, joinCgroups: this.cgroup.v1ProcsFiles }
          : { joinCgroups: this.cgroup?.procsFiles ?? [] }),
        joinStrict: this.joinStrict,
        script: this.deferredScript,
        traceId: this.taskId,
      };
      // Go once the gate is open, unless the task was stopped first; a stop while
      // the process waits at its gate aborts it (it exits without exec).
      let refused: unknown = null;
      const go = gate
        ? new Promise<boolean>((resolve) => {
            this.abortGate = () => resolve(false);
            void gate.then((why) => {
              refused = why;
              resolve(why === null && !this.stopReason);
            });
          })
        : undefined;
      trace('a-spawn-call', this.taskId);
      let outcome: SpawnOutcome = await spawner.start(request, go);
      trace('a-spawned', this.taskId);
      if ('error' in outcome && outcome.stage === 'mkdir' && outcome.error.code === 'ENOENT') {
        // The work directory vanished (a tmp cleaner); nothing ran, so try once more.
        await this.ctx.ensureWorkDir(true);
        outcome = await spawner.start(request, go);
      }
      this.abortGate = null;
      if ('error' in outcome && outcome.stage === 'gate') {
        // It exited at its gate: nothing of the task ran.
        if (refused !== null)
          return this.finishWithoutProcess('failed', `not started: ${describeError(refused)}`, -1);
        const stopped = this.pendingStop();
        if (stopped) return this.finishWithoutProcess(stopped.status, stopped.error, -1);
        return this.finishWithoutProcess(
          'failed',
          `cannot start ${file}: its process ended before exec (killed?)`,
          -1,
        );
      }
      if ('error' in outcome) {
        // A start the helper lost track of may have forked: the cgroup catches it.
        if (this.cgroup) await this.cgroup.killAll();
        const code = outcome.error.code;
        const message =
          outcome.stage === 'mkdir' || outcome.stage === 'write'
            ? `cannot write the script: ${describeError(outcome.error)}`
            : outcome.stage === 'join'
              ? `cannot move the task into its cgroup: ${describeError(outcome.error)}`
              : outcome.stage === 'chdir'
                ? `cannot enter working directory ${cwd}: ${describeError(outcome.error)}`
                : `cannot start ${file}: ${describeError(outcome.error)}`;
        return this.finishWithoutProcess(
          'failed',
          message,
          outcome.stage === 'exec' && code === 'ENOENT'
            ? 127
            : outcome.stage === 'exec' && code === 'EACCES'
              ? 126
              : -1,
        );
      }
      proc = outcome.process;
      this.proc = proc;
    } else {
      // No await between the caller's stopReason check and spawn: a cancel is either
      // seen there or finds the task running.
      const useSpawnUid = user !== null && !tools.setpriv;
      const child = spawn(file, args, {
        cwd,
        env,
        // Own process group: timeouts and cancels signal -pgid, reaching every
        // descendant that did not call setsid/setpgid.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(useSpawnUid ? { uid: user.uid, gid: user.gid } : {}),
      });
      const exited = new Promise<ExitInfo>((resolve) => {
        child.once('exit', (code, signal) => resolve({ code, signal, error: null }));
        child.once('error', (error) => resolve({ code: null, signal: null, error }));
      });
      if (child.pid === undefined || !child.stdout || !child.stderr) {
        const { error } = await exited;
        child.stdout?.destroy();
        child.stderr?.destroy();
        const code = error?.code;
        return this.finishWithoutProcess(
          'failed',
          `cannot start ${file}: ${describeError(error)}`,
          code === 'ENOENT' ? 127 : code === 'EACCES' ? 126 : -1,
        );
      }
      proc = { pid: child.pid, stdout: child.stdout, stderr: child.stderr, exited };
      this.proc = proc;
    }
    const exited = proc.exited;
    const pid = proc.pid;
    // Joining after exec leaves a window (the write lands while sh is still
    // loading) in which a process could fork and setsid out of reach. Tasks with
    // cgroup limits use the wrapper instead and have no such window.
    if (this.cgroup && this.joinAfterSpawn) {
      try {
        this.cgroup.join(pid);
      } catch (err) {
        this.logger.warn({ err: describeError(err) }, 'cannot move task into its cgroup');
      }
    }
    this.state = 'running';
    this.spawned = true;
    this.startedAt = new Date();
    this.resolveStarted(this.startedAt);
    this.logger.debug({ pid, argv }, 'task started');
    if (this.stopReason) {
      // Defensive: a stop recorded before the process existed still gets its signals.
      const pending = this.stopReason;
      this.stopReason = null;
      this.stop(pending);
    }

    const streamsClosed = this.wireStreams(proc);
    const timeoutSeconds =
      this.spec.timeoutSeconds > 0 ? this.spec.timeoutSeconds : this.ctx.options.defaultTimeoutSeconds;
    const timeout = setTimeout(
      () => this.stop({ status: 'timed_out', error: `timed out after ${timeoutSeconds}s` }),
      timeoutSeconds * 1000,
    );
    const poll =
      this.cgroup && this.cgroup.enforced.some((l) => l.name === 'memory' || l.name === 'processes')
        ? setInterval(() => this.checkCgroupLimits(), LIMIT_POLL_MS)
        : null;

    const exit = await exited;
    trace('a-exited', this.taskId);
    clearTimeout(timeout);
    if (poll) clearInterval(poll);
    if (this.killTimer) clearTimeout(this.killTimer);
    this.state = 'finishing';
    // The task is over when its main process is: background children and escapees go too.
    this.signalGroup('SIGKILL');
    if (this.cgroup) await this.cgroup.killAll();
    await streamsClosed.waitForEnd();
    this.capture.flush();
    await this.capture.whenIdle();

    let status: TerminalStatus;
    let error: string;
    const memoryHit = this.cgroup?.memoryLimitHit() ?? false;
    const processHit = this.cgroup?.processLimitHit() ?? false;
    const exitCode = exit.code ?? (exit.signal ? 128 + (osConstants.signals[exit.signal] ?? 0) : -1);
    if (this.stopReason) {
      ({ status, error } = this.stopReason);
    } else if (exit.error) {
      status = 'failed';
      error = `task process error: ${describeError(exit.error)}`;
    } else if (memoryHit) {
      status = 'failed';
      error = 'memory limit exceeded';
    } else if (processHit) {
      // Even with exit 0: some fork of the script failed, so it did not do what it says.
      status = 'failed';
      error = 'process limit reached';
    } else if (exit.code === 0) {
      status = 'succeeded';
      error = '';
    } else {
      status = 'failed';
      error = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code ?? -1}`;
    }
    return this.finish(status, error, exitCode, exit.signal ?? '');
  }

  /** Reads both pipes into the capture, pausing while the consumer is busy. */
  private wireStreams(proc: TaskProcess): { waitForEnd(): Promise<void> } {
    const streams: Array<[StreamName, Readable]> = [
      ['stdout', proc.stdout],
      ['stderr', proc.stderr],
    ];
    let paused = false;
    let lastDataAt = Date.now();
    const limit = this.spec.limits.maxOutputBytes;
    for (const [name, stream] of streams) {
      stream.on('data', (data: Buffer) => {
        lastDataAt = Date.now();
        if (this.outputLimitHit) {
          // Past the limit: counted for the result, not sent.
          this.capture.count(name, data);
          return;
        }
        this.capture.write(name, data);
        if (limit > 0 && this.capture.totalBytes > limit) {
          this.outputLimitHit = true;
          this.capture.flush();
          this.stop({ status: 'failed', error: 'output limit exceeded' });
        }
        if (!paused && this.capture.busy) {
          paused = true;
          for (const [, s] of streams) s.pause();
          void this.capture.whenIdle().then(() => {
            paused = false;
            lastDataAt = Date.now();
            for (const [, s] of streams) s.resume();
          });
        }
      });
      stream.once('end', () => this.capture.end(name));
      stream.on('error', (err) =>
        this.logger.warn({ err: describeError(err), stream: name }, 'output pipe error'),
      );
    }
    const closed = Promise.all(
      streams.map(
        ([, s]) =>
          new Promise<void>((resolve) =>
            s.closed || s.destroyed ? resolve() : s.once('close', () => resolve()),
          ),
      ),
    );
    return {
      waitForEnd: async () => {
        // Normally the pipes end as soon as the last holder is killed. A process outside
        // the group and cgroup (no cgroups on this host) could hold them forever.
        const guard = setInterval(() => {
          if (!paused && Date.now() - lastDataAt > PIPE_IDLE_CLOSE_MS) {
            this.logger.warn('output pipes still open after the task ended; closing them');
            for (const [, s] of streams) s.destroy();
          }
        }, 100);
        try {
          await closed;
        } finally {
          clearInterval(guard);
        }
      },
    };
  }

  private checkCgroupLimits(): void {
    if (!this.cgroup || this.stopReason) return;
    if (this.cgroup.memoryLimitHit()) this.stop({ status: 'failed', error: 'memory limit exceeded' });
    else if (this.cgroup.processLimitHit()) this.stop({ status: 'failed', error: 'process limit reached' });
  }

  private pendingStop(): StopReason | null {
    return this.stopReason;
  }

  private stop(reason: StopReason): void {
    if (this.stopReason || this.state === 'done' || this.state === 'finishing') return;
    this.stopReason = reason;
    // Queued or preparing: run() checks stopReason before spawning, and a process
    // waiting at its gate is let go no more.
    if (this.state !== 'running') {
      this.abortGate?.();
      return;
    }
    this.state = 'stopping';
    this.logger.info({ reason: reason.error }, 'stopping task');
    this.signalTask('SIGTERM');
    const graceSeconds = this.spec.killGraceSeconds > 0 ? this.spec.killGraceSeconds : 5;
    this.killTimer = setTimeout(() => {
      this.signalTask('SIGKILL');
      if (this.cgroup) void this.cgroup.killAll();
    }, graceSeconds * 1000);
  }

  /** Signals the process group and every process in the task's cgroup. */
  private signalTask(signal: NodeJS.Signals): void {
    this.signalGroup(signal);
    this.cgroup?.signalAll(signal);
  }

  private signalGroup(signal: NodeJS.Signals): void {
    const pid = this.proc?.pid;
    if (pid !== undefined) {
      // ESRCH (an empty group) is the usual answer after a normal exit; its stack
      // trace was a third of the executor's own per-task CPU time, so none is captured.
      const traceLimit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      try {
        process.kill(-pid, signal);
      } catch {
        // ESRCH: the group is empty.
      } finally {
        Error.stackTraceLimit = traceLimit;
      }
    }
  }

  private finishWithoutProcess(status: TerminalStatus, error: string, exitCode: number): ExecResult {
    return this.finish(status, error, exitCode, '');
  }

  private finish(status: TerminalStatus, error: string, exitCode: number, signal: string): ExecResult {
    const stdout = this.capture.summary('stdout');
    const stderr = this.capture.summary('stderr');
    const result: ExecResult = {
      taskId: this.taskId,
      status,
      exitCode,
      signal,
      error,
      startedAt: this.startedAt,
      completedAt: new Date(),
      stdout: stdout.text,
      stderr: stderr.text,
      stdoutBytes: stdout.bytes,
      stderrBytes: stderr.bytes,
      stdoutTruncated: stdout.truncated,
      stderrTruncated: stderr.truncated,
      limitsEnforced: [...this.limitsEnforced],
      lastSeq: this.capture.lastSeq,
    };
    return result;
  }

  private async cleanup(): Promise<void> {
    const taskDir = this.taskDir;
    try {
      if (this.cgroup) await this.cgroup.remove();
      if (taskDir) await removeTaskDir(taskDir.dir, taskDir.scriptFile, this.ctx.workDirOnTmpfs());
    } catch (err) {
      this.logger.warn({ err: describeError(err), dir: taskDir?.dir }, 'cannot clean up after task');
    }
  }

  /** Called by the executor with the value `run()` returned. */
  settle(result: ExecResult): void {
    this.state = 'done';
    this.resolveStarted(result.startedAt);
    this.logger.info(
      { status: result.status, exit_code: result.exitCode, error: result.error },
      'task finished',
    );
    this.resolveResult(result);
  }
}
