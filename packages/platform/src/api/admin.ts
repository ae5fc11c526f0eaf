/**
 * Admin routes: API tokens, join tokens, agent revocation and the audit log.
 * Every route here needs the admin role (the default for writes; set
 * explicitly on reads).
 */
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { PlatformError } from '../errors.js';
import type { ApiTokenRow, AuditRow, JoinTokenRow, Store } from '../store/index.js';
import {
  API_TOKEN_PREFIX,
  JOIN_TOKEN_PREFIX,
  generateToken,
  hashToken,
  newTokenId,
} from '../security/tokens.js';
import { REGISTRATION_LIMITS } from '../gateway/index.js';
import type { ApiAuth } from './auth.js';
import { ErrorSchema } from './schemas.js';
import { decodeCursor, encodeCursor } from './cursor.js';

export interface AdminRoutesOptions {
  store: Store;
  auth: ApiAuth;
  /** SHA-256 fingerprint of the CA agents must pin; null when the platform runs without TLS. */
  caFingerprint: string | null;
  /** Called after an agent is revoked, to end its stream at once. */
  onAgentRevoked?: (agentId: string) => void;
}

const ADMIN = { role: 'admin' as const };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const Time = Type.String({ format: 'date-time' });
const RoleSchema = Type.Unsafe<'viewer' | 'operator' | 'admin'>({
  type: 'string',
  enum: ['viewer', 'operator', 'admin'],
});
const NameSchema = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f]+$' });
const TokenParams = Type.Object({ token_id: Type.String({ minLength: 1, maxLength: 64 }) });

const ApiTokenSchema = Type.Object({
  token_id: Type.String(),
  name: Type.String(),
  role: RoleSchema,
  created_at: Time,
  created_by: Nullable(Type.String()),
  expires_at: Nullable(Time),
  revoked_at: Nullable(Time),
  last_used_at: Nullable(Time),
  token: Type.Optional(Type.String({ description: 'the secret; shown only in the create answer' })),
});
const JoinTokenSchema = Type.Object({
  token_id: Type.String(),
  name: Type.String(),
  labels: Type.Record(Type.String(), Type.String()),
  uses_max: Nullable(Type.Integer()),
  uses: Type.Integer(),
  created_at: Time,
  created_by: Nullable(Type.String()),
  expires_at: Time,
  revoked_at: Nullable(Time),
  token: Type.Optional(Type.String({ description: 'the secret; shown only in the create answer' })),
  ca_fingerprint: Type.Optional(Nullable(Type.String())),
});
const AuditSchema = Type.Object({
  audit_id: Type.String(),
  at: Time,
  token_id: Nullable(Type.String()),
  actor: Type.String(),
  action: Type.String(),
  target: Nullable(Type.String()),
  method: Type.String(),
  path: Type.String(),
  source_ip: Type.String(),
  status_code: Type.Integer(),
  outcome: Type.String(),
});

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function apiTokenJson(r: ApiTokenRow) {
  return {
    token_id: r.token_id,
    name: r.name,
    role: r.role,
    created_at: r.created_at.toISOString(),
    created_by: r.created_by,
    expires_at: iso(r.expires_at),
    revoked_at: iso(r.revoked_at),
    last_used_at: iso(r.last_used_at),
  };
}

function joinTokenJson(r: JoinTokenRow) {
  return {
    token_id: r.token_id,
    name: r.name,
    labels: r.labels,
    uses_max: r.uses_max,
    uses: r.uses,
    created_at: r.created_at.toISOString(),
    created_by: r.created_by,
    expires_at: r.expires_at.toISOString(),
    revoked_at: iso(r.revoked_at),
  };
}

function auditJson(r: AuditRow) {
  return {
    audit_id: String(r.audit_id),
    at: r.at.toISOString(),
    token_id: r.token_id,
    actor: r.actor,
    action: r.action,
    target: r.target,
    method: r.method,
    path: r.path,
    source_ip: r.source_ip,
    status_code: r.status_code,
    outcome: r.outcome,
  };
}

function checkLabels(labels: Record<string, string>): void {
  const entries = Object.entries(labels);
  const L = REGISTRATION_LIMITS;
  if (entries.length > L.labelsMax)
    throw new PlatformError('VALIDATION_FAILED', `more than ${L.labelsMax} labels`);
  for (const [k, v] of entries) {
    if (!L.labelKeyPattern.test(k))
      throw new PlatformError(
        'VALIDATION_FAILED',
        `label key ${JSON.stringify(k.slice(0, 80))} is not valid`,
      );
    if (v.length > L.labelValueMax || v.includes('\u0000'))
      throw new PlatformError('VALIDATION_FAILED', `label ${k}: value is not valid`);
  }
}

const notFound = (id: string) => new PlatformError('TOKEN_NOT_FOUND', `token ${id.slice(0, 64)} not found`);

