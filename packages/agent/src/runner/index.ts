/**
 * The agent's task runner: platform task messages in, executor runs and
 * journaled results out. See task-runner.ts and docs/agent.md.
 */
export {
  createTaskRunner,
  toTaskSpec,
  toTaskResult,
  notRunResult,
  type TaskRunner,
  type TaskRunnerOptions,
} from './task-runner.js';
