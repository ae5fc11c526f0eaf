/**
 * Bearer-token authentication, role checks and the audit log for the REST API.
 *
 *   onRequest: /healthz passes; otherwise `Authorization: Bearer <token>` must name a
 *              live token (401 UNAUTHENTICATED) whose role covers the route (403 FORBIDDEN)
 *   onSend:    every call that is not GET/HEAD/OPTIONS gets an audit row (who, action,
 *              target, source address, status, outcome), committed before the answer leaves
 *
 * A route's role: `config.role` if set, else ROUTE_ROLES, else viewer for reads and
 * admin for everything else, so a new mutating route is admin-only until someone decides.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { PlatformError } from '../errors.js';
import type { ApiTokenRow, AuditEntry, Role, Store } from '../store/index.js';
import { hashToken, plausibleToken, roleAllows } from '../security/tokens.js';

export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** Set by a route that committed its own audit row with its change (see auditEntry). */
    audited: boolean;
    /** The audit row's target when the answer does not name it (a stream, say). */
    auditTarget: string | null;
  }
  interface FastifyContextConfig {
    /** The least role allowed to call the route. */
    role?: Role;
  }
}

/** Roles of routes whose default (viewer for reads, admin for writes) is not right. */
export const ROUTE_ROLES: Record<string, Role> = {
  'POST /api/v1/tasks': 'operator',
  'POST /api/v1/tasks/batch': 'operator',
  'POST /api/v1/tasks/:task_id/cancel': 'operator',
};

/** Audit action names; unlisted routes are recorded as "METHOD /route". */
const ACTIONS: Record<string, string> = {
  'POST /api/v1/tasks': 'task.create',
  'POST /api/v1/tasks/batch': 'task.create_batch',
  'POST /api/v1/tasks/:task_id/cancel': 'task.cancel',
  'POST /api/v1/tokens': 'token.create',
  'DELETE /api/v1/tokens/:token_id': 'token.revoke',
  'POST /api/v1/join-tokens': 'join_token.create',
  'DELETE /api/v1/join-tokens/:token_id': 'join_token.revoke',
  'DELETE /api/v1/agents/:agent_id': 'agent.revoke',
};

const PUBLIC_PATHS = new Set(['/healthz']);
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface ApiAuth {
  /** Forgets cached token lookups (after a revoke in this process). */
  invalidate(): void;
  /** Audits a mutating request the router refused before any hook ran (Fastify's frameworkErrors). */
  auditRefused(req: FastifyRequest, status: number): Promise<void>;
  /** Waits for audit rows still being written. */
  close(): Promise<void>;
}

export interface ApiAuthOptions {
  store: Store;
  logger: Logger;
  /**
   * How long a token lookup is cached, ms; default 2,000. A token revoked
   * through another platform process stops working here within this time.
   */
  cacheMs?: number;
}

function requiredRole(req: FastifyRequest): Role {
  const configured = req.routeOptions.config.role;
  if (configured) return configured;
  const url = req.routeOptions.url;
  const listed = url === undefined ? undefined : ROUTE_ROLES[`${req.method} ${url}`];
  if (listed) return listed;
  return READ_METHODS.has(req.method) ? 'viewer' : 'admin';
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer +(\S+) *$/i.exec(h);
  return m?.[1];
}

/** PostgreSQL text cannot hold NUL; request data may. */
const clean = (s: string, max: number) => s.replaceAll('\u0000', '\uFFFD').slice(0, max);

/** The id in a created resource's answer, for the audit target. */
function targetFromPayload(payload: unknown): string | null {
  if (typeof payload !== 'string' || payload.length > 1_000_000 || !payload.startsWith('{')) return null;
  try {
    const v = JSON.parse(payload) as Record<string, unknown>;
    for (const k of ['task_id', 'token_id', 'agent_id']) {
      const x = v[k];
      if (typeof x === 'string') return `${k.replace(/_id$/, '')}:${x}`;
    }
  } catch {
    // not JSON: no target
  }
  return null;
}

function targetFromParams(params: unknown): string | null {
  if (!params || typeof params !== 'object') return null;
  const p = params as Record<string, unknown>;
  for (const k of ['task_id', 'token_id', 'agent_id']) {
    const x = p[k];
    if (typeof x === 'string') return `${k.replace(/_id$/, '')}:${clean(x, 200)}`;
  }
  return null;
}

/**
 * Group commit for audit rows: while one INSERT is in flight the next batch
 * collects, so a burst of calls costs a few statements, and each caller still
 * waits for its own row.
 */