export const adminRoutes =
  (o: AdminRoutesOptions): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { store, auth } = o;

    app.post(
      '/api/v1/tokens',
      {
        config: ADMIN,
        schema: {
          summary: 'Create an API token (the secret is in this answer only)',
          tags: ['tokens'],
          body: Type.Object(
            {
              name: NameSchema,
              role: RoleSchema,
              ttl: Type.Optional(
                Type.Integer({
                  minimum: 60,
                  maximum: 10 * 365 * 86400,
                  description: 'seconds; default never',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 201: ApiTokenSchema, 400: ErrorSchema },
        },
      },
      async (req, reply) => {
        const token = generateToken(API_TOKEN_PREFIX);
        const row = await store.tokens.createApi({
          tokenId: newTokenId(),
          name: req.body.name,
          role: req.body.role,
          hash: hashToken(token),
          createdBy: req.principal?.name ?? null,
          ttlSeconds: req.body.ttl,
        });
        return reply.status(201).send({ ...apiTokenJson(row), token });
      },
    );

    app.get(
      '/api/v1/tokens',
      {
        config: ADMIN,
        schema: {
          summary: 'List API tokens (never their secrets)',
          tags: ['tokens'],
          response: { 200: Type.Object({ tokens: Type.Array(ApiTokenSchema) }) },
        },
      },
      async () => ({ tokens: (await store.tokens.listApi()).map(apiTokenJson) }),
    );

    app.delete(
      '/api/v1/tokens/:token_id',
      {
        config: ADMIN,
        schema: {
          summary: 'Revoke an API token',
          tags: ['tokens'],
          params: TokenParams,
          response: {
            200: Type.Object({ token_id: Type.String(), revoked: Type.Boolean() }),
            404: ErrorSchema,
          },
        },
      },
      async (req) => {
        const id = req.params.token_id;
        if (!UUID.test(id) || !(await store.tokens.revokeApi(id))) throw notFound(id);
        auth.invalidate();
        return { token_id: id, revoked: true };
      },
    );

    app.post(
      '/api/v1/join-tokens',
      {
        config: ADMIN,
        schema: {
          summary: 'Create a join token for enrolling agents (the secret is in this answer only)',
          tags: ['tokens'],
          body: Type.Optional(
            Type.Object(
              {
                name: Type.Optional(NameSchema),
                ttl: Type.Optional(
                  Type.Integer({ minimum: 60, maximum: 30 * 86400, description: 'seconds; default 3600' }),
                ),
                uses: Type.Optional(
                  Type.Integer({
                    minimum: 1,
                    maximum: 1_000_000,
                    description: 'enrollments allowed; default 1',
                  }),
                ),
                labels: Type.Optional(
                  Type.Record(Type.String(), Type.String(), {
                    description: 'labels every agent enrolled with this token gets (they win over its own)',
                  }),
                ),
              },
              { additionalProperties: false },
            ),
          ),
          response: { 201: JoinTokenSchema, 400: ErrorSchema },
        },
      },
      async (req, reply) => {
        const body = req.body ?? {};
        const labels = body.labels ?? {};
        checkLabels(labels);
        const token = generateToken(JOIN_TOKEN_PREFIX);
        const row = await store.tokens.createJoin({
          tokenId: newTokenId(),
          name: body.name ?? 'join',
          hash: hashToken(token),
          labels,
          usesMax: body.uses ?? 1,
          ttlSeconds: body.ttl ?? 3600,
          createdBy: req.principal?.name ?? null,
        });
        return reply.status(201).send({ ...joinTokenJson(row), token, ca_fingerprint: o.caFingerprint });
      },
    );

    app.get(
      '/api/v1/join-tokens',
      {
        config: ADMIN,
        schema: {
          summary: 'List join tokens (never their secrets)',
          tags: ['tokens'],
          response: { 200: Type.Object({ join_tokens: Type.Array(JoinTokenSchema) }) },
        },
      },
      async () => ({ join_tokens: (await store.tokens.listJoin()).map(joinTokenJson) }),
    );

    app.delete(
      '/api/v1/join-tokens/:token_id',
      {
        config: ADMIN,
        schema: {
          summary: 'Revoke a join token (agents already enrolled keep working)',
          tags: ['tokens'],
          params: TokenParams,
          response: {
            200: Type.Object({ token_id: Type.String(), revoked: Type.Boolean() }),
            404: ErrorSchema,
          },
        },
      },
      async (req) => {
        const id = req.params.token_id;
        if (!UUID.test(id) || !(await store.tokens.revokeJoin(id))) throw notFound(id);
        return { token_id: id, revoked: true };
      },
    );

    app.delete(
      '/api/v1/agents/:agent_id',
      {
        config: ADMIN,
        schema: {
          summary: 'Revoke an agent: its credentials stop working and its stream is ended',
          tags: ['agents'],
          params: Type.Object({ agent_id: Type.String({ minLength: 1, maxLength: 128 }) }),
          response: {
            200: Type.Object({ agent_id: Type.String(), revoked: Type.Boolean() }),
            404: ErrorSchema,
          },
        },
      },
      async (req) => {
        const id = req.params.agent_id;
        if (id.includes('\u0000') || !(await store.credentials.revokeAgent(id)))
          throw new PlatformError('AGENT_NOT_FOUND', `agent ${id.slice(0, 128)} not found`);
        o.onAgentRevoked?.(id);
        return { agent_id: id, revoked: true };
      },
    );

    app.get(
      '/api/v1/audit',
      {
        config: ADMIN,
        schema: {
          summary: 'The audit log of mutating calls, newest first',
          tags: ['audit'],
          querystring: Type.Object({
            token_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            cursor: Type.Optional(Type.String({ maxLength: 200 })),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          }),
          response: {
            200: Type.Object({ entries: Type.Array(AuditSchema), next_cursor: Nullable(Type.String()) }),
            400: ErrorSchema,
          },
        },
      },
      async (req) => {
        const { token_id, cursor, limit } = req.query;
        let beforeId: string | undefined;
        if (cursor !== undefined) {
          beforeId = decodeCursor(cursor);
          if (!/^\d{1,18}$/.test(beforeId)) throw new PlatformError('INVALID_CURSOR');
        }
        if (token_id !== undefined && !UUID.test(token_id)) return { entries: [], next_cursor: null };
        const rows = await store.audit.list({ beforeId, tokenId: token_id, limit: limit + 1 });
        const page = rows.slice(0, limit);
        const last = page.at(-1);
        return {
          entries: page.map(auditJson),
          next_cursor: rows.length > limit && last ? encodeCursor(String(last.audit_id)) : null,
        };
      },
    );
  };
