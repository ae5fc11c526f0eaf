/** The HTTP server: REST under /api/v1, health, and the OpenAPI document. */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type RawServerDefault,
} from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import { errorBody, installErrorHandlers } from './errors.js';
import { PlatformError } from '../errors.js';
import { agentRoutes } from './agents.js';
import { taskRoutes } from './tasks.js';
import type { TaskService } from '../tasks/index.js';
import { ErrorSchema } from './schemas.js';
import { installAuth, type ApiAuth } from './auth.js';
import { installInputGuard } from './input-guard.js';
import { adminRoutes } from './admin.js';

export interface ApiServerOptions {
  store: Store;
  tasks?: TaskService;
  logger: Logger;
  version: string;
  /** Largest request body, bytes; default 2 MiB (a 1 MiB script plus JSON escaping). */
  bodyLimit?: number;
  /** SHA-256 fingerprint of the platform CA, shown with join tokens; null without TLS. */
  caFingerprint?: string | null;
  /** Ends a revoked agent's stream at once (the gateway's sweep catches other processes'). */
  onAgentRevoked?: (agentId: string) => void;
  /** HTTPS key and certificate chain (PEM); plain HTTP without. */
  https?: { key: string; cert: string };
}

export type ApiServer = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export async function createApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { store, logger } = options;
  // Set once the app exists; frameworkErrors is an option of its constructor.
  const late: { auth?: ApiAuth } = {};
  const app = Fastify({
    ...(options.https ? { https: options.https } : {}),
    bodyLimit: options.bodyLimit ?? 2 * 1024 * 1024,
    // Agent ids are up to 128 characters; the router's default (100) would answer 414 for some.
    routerOptions: { maxParamLength: 256 },
    // Errors the router raises before any route runs still get the error envelope.
    // No hook runs for these, so they are audited here.
    frameworkErrors: (err, req, reply: FastifyReply) => {
      const e = new PlatformError(
        'VALIDATION_FAILED',
        err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path parameter is too long' : 'the URL is not valid',
      );
      const send = () => void reply.status(e.status).send(errorBody(e.code, e.message));
      if (late.auth) void late.auth.auditRefused(req, e.status).then(send);
      else send();
    },
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  installErrorHandlers(app, logger);
  // Every route but /healthz needs a token; see auth.ts for roles and the audit log.
  const auth = installAuth(app, { store, logger });
  late.auth = auth;
  app.addHook('onClose', () => auth.close());
  installInputGuard(app);
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'agent-platform',
        version: options.version,
        description: 'Run scripts on fleets of hosts.',
      },
    },
  });
  app.addSchema(ErrorSchema);

  app.get('/healthz', { schema: { hide: true } }, async (_req, reply) => {
    try {
      await store.pool.query('select 1');
      return { status: 'ok', version: options.version };
    } catch {
      return reply
        .status(503)
        .send({ error: { code: 'DATABASE_UNAVAILABLE', message: 'database is not reachable' } });
    }
  });
  app.get('/api/docs/json', { schema: { hide: true } }, async () => app.swagger());
  await app.register(agentRoutes(store));
  await app.register(
    adminRoutes({
      store,
      auth,
      caFingerprint: options.caFingerprint ?? null,
      onAgentRevoked: options.onAgentRevoked,
    }),
  );
  if (options.tasks) await app.register(taskRoutes(options.tasks));
  return app;
}
