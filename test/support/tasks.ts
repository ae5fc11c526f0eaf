/**
 * Rows for the platform's store, for tests and benches that call it directly:
 * a task that runs `true` and a `succeeded` result with no output.
 */
import type { NewTask, ResultRecord, TaskSpec } from '../../packages/platform/src/store/index.js';

/** What a task runs: `true`, no limits. */
export const TRUE_SPEC: TaskSpec = {
  type: 'shell',
  script: 'true',
  args: [],
  env: {},
  cleanEnv: false,
  workingDir: '',
  runAs: '',
  timeoutSeconds: 30,
  killGraceSeconds: 5,
  limits: { memory_bytes: 0, cpu_millicores: 0, max_processes: 0, max_output_bytes: 0 },
  deliveryTimeoutSeconds: 3600,
};

/** A new task for `agentId` running {@link TRUE_SPEC}, without an idempotency key. */
export const newTask = (taskId: string, agentId: string): NewTask => ({
  ...TRUE_SPEC,
  taskId,
  agentId,
  idempotencyKey: null,
});

/** A `succeeded` result with no output. */
export function succeededResult(taskId: string, agentId: string, at = new Date()): ResultRecord {
  return {
    taskId,
    agentId,
    status: 'succeeded',
    exitCode: 0,
    signal: null,
    error: null,
    stdout: '',
    stderr: '',
    stdoutBytes: 0,
    stderrBytes: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    limitsEnforced: [],
    startedAt: at,
    completedAt: at,
  };
}
