/** TypeBox schemas shared by routes; they are the OpenAPI document. */
import { Type, type Static } from 'typebox';

export const ErrorSchema = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { $id: 'Error' },
);

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const AgentSchema = Type.Object(
  {
    agent_id: Type.String(),
    hostname: Type.String(),
    os: Type.String(),
    arch: Type.String(),
    ip_addresses: Type.Array(Type.String()),
    version: Type.String(),
    labels: Type.Record(Type.String(), Type.String()),
    capacity: Type.Integer(),
    status: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
    running_tasks: Type.Integer(),
    platform_node: Nullable(Type.String()),
    first_seen_at: Type.String({ format: 'date-time' }),
    connected_at: Nullable(Type.String({ format: 'date-time' })),
    last_seen_at: Type.String({ format: 'date-time' }),
    disconnected_at: Nullable(Type.String({ format: 'date-time' })),
    disconnect_reason: Nullable(Type.String()),
  },
  { $id: 'Agent' },
);
export type AgentJson = Static<typeof AgentSchema>;
