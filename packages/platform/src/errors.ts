/**
 * The platform's error registry: one stable code per failure mode, with its
 * HTTP status and gRPC status. Match on `err.code`, never on message text.
 * Every code here is documented in docs/errors.md (a test checks it).
 */
import { status as GrpcStatus } from '@grpc/grpc-js';

export interface ErrorSpec {
  readonly status: number;
  readonly grpc: GrpcStatus;
  readonly message: string;
  readonly retryable: boolean;
}

export const ERRORS = {
  VALIDATION_FAILED: {
    status: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    message: 'request is not valid',
    retryable: false,
  },
  INVALID_CURSOR: {
    status: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    message: 'cursor is not valid',
    retryable: false,
  },
  INVALID_LABEL_SELECTOR: {
    status: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    message: 'label selector is not valid',
    retryable: false,
  },
  BODY_TOO_LARGE: {
    status: 413,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
    message: 'request body is too large',
    retryable: false,
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    message: 'content type is not supported',
    retryable: false,
  },
  ROUTE_NOT_FOUND: { status: 404, grpc: GrpcStatus.NOT_FOUND, message: 'no such route', retryable: false },
  AGENT_NOT_FOUND: { status: 404, grpc: GrpcStatus.NOT_FOUND, message: 'agent not found', retryable: false },
  TASK_NOT_FOUND: { status: 404, grpc: GrpcStatus.NOT_FOUND, message: 'task not found', retryable: false },
  TASK_ALREADY_FINISHED: {
    status: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    message: 'task has already finished',
    retryable: false,
  },
  SCRIPT_TOO_LARGE: {
    status: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    message: 'script is too large',
    retryable: false,
  },
  INVALID_IDEMPOTENCY_KEY: {
    status: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    message: 'Idempotency-Key is not valid',
    retryable: false,
  },
  INVALID_REGISTRATION: {
    status: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
    message: 'registration is not valid',
    retryable: false,
  },
  REGISTRATION_TIMEOUT: {
    status: 408,
    grpc: GrpcStatus.DEADLINE_EXCEEDED,
    message: 'no registration received in time',
    retryable: true,
  },
  PROTOCOL_VIOLATION: {
    status: 400,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    message: 'message not allowed in this state',
    retryable: false,
  },
  HEARTBEAT_TIMEOUT: {
    status: 408,
    grpc: GrpcStatus.DEADLINE_EXCEEDED,
    message: 'no heartbeat for three intervals',
    retryable: true,
  },
  SESSION_REPLACED: {
    status: 409,
    grpc: GrpcStatus.ABORTED,
    message: 'the agent connected again on another stream',
    retryable: true,
  },
  SHUTTING_DOWN: {
    status: 503,
    grpc: GrpcStatus.UNAVAILABLE,
    message: 'the platform is shutting down',
    retryable: true,
  },
  UNAUTHENTICATED: {
    status: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    message: 'a valid token is required',
    retryable: false,
  },
  FORBIDDEN: {
    status: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
    message: 'this token is not allowed to do that',
    retryable: false,
  },
  TOKEN_NOT_FOUND: { status: 404, grpc: GrpcStatus.NOT_FOUND, message: 'token not found', retryable: false },
  INVALID_JOIN_TOKEN: {
    status: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
    message: 'join token is not valid, expired, used up or revoked',
    retryable: false,
  },
  AGENT_REVOKED: {
    status: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
    message: 'this agent has been revoked',
    retryable: false,
  },
  IDENTITY_MISMATCH: {
    status: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
    message: 'the agent may register only as itself',
    retryable: false,
  },
  ENROLLMENT_UNAVAILABLE: {
    status: 400,
    grpc: GrpcStatus.FAILED_PRECONDITION,
    message: 'enrollment needs TLS; this platform runs with --insecure',
    retryable: false,
  },
  INTERNAL: { status: 500, grpc: GrpcStatus.INTERNAL, message: 'internal error', retryable: true },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a stable code from {@link ERRORS}. */
export class PlatformError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly grpc: GrpcStatus;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERRORS[code];
    super(message ?? spec.message, options);
    this.name = 'PlatformError';
    this.code = code;
    this.status = spec.status;
    this.grpc = spec.grpc;
    this.retryable = spec.retryable;
  }
}

/** Normalises anything thrown into a PlatformError (unknown errors become INTERNAL). */
export function toPlatformError(err: unknown): PlatformError {
  if (err instanceof PlatformError) return err;
  return new PlatformError('INTERNAL', undefined, { cause: err });
}
