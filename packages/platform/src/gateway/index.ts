export {
  createAgentGateway,
  type AgentGateway,
  type AgentGatewayOptions,
  type AgentSession,
  type SessionHandlers,
} from './gateway.js';
export { validateRegistration, REGISTRATION_LIMITS } from './validate.js';
