/**
 * The executor's public types. The agent's connection code maps these to and
 * from the wire messages; nothing here knows about the protocol.
 */
import type { Logger } from 'pino';

export type TaskTypeName = 'shell' | 'python';

/** Per-task resource limits; 0 means no limit. */
export interface TaskLimits {
  /** Memory of the whole task (all its processes), bytes. */
  memoryBytes: number;
  /** CPU rate, thousandths of a core (1000 = one core). */
  cpuMillicores: number;
  /** Processes (and threads) the task may have at once. */
  maxProcesses: number;
  /** stdout + stderr bytes; past this the task is stopped. */
  maxOutputBytes: number;
}

/** One task to run, as the platform sent it. */
export interface TaskSpec {
  taskId: string;
  type: TaskTypeName;
  /** The script text; written to a file, never passed through a shell command line. */
  script: string;
  args: string[];
  /** Added to the agent's environment, or to a minimal one when `cleanEnv`. */
  env: Record<string, string>;
  /** Start from PATH/HOME/USER/LOGNAME/SHELL/LANG only instead of the agent's environment. */
  cleanEnv: boolean;
  /** '' = a fresh per-task temporary directory, removed after the task. */
  workingDir: string;
  /** '' = the agent's user; any other user needs the agent to run as root. */
  runAs: string;
  /** 0 = `TaskExecutorOptions.defaultTimeoutSeconds`. */
  timeoutSeconds: number;
  /** Seconds between SIGTERM and SIGKILL on timeout or cancel; 0 = 5. */
  killGraceSeconds: number;
  limits: TaskLimits;
}

/** A piece of output. `seq` starts at 1 and is shared by both streams, so it orders them. */
export interface OutputChunk {
  seq: number;
  stream: 'stdout' | 'stderr';
  /** Decoded as UTF-8; invalid bytes become U+FFFD. At most `maxChunkBytes` UTF-8 bytes. */
  data: string;
  timestamp: Date;
}

export type TerminalStatus = 'succeeded' | 'failed' | 'timed_out' | 'canceled';

/** A limit that was actually applied to a task, and how. */
export interface EnforcedLimit {
  name: 'memory' | 'cpu' | 'processes' | 'output';
  mechanism: 'cgroup2' | 'cgroup1' | 'prlimit' | 'agent';
  /** The value applied, in the unit of the matching `TaskLimits` field. */
  value: number;
}

/** How a task ended. Always produced, never a rejected promise. */
export interface ExecResult {
  taskId: string;
  status: TerminalStatus;
  /** Exit code; 128 + signal number when killed by a signal; -1 when it never ran; 127 when the interpreter is missing. */
  exitCode: number;
  /** Name of the signal that ended the main process ('SIGKILL'), '' if none. */
  signal: string;
  /** '' on success, else words: 'timed out after 30s', 'memory limit exceeded', 'canceled: <reason>'... */
  error: string;
  startedAt: Date;
  completedAt: Date;
  /** Head and tail of the stream within the result budget, with a marker line between when truncated. */
  stdout: string;
  stderr: string;
  /** Total bytes the task wrote to each stream. */
  stdoutBytes: number;
  stderrBytes: number;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  limitsEnforced: EnforcedLimit[];
  /** Seq of the last output chunk handed to the consumer; 0 = none. */
  lastSeq: number;
}

/** Handle to a started (or queued) task. */
export interface RunningTask {
  readonly taskId: string;
  /**
   * Resolves when the task leaves the queue: when its process is spawned, or,
   * if it never gets one (canceled while queued, spawn failure), at that moment;
   * `result` then follows at once. Never rejects.
   */
  readonly started: Promise<Date>;
  /** True once the task's process exists (false for one that ended without running). */
  readonly spawned: boolean;
  /** Never rejects. Resolves after every output chunk has been delivered. */
  readonly result: Promise<ExecResult>;
  /** Stop the task (SIGTERM, SIGKILL after the grace); status 'canceled'. Idempotent. */
  cancel(reason: string): void;
}

/** Runs tasks with bounded concurrency. */
export interface TaskExecutor {
  /**
   * Queue or start a task. onOutput may return a Promise: the executor reads no
   * more output of that task until it resolves (backpressure, so the agent's
   * memory stays bounded when the network is slow). A throwing or rejecting
   * onOutput is logged and does not affect the task.
   * @throws ExecutorError 'EXECUTOR_QUEUE_FULL' when maxQueued tasks already wait,
   *   'EXECUTOR_CLOSED' after close(), 'EXECUTOR_DUPLICATE_TASK' when the id is already queued or running.
   */
  start(
    spec: TaskSpec,
    onOutput: (chunk: OutputChunk) => void | Promise<void>,
    options?: StartOptions,
  ): RunningTask;
  readonly running: number;
  readonly queued: number;
  /** Cancel everything (reason 'executor closing'), wait for all results. */
  close(): Promise<void>;
  /**
   * Removes what tasks that were running when a previous agent process died
   * left in the work directory (their task directories), by task id. Never
   * rejects; resolves with how many directories went.
   */
  removeLeftovers(taskIds: readonly string[]): Promise<number>;
}

export interface StartOptions {
  /**
   * Nothing of the task executes before this settles; the preparation (cgroup,
   * command line) goes on meanwhile, and with the spawn helper the process
   * itself is made and waits at a gate before its script and exec. If it
   * rejects (or the task is canceled first), the task ends without running:
   * `failed` (`not started: …`) or `canceled`. `started` and `spawned` still
   * mean the program was executed. The runner passes the journal's durable
   * `accept`, so its fsync overlaps the preparation.
   */
  notBefore?: Promise<unknown>;
}

export interface TaskExecutorOptions {
  /** Tasks running at once; default 5. */
  maxConcurrent?: number;
  /** Tasks waiting beyond those; default 100. */
  maxQueued?: number;
  /** Timeout for tasks that give none, seconds; default 3600. */
  defaultTimeoutSeconds?: number;
  /** Bytes of each stream kept in the result (half head, half tail); default 1 MiB. */
  resultBudgetBytes?: number;
  /** Longest time output waits before being sent as a chunk, ms; default 100. */
  flushIntervalMs?: number;
  /** Largest chunk, UTF-8 bytes; default 64 KiB. */
  maxChunkBytes?: number;
  /**
   * Where per-task directories (script file, default working dir) go; default
   * a tmpfs when the host has one (defaultWorkDir, task-command.ts).
   */
  workDir?: string;
  /**
   * Put tasks that ask for no cgroup limit in a cgroup anyway, so processes
   * that called setsid are still killed with the task; default true. With the
   * spawn helper the task's process is created in it (clone3), at no measurable
   * cost; otherwise it is one cgroup migration per task (~0.1 ms back to back,
   * 7-20 ms when tasks are rare); false trades that for speed.
   */
  containWithoutLimits?: boolean;
  /**
   * Start tasks through a small pre-started Perl helper instead of forking the
   * agent (see spawner.ts): much cheaper per task, and the cgroup join happens in
   * the child before exec. Default true; without Perl or /proc, or if the helper
   * fails its start-up check, `child_process.spawn` is used.
   */
  spawnHelper?: boolean;
  /**
   * The environment tasks inherit (unless `cleanEnv`). Default: process.env, read
   * at every start; the agent passes a copy taken at its start, because reading
   * process.env (one call into C++ per variable) was a fifth of its per-task CPU.
   */
  baseEnv?: Readonly<Record<string, string>>;
  /** Default: a silent logger. */
  logger?: Logger;
}
