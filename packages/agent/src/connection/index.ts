export {
  createAgentConnection,
  type AgentConnection,
  type AgentConnectionOptions,
  type ConnectionHandlers,
  type ConnectionState,
  type ServerLink,
} from './connection.js';
export { backoffDelay, type BackoffOptions } from './backoff.js';
