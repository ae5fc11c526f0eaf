/**
 * The CLI's own error codes. Errors from the platform keep the platform's
 * code (`AGENT_NOT_FOUND`, ...) and arrive as `ApiError`; everything is
 * printed as `apctl: <CODE>: <message>` by `main`, which exits with
 * `exitCode`. Match on `code`, never on message text.
 */

export const CLI_ERRORS = {
  /** Bad flags or arguments: exit 2, like commander's own usage errors. */
  USAGE: { exitCode: 2, retryable: false },
  /** No TCP connection to the platform's REST address (refused, DNS, reset). */
  PLATFORM_UNREACHABLE: { exitCode: 1, retryable: true },
  /** The platform's TLS certificate does not chain to a CA we trust (see --ca-cert). */
  PLATFORM_UNTRUSTED: { exitCode: 1, retryable: false },
  /** The platform answered something that is not the JSON we expect. */
  BAD_RESPONSE: { exitCode: 1, retryable: false },
} as const;

export type CliErrorCode = keyof typeof CLI_ERRORS;

export class CliError extends Error {
  readonly exitCode: number;
  readonly retryable: boolean;

  constructor(
    readonly code: CliErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = CLI_ERRORS[code].exitCode;
    this.retryable = CLI_ERRORS[code].retryable;
  }
}

/** An error envelope `{"error":{"code","message"}}` from the platform. */
export class ApiError extends Error {
  readonly exitCode = 1;
  /** 5xx (and 408/429) may succeed when tried again; 4xx will not. */
  readonly retryable: boolean;

  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus: number,
  ) {
    super(message);
    this.name = 'ApiError';
    this.retryable = httpStatus >= 500 || httpStatus === 408 || httpStatus === 429;
  }
}

export function usageError(message: string): CliError {
  return new CliError('USAGE', message);
}

/** Whether trying the same request again may help (network trouble, 5xx). */
export function isRetryable(err: unknown): boolean {
  return (err instanceof CliError || err instanceof ApiError) && err.retryable;
}

/** The one line `main` prints for `err`, and the exit code to use. */
export function describeError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof CliError) {
    return {
      line: err.code === 'USAGE' ? `apctl: ${err.message}` : `apctl: ${err.code}: ${err.message}`,
      exitCode: err.exitCode,
    };
  }
  if (err instanceof ApiError) return { line: `apctl: ${err.code}: ${err.message}`, exitCode: 1 };
  return { line: `apctl: ${err instanceof Error ? err.message : String(err)}`, exitCode: 1 };
}

/** `CODE: message` (no `apctl: ` prefix), for lines that embed an error. */
export function errorText(err: unknown): string {
  return describeError(err).line.replace(/^apctl: /, '');
}
