/**
 * The agent's task executor: runs shell and Python scripts in their own
 * process group (and cgroup where the host has them) with a timeout, cancel,
 * resource limits and streamed, bounded output. See docs/executor.md.
 */
export type {
  TaskTypeName,
  TaskLimits,
  TaskSpec,
  OutputChunk,
  TerminalStatus,
  EnforcedLimit,
  ExecResult,
  RunningTask,
  TaskExecutor,
  TaskExecutorOptions,
  StartOptions,
} from './types.js';
export { ExecutorError, EXECUTOR_ERRORS, type ExecutorErrorCode } from './errors.js';
import { createTaskExecutor as createWithInternals } from './task-executor.js';
import type { TaskExecutor, TaskExecutorOptions } from './types.js';

/** Creates a task executor; host capabilities are probed once, the first task waits for the probe. */
export function createTaskExecutor(options?: TaskExecutorOptions): TaskExecutor {
  return createWithInternals(options);
}
