/**
 * The executor's error registry. `start()` throws these synchronously; a task
 * that was accepted never throws, its problems end up in `ExecResult.error`.
 * Match on `err.code`, never on message text.
 */

export const EXECUTOR_ERRORS = {
  EXECUTOR_QUEUE_FULL: { message: 'too many tasks are waiting to run', retryable: true },
  EXECUTOR_CLOSED: { message: 'the executor is closed', retryable: false },
  EXECUTOR_DUPLICATE_TASK: { message: 'a task with this id is already queued or running', retryable: false },
} as const satisfies Record<string, { message: string; retryable: boolean }>;

export type ExecutorErrorCode = keyof typeof EXECUTOR_ERRORS;

/** An error with a stable code from {@link EXECUTOR_ERRORS}. */
export class ExecutorError extends Error {
  readonly code: ExecutorErrorCode;
  readonly retryable: boolean;

  constructor(code: ExecutorErrorCode, message?: string, options?: { cause?: unknown }) {
    const spec = EXECUTOR_ERRORS[code];
    super(message ?? spec.message, options);
    this.name = 'ExecutorError';
    this.code = code;
    this.retryable = spec.retryable;
  }
}

/** Words for anything thrown, for `ExecResult.error` and log fields. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