function createAuditWriter(store: Store, logger: Logger) {
  let queue: { entry: AuditEntry; done: () => void }[] = [];
  let running: Promise<void> | undefined;
  const flush = async (): Promise<void> => {
    // No await between the empty-queue check and clearing `running`, so a write
    // can never be queued behind a flush that has already decided to stop.
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        await store.audit.insert(batch.map((b) => b.entry));
      } catch (err) {
        logger.error({ err, count: batch.length }, 'audit write failed');
      }
      for (const b of batch) b.done();
    }
    running = undefined;
  };
  return {
    write(entry: AuditEntry): Promise<void> {
      const p = new Promise<void>((resolve) => queue.push({ entry, done: resolve }));
      running ??= flush();
      return p;
    },
    async close() {
      await running;
    },
  };
}

/**
 * The audit row of a call, but its target. A route that commits the row in the
 * same statement as its change (so neither exists without the other, and the
 * call costs one commit) sets `req.audited` so that onSend writes no second one.
 */
export function auditEntry(req: FastifyRequest, status: number): Omit<AuditEntry, 'target'> {
  const path = req.url.split('?')[0] ?? '';
  const route = req.routeOptions.url;
  const key = route === undefined ? undefined : `${req.method} ${route}`;
  return {
    token_id: req.principal?.tokenId ?? null,
    actor: req.principal?.name ?? 'anonymous',
    action: (key && ACTIONS[key]) ?? clean(`${req.method} ${route ?? path}`, 200),
    method: clean(req.method, 16),
    path: clean(path, 500),
    source_ip: req.ip,
    status_code: status,
    outcome: status < 400 ? 'ok' : status === 401 || status === 403 ? 'denied' : 'failed',
  };
}

export function installAuth(app: FastifyInstance, options: ApiAuthOptions): ApiAuth {
  const { store, logger } = options;
  const cacheMs = options.cacheMs ?? 2000;
  const cache = new Map<string, { row: ApiTokenRow | undefined; until: number }>();
  const touched = new Map<string, number>();
  const audit = createAuditWriter(store, logger);

  async function lookup(token: string): Promise<ApiTokenRow | undefined> {
    const hash = hashToken(token);
    const key = hash.toString('hex');
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && hit.until > now) return hit.row;
    const row = await store.tokens.findApiByHash(hash);
    if (cache.size > 10_000) cache.clear();
    // Misses are cached too, so a flood of bad tokens costs one query per token per interval.
    cache.set(key, { row, until: now + cacheMs });
    if (row && (touched.get(row.token_id) ?? 0) < now - 60_000) {
      touched.set(row.token_id, now);
      store.tokens
        .touchApi(row.token_id)
        .catch((err: unknown) => logger.debug({ err }, 'token touch failed'));
    }
    return row;
  }

  app.decorateRequest('principal', null);
  app.decorateRequest('audited', false);
  app.decorateRequest('auditTarget', null);

  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0] ?? '';
    if (PUBLIC_PATHS.has(path)) return;
    const token = bearer(req);
    if (token === undefined) {
      throw new PlatformError('UNAUTHENTICATED', 'send Authorization: Bearer <token>');
    }
    const row = plausibleToken(token) ? await lookup(token) : undefined;
    if (!row) throw new PlatformError('UNAUTHENTICATED', 'token is not valid, expired or revoked');
    req.principal = { tokenId: row.token_id, name: row.name, role: row.role };
    const need = requiredRole(req);
    if (!roleAllows(row.role, need)) {
      throw new PlatformError('FORBIDDEN', `this needs the ${need} role; the token has ${row.role}`);
    }
  });

  /** One audit row for a mutating call; GET, HEAD, OPTIONS and /healthz are not recorded. */
  function record(req: FastifyRequest, status: number, payload: unknown): Promise<void> {
    if (READ_METHODS.has(req.method) || req.audited) return Promise.resolve();
    const path = req.url.split('?')[0] ?? '';
    if (PUBLIC_PATHS.has(path)) return Promise.resolve();
    const target =
      req.auditTarget ??
      targetFromParams(req.params) ??
      (status < 300 ? targetFromPayload(payload) : null) ??
      null;
    return audit.write({ ...auditEntry(req, status), target });
  }

  // onSend, not onResponse: the row is committed before the answer leaves, so an
  // acknowledged call is always audited (group commit keeps this cheap).
  app.addHook('onSend', async (req, reply, payload) => {
    await record(req, reply.statusCode, payload);
    return payload;
  });

  return {
    invalidate: () => cache.clear(),
    auditRefused: (req, status) => record(req, status, undefined),
    close: () => audit.close(),
  };
}
