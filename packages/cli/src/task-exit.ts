/**
 * How a finished task becomes `apctl run`'s exit code, following the shell's
 * conventions so `apctl run` can stand in for running the script locally:
 *
 *   succeeded / failed with a code → that code
 *   timed_out                       → 124 (as timeout(1))
 *   canceled                        → 130 (as an interrupted command)
 *   failed without a code, lost,
 *   expired, anything else          → 1, with a one-line reason on stderr
 */
import type { TaskEnd } from './client/types.js';

export const EXIT_TIMED_OUT = 124;
export const EXIT_INTERRUPTED = 130;

export interface TaskExit {
  code: number;
  /** Printed on stderr as `apctl: <message>` when set. */
  message?: string;
}

export function taskExitCode(end: TaskEnd): TaskExit {
  // `task <id> lost: <error>`; an error that already starts with its status
  // ("timed out after 1s") is not repeated ("timed_out: timed out after 1s").
  const said = end.status.replace('_', ' ');
  const message = !end.error
    ? `task ${end.task_id} ${end.status}`
    : end.error.startsWith(said)
      ? `task ${end.task_id} ${end.error}`
      : `task ${end.task_id} ${end.status}: ${end.error}`;
  switch (end.status) {
    case 'succeeded':
      return { code: end.exit_code ?? 0 };
    case 'failed':
      return end.exit_code !== null ? { code: end.exit_code } : { code: 1, message };
    case 'timed_out':
      return { code: EXIT_TIMED_OUT, message };
    case 'canceled':
      return { code: EXIT_INTERRUPTED, message };
    default:
      return { code: 1, message };
  }
}
