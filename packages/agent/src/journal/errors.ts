/**
 * The journal's error registry. Match on `err.code`, never on message text.
 */
export const JOURNAL_ERRORS = {
  JOURNAL_TASK_KNOWN: { message: 'the journal already knows this task id', retryable: false },
  JOURNAL_CLOSED: { message: 'the journal is closed', retryable: false },
} as const satisfies Record<string, { message: string; retryable: boolean }>;

export type JournalErrorCode = keyof typeof JOURNAL_ERRORS;

/** An error with a stable code from {@link JOURNAL_ERRORS}. */
export class JournalError extends Error {
  readonly code: JournalErrorCode;
  readonly retryable: boolean;

  constructor(code: JournalErrorCode, message?: string, options?: { cause?: unknown }) {
    const spec = JOURNAL_ERRORS[code];
    super(message ?? spec.message, options);
    this.name = 'JournalError';
    this.code = code;
    this.retryable = spec.retryable;
  }
}
