/** Maps every failure to `{"error":{"code","message"}}` with a stable code. */
import type { FastifyError, FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { PlatformError } from '../errors.js';

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

function fromFastify(err: FastifyError): PlatformError | undefined {
  if (err.validation)
    return new PlatformError(
      'VALIDATION_FAILED',
      `${err.validationContext ?? 'request'} ${err.message.replace(/^(body|querystring|params|headers)\s*/, '')}`,
    );
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PlatformError('BODY_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new PlatformError('UNSUPPORTED_MEDIA_TYPE');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new PlatformError('VALIDATION_FAILED', err.message);
  }
  if (err instanceof SyntaxError || (err.statusCode === 400 && !(err instanceof PlatformError))) {
    return new PlatformError('VALIDATION_FAILED', `body is not valid JSON: ${err.message}`);
  }
  return undefined;
}

export function installErrorHandlers(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((raw: FastifyError, req, reply) => {
    const err = raw instanceof PlatformError ? raw : fromFastify(raw);
    if (!err) {
      logger.error({ err: raw, method: req.method, url: req.url }, 'request failed');
      return reply.status(500).send(errorBody('INTERNAL', 'internal error'));
    }
    return reply.status(err.status).send(errorBody(err.code, err.message));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send(errorBody('ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)),
  );
}
