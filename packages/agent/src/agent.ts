/**
 * The agent daemon: identity from the state directory, one connection to the
 * platform. (Task execution plugs into the connection's handlers.)
 */
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { createAgentConnection, type AgentConnection } from './connection/index.js';
import { loadOrCreateAgentId } from './identity.js';

export interface AgentOptions {
  /** Platform gRPC addresses, HOST:PORT, tried in turn. */
  servers: string[];
  /** Where the agent keeps its id and journal; default ./agent-state. */
  stateDir?: string;
  labels?: Record<string, string>;
  /** Tasks run at once; default 5. */
  capacity?: number;
  /** Overrides the platform's heartbeat interval, seconds. */
  heartbeatIntervalSeconds?: number;
  logger?: Logger;
}

export interface Agent {
  readonly agentId: string;
  readonly connection: AgentConnection;
  stop(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const logger = options.logger ?? pino({ base: { service: 'agent' } });
  const stateDir = path.resolve(options.stateDir ?? './agent-state');
  const agentId = await loadOrCreateAgentId(stateDir);
  const log = logger.child({ agent_id: agentId });
  const connection = createAgentConnection({
    servers: options.servers,
    agentId,
    labels: options.labels ?? {},
    capacity: options.capacity ?? 5,
    heartbeatIntervalSeconds: options.heartbeatIntervalSeconds,
    logger: log.child({ scope: 'connection' }),
  });
  connection.start();
  log.info({ state_dir: stateDir, servers: options.servers }, 'agent started');
  return {
    agentId,
    connection,
    async stop() {
      await connection.stop();
      log.info('agent stopped');
    },
  };
}
