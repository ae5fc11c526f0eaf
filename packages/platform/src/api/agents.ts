/** /api/v1/agents: read the fleet. */
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { PlatformError } from '../errors.js';
import type { AgentRow, Store } from '../store/index.js';
import { AgentSchema, ErrorSchema, type AgentJson } from './schemas.js';
import { decodeCursor, encodeCursor } from './cursor.js';

export function agentToJson(r: AgentRow): AgentJson {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    agent_id: r.agent_id,
    hostname: r.hostname,
    os: r.os,
    arch: r.arch,
    ip_addresses: r.ip_addresses,
    version: r.version,
    labels: r.labels,
    capacity: r.capacity,
    status: r.status,
    running_tasks: r.running_tasks,
    platform_node: r.platform_node,
    first_seen_at: r.first_seen_at.toISOString(),
    connected_at: iso(r.connected_at),
    last_seen_at: r.last_seen_at.toISOString(),
    disconnected_at: iso(r.disconnected_at),
    disconnect_reason: r.disconnect_reason,
  };
}

/** `key=value` (exact) or `key` (present); repeated selectors must all match. */
export function parseLabelSelectors(
  raw: string | string[] | undefined,
): { key: string; value: string | null }[] {
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return list.flatMap((item) =>
    item.split(',').map((sel) => {
      const i = sel.indexOf('=');
      const key = (i < 0 ? sel : sel.slice(0, i)).trim();
      if (key.length === 0 || key.length > 63) {
        throw new PlatformError(
          'INVALID_LABEL_SELECTOR',
          `label selector ${JSON.stringify(sel)} must be key or key=value`,
        );
      }
      return { key, value: i < 0 ? null : sel.slice(i + 1) };
    }),
  );
}

export const agentRoutes =
  (store: Store): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/api/v1/agents',
      {
        schema: {
          summary: 'List agents',
          tags: ['agents'],
          querystring: Type.Object({
            status: Type.Optional(
              Type.Unsafe<'online' | 'offline'>({ type: 'string', enum: ['online', 'offline'] }),
            ),
            label: Type.Optional(
              Type.Union([Type.String(), Type.Array(Type.String())], {
                description: 'key or key=value; repeat or comma-separate to require several',
              }),
            ),
            cursor: Type.Optional(Type.String()),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          }),
          response: {
            200: Type.Object({
              agents: Type.Array(AgentSchema),
              next_cursor: Type.Union([Type.String(), Type.Null()]),
            }),
            400: ErrorSchema,
          },
        },
      },
      async (req) => {
        const { status, label, cursor, limit } = req.query;
        const after = cursor === undefined ? undefined : decodeCursor(cursor);
        const rows = await store.agents.list({
          status,
          labels: parseLabelSelectors(label),
          after,
          limit: limit + 1,
        });
        const page = rows.slice(0, limit);
        const last = page.at(-1);
        return {
          agents: page.map(agentToJson),
          next_cursor: rows.length > limit && last ? encodeCursor(last.agent_id) : null,
        };
      },
    );

    app.get(
      '/api/v1/agents/:agent_id',
      {
        schema: {
          summary: 'Get one agent',
          tags: ['agents'],
          params: Type.Object({ agent_id: Type.String({ minLength: 1, maxLength: 128 }) }),
          response: { 200: AgentSchema, 404: ErrorSchema },
        },
      },
      async (req) => {
        const row = await store.agents.get(req.params.agent_id);
        if (!row) throw new PlatformError('AGENT_NOT_FOUND', `agent ${req.params.agent_id} not found`);
        return agentToJson(row);
      },
    );
  };
